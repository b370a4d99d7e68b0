// @ts-check
/* global process, URL */
// A Node.js language host for the Pulumi engine ("pulumi-language-nodejs"), for machines that cannot get the
// official one. Why it exists: the Go module proxy these machines reach serves github.com/pulumi/pulumi/pkg/v3
// and sdk/v3 (so scripts/install-pulumi-engine.sh builds the real `pulumi` CLI and engine from them), but not
// the untagged language-host module github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 (every
// query answers 403 and the proxy strips the commit of a release), so the Go host cannot be built here.
//
// This host speaks the same LanguageRuntime gRPC protocol (proto from the project's own @pulumi/pulumi) and
// does what the official host does for a Node.js program: it runs `node [nodeargs] @pulumi/pulumi/cmd/run
// <flags> <program>` with the config in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS, reports the required
// provider plugins from node_modules (packages whose package.json has "pulumi": {"resource": true}), and
// answers the handshake, plugin info and program-dependency calls. Anything else gets UNIMPLEMENTED, as an
// older host would. Users with the official Pulumi CLI installed use its own host and need none of this.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const VERSION = process.env.UDPMESH_PULUMI_VERSION ?? '3.0.0';
// The exit code @pulumi/pulumi/cmd/run uses after it has shown the user an actionable error.
const EXIT_AFTER_USER_MESSAGE = 32;

/** @param {string[]} argv */
function parseFlags(argv) {
  /** @type {Record<string, string>} */
  const flags = {};
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--?([a-zA-Z][\w-]*)(?:=(.*))?$/.exec(a);
    if (m) {
      if (m[2] !== undefined) flags[m[1]] = m[2];
      else if (m[1] === 'tracing' || m[1] === 'root') flags[m[1]] = argv[++i] ?? '';
      else flags[m[1]] = 'true';
    } else rest.push(a);
  }
  return { flags, rest };
}

const { flags, rest } = parseFlags(process.argv.slice(2));
let engineAddress = rest[0] ?? '';
const rootDir = flags.root || process.cwd();

/** The nearest `rel` at or above `start`, if any. */
function findUp(start, rel) {
  for (let d = path.resolve(start); ; d = path.dirname(d)) {
    if (existsSync(path.join(d, rel))) return path.join(d, rel);
    if (path.dirname(d) === d) return undefined;
  }
}

/** The directory of Pulumi.yaml's `main`, when the project file points at a program elsewhere. */
function mainDir(root) {
  try {
    const m = /^main:\s*['"]?([^'"\n]+?)['"]?\s*$/m.exec(
      readFileSync(path.join(root, 'Pulumi.yaml'), 'utf8'),
    );
    if (m) return path.dirname(path.resolve(root, m[1]));
  } catch {
    /* no project file here */
  }
  return undefined;
}

// Load gRPC and the generated protocol from the program's own @pulumi/pulumi, so that the host always speaks
// the protocol of the SDK the program uses.
function sdkRequire() {
  const bases = [rootDir, mainDir(rootDir), process.cwd(), path.dirname(new URL(import.meta.url).pathname)];
  for (const base of bases.filter((b) => b !== undefined)) {
    try {
      const req = createRequire(path.join(base, 'package.json'));
      req.resolve('@pulumi/pulumi/proto/language_grpc_pb');
      return req;
    } catch {
      /* try the next base */
    }
  }
  process.stderr.write(
    'pulumi-language-nodejs: @pulumi/pulumi is not installed in the project (looked from ' +
      rootDir +
      '). Have you run npm ci?\n',
  );
  process.exit(1);
}
const req = sdkRequire();
const grpc = req('@grpc/grpc-js');
const langrpc = req('@pulumi/pulumi/proto/language_grpc_pb');
const langproto = req('@pulumi/pulumi/proto/language_pb');
const pluginproto = req('@pulumi/pulumi/proto/plugin_pb');
const runPath = req.resolve('@pulumi/pulumi/cmd/run');

/** Required provider plugins: every node_modules package that declares itself a Pulumi resource plugin. */
function requiredPlugins(dir) {
  /** @type {Map<string, {name: string, version: string, server: string}>} */
  const found = new Map();
  const seen = new Set();
  const walk = (d, inNodeModules, depth) => {
    if (depth > 8) return;
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      let isDir = e.isDirectory();
      if (e.isSymbolicLink()) {
        try {
          isDir = statSync(p).isDirectory();
        } catch {
          continue;
        }
      }
      if (isDir) {
        if (e.name === '.git' || (!inNodeModules && e.name !== 'node_modules')) continue;
        if (seen.has(p)) continue;
        seen.add(p);
        walk(p, inNodeModules || path.basename(d) === 'node_modules' || e.name === 'node_modules', depth + 1);
      } else if (inNodeModules && e.name === 'package.json') {
        try {
          const pkg = JSON.parse(readFileSync(p, 'utf8'));
          const pu = pkg.pulumi;
          if (pu && pu.resource === true) {
            const name =
              pu.name ||
              String(pkg.name)
                .replace(/^@pulumi\//, '')
                .replace(/^@/, '');
            let version = pu.version || pkg.version;
            if (!String(version).startsWith('v')) version = 'v' + version;
            found.set(name + '@' + version, { name, version, server: pu.server || '' });
          }
        } catch {
          /* not a package we can read: skip, like the official host */
        }
      }
    }
  };
  walk(path.join(dir, 'node_modules'), true, 0);
  return [...found.values()];
}

/** @param {any} request */
function programLocation(request) {
  const info = request.getInfo?.();
  const root = info?.getRootDirectory?.() || request.getPwd() || rootDir;
  const programDir = info?.getProgramDirectory?.() || request.getPwd() || root;
  const entry = info?.getEntryPoint?.() || request.getProgram() || '.';
  /** @type {Record<string, unknown>} */
  const options = info?.getOptions?.()?.toJavaScript?.() ?? {};
  return { root, programDir, entry, options };
}

/** Splits `nodeargs` as a shell would for plain words (the official host uses shell-style splitting). */
function splitArgs(s) {
  return String(s ?? '')
    .split(/\s+/)
    .filter((w) => w.length > 0);
}

/** The program's provider plugins as PluginDependency or PackageDependency messages (same fields). */
function dependencies(request, Message) {
  const dir = request.getInfo?.()?.getProgramDirectory?.() || request.getProgram?.() || rootDir;
  return requiredPlugins(dir).map((p) => {
    const d = new Message();
    d.setName(p.name);
    d.setKind('resource');
    d.setVersion(p.version);
    d.setServer(p.server);
    return d;
  });
}

const host = {
  handshake(call, cb) {
    const r = call.request;
    engineAddress = r.getEngineAddress() || engineAddress;
    cb(null, new langproto.LanguageHandshakeResponse());
  },
  getPluginInfo(_call, cb) {
    const info = new pluginproto.PluginInfo();
    info.setVersion(VERSION);
    cb(null, info);
  },
  getRequiredPlugins(call, cb) {
    const resp = new langproto.GetRequiredPluginsResponse();
    resp.setPluginsList(dependencies(call.request, pluginproto.PluginDependency));
    cb(null, resp);
  },
  getRequiredPackages(call, cb) {
    const resp = new langproto.GetRequiredPackagesResponse();
    resp.setPackagesList(dependencies(call.request, pluginproto.PackageDependency));
    cb(null, resp);
  },
  getProgramDependencies(call, cb) {
    const r = call.request;
    const dir = r.getInfo?.()?.getProgramDirectory?.() || rootDir;
    const resp = new langproto.GetProgramDependenciesResponse();
    const list = [];
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
      for (const name of Object.keys({ ...pkg.dependencies })) {
        try {
          const v = JSON.parse(
            readFileSync(path.join(dir, 'node_modules', name, 'package.json'), 'utf8'),
          ).version;
          const d = new langproto.DependencyInfo();
          d.setName(name);
          d.setVersion(v);
          list.push(d);
        } catch {
          /* not installed */
        }
      }
    } catch {
      /* no package.json */
    }
    resp.setDependenciesList(list);
    cb(null, resp);
  },
  run(call, cb) {
    const r = call.request;
    const { root, programDir, entry, options } = programLocation(r);
    const args = [...splitArgs(options.nodeargs), runPath];
    const add = (k, v) => {
      if (v !== undefined && v !== null && v !== '') args.push(`--${k}=${v}`);
    };
    add('monitor', r.getMonitorAddress());
    add('engine', engineAddress);
    add('organization', r.getOrganization());
    add('project', r.getProject());
    add('stack', r.getStack());
    add('pwd', programDir);
    add('root-directory', root);
    if (r.getDryrun()) args.push('--dry-run');
    add('parallel', String(r.getParallel()));
    if (flags.tracing) add('tracing', flags.tracing);
    args.push(entry || '.');
    args.push(...r.getArgsList());

    /** @type {Record<string, string>} */
    const config = {};
    for (const [k, v] of r.getConfigMap().entries()) config[k] = v;
    const env = {
      ...process.env,
      PULUMI_CONFIG: JSON.stringify(config),
      PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(r.getConfigsecretkeysList()),
      PULUMI_NODEJS_TYPESCRIPT: String(options.typescript === undefined ? true : options.typescript === true),
    };
    if (typeof options.tsconfig === 'string') env.PULUMI_NODEJS_TSCONFIG_PATH = options.tsconfig;
    if (r.getConfigpropertymap?.())
      env.PULUMI_CONFIG_PROPERTY_MAP = JSON.stringify(r.getConfigpropertymap().toJavaScript());
    // The project's own Node.js (the node@24 devDependency) when it has one, else node from PATH.
    const node = findUp(programDir, path.join('node_modules', '.bin', 'node')) ?? 'node';
    const child = spawn(node, args, { cwd: programDir, env, stdio: ['ignore', 'inherit', 'inherit'] });
    const resp = new langproto.RunResponse();
    child.on('error', (err) => {
      resp.setError(`could not start the Node.js program (${node}): ${err.message}`);
      cb(null, resp);
    });
    child.on('exit', (code, signal) => {
      if (code === 0) return cb(null, resp);
      if (code === EXIT_AFTER_USER_MESSAGE) resp.setBail(true);
      else
        resp.setError(
          signal ? `Program exited on signal ${signal}` : `Program exited with non-zero exit code: ${code}`,
        );
      cb(null, resp);
    });
  },
};

const server = new grpc.Server({ 'grpc.max_receive_message_length': 400 * 1024 * 1024 });
server.addService(langrpc.LanguageRuntimeService, host);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`pulumi-language-nodejs: could not listen: ${err.message}\n`);
    process.exit(1);
  }
  // The engine reads the port from our first line of output.
  process.stdout.write(`${port}\n`);
});
// The engine stops plugins with SIGINT/SIGTERM or by closing our stdin-less pipes; exit promptly.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.tryShutdown(() => process.exit(0)));
