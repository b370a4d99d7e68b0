// The reply relays of the peers part, on the same echo path as udpmesh (client -> relay -> sink-aws ->
// relay -> client), each as a SystemUnderTest:
//   nginx:      Debian's nginx with the stream module, 1 worker process, our own config in a temp dir;
//   socat:      `socat -T 10 UDP4-LISTEN:P,fork,reuseaddr UDP4:sink`: one child process per client
//               (UDP-LISTEN connects the child to the client's address; replies go back through it);
//   node-relay: baseline.ts as a pure relay (fanout role without peers, one upstream socket per session).
// ensureRelayTools() finds (or, as root with apt-get, installs) nginx's stream module and socat.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../replicator/local/freePort.ts';
import { stopChild, track } from '../../replicator/local/children.ts';
import { udpPortTaken } from './ports.ts';
import { benchFile, NodeChild, REPO_ROOT, until } from './procs.ts';
import type { Shared, SystemKind, SystemUnderTest } from './topology.ts';

const HOST = '127.0.0.1';
export const INSTALL_COMMAND = 'apt-get install -y nginx-light libnginx-mod-stream socat';

export interface RelayTools {
  /** nginx binary and, when the stream module is dynamic, the module file to load; or why not. */
  nginx: { bin: string; module: string | null; version: string } | { skipped: string };
  socat: { bin: string; version: string } | { skipped: string };
  /** What was installed on the way (apt-get), if anything. */
  installed: string | null;
}

function which(bin: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  const p = (r.stdout ?? '').trim();
  return r.status === 0 && p ? p : null;
}

const MODULE_DIRS = ['/usr/lib/nginx/modules', '/usr/share/nginx/modules', '/usr/lib64/nginx/modules'];

function probe(): Omit<RelayTools, 'installed'> {
  let nginx: RelayTools['nginx'] = { skipped: `nginx not found (install: ${INSTALL_COMMAND})` };
  const nbin = which('nginx');
  if (nbin) {
    const v = spawnSync(nbin, ['-V'], { encoding: 'utf8' });
    const text = `${v.stdout ?? ''}${v.stderr ?? ''}`;
    const version = /nginx version: (\S+)/.exec(text)?.[1] ?? '?';
    if (/--with-stream(\s|$)/.test(text)) nginx = { bin: nbin, module: null, version };
    else if (/--with-stream=dynamic/.test(text)) {
      const module = MODULE_DIRS.map((d) => join(d, 'ngx_stream_module.so')).find((f) => existsSync(f));
      nginx = module
        ? { bin: nbin, module, version }
        : {
            skipped: `nginx ${version} has the stream module only as a dynamic module, not installed (install: apt-get install -y libnginx-mod-stream)`,
          };
    } else nginx = { skipped: `nginx ${version} is built without the stream module` };
  }
  let socat: RelayTools['socat'] = { skipped: `socat not found (install: ${INSTALL_COMMAND})` };
  const sbin = which('socat');
  if (sbin) {
    const v = spawnSync(sbin, ['-V'], { encoding: 'utf8' });
    socat = { bin: sbin, version: /socat version (\S+)/.exec(v.stdout ?? '')?.[1] ?? '?' };
  }
  return { nginx, socat };
}

/**
 * nginx with its stream module and socat: found, or installed when we are root and apt-get exists,
 * or reported as skipped with the command to run.
 */
export function ensureRelayTools(log: (m: string) => void): RelayTools {
  let tools = probe();
  if ('bin' in tools.nginx && 'bin' in tools.socat) return { ...tools, installed: null };
  const root = process.getuid?.() === 0;
  if (!root || !which('apt-get')) {
    log(
      `peers: ${[tools.nginx, tools.socat]
        .map((t) => ('skipped' in t ? t.skipped : ''))
        .filter(Boolean)
        .join('; ')}`,
    );
    log(`peers: run \`${INSTALL_COMMAND}\` as root to include them; their rows are marked skipped`);
    return { ...tools, installed: null };
  }
  const pkgs = [
    ...('bin' in tools.nginx ? [] : ['nginx-light', 'libnginx-mod-stream']),
    ...('bin' in tools.socat ? [] : ['socat']),
  ];
  log(`peers: installing ${pkgs.join(' ')} (apt-get, as root)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], {
    stdio: 'ignore',
    env,
  });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore', env });
    r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { stdio: 'ignore', env });
  }
  tools = probe();
  return {
    ...tools,
    installed: r.status === 0 ? pkgs.join(' ') : `apt-get install ${pkgs.join(' ')} failed`,
  };
}

/** An external relay process (its own process group) as a system under test. */
function externalSut(
  kind: SystemKind,
  child: ChildProcess,
  port: number,
  what: string,
  stopIt: () => Promise<unknown> = () => stopChild(child, 'SIGTERM', 3000),
): SystemUnderTest {
  let stopping = false;
  let died: string | undefined;
  child.once('exit', (code, signal) => {
    if (!stopping) died = `${what} exited unexpectedly (code ${code}, signal ${signal})`;
  });
  return {
    kind,
    mode: 'reply',
    ingress: { host: HOST, port },
    procs: [{ name: 'aws', pid: child.pid ?? -1 }],
    counters: async () => undefined,
    lag: async () => 0,
    dead: () => died,
    stop: async () => {
      stopping = true;
      await stopIt();
    },
  };
}

function spawnLogged(bin: string, args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(bin, args, { cwd: REPO_ROOT, detached: true, stdio: ['ignore', fd, fd] });
    track(child);
    child.on('error', () => {
      /* surfaced through exit */
    });
    return child;
  } finally {
    closeSync(fd);
  }
}

async function waitBound(child: ChildProcess, port: number, what: string, logFile: string): Promise<void> {
  try {
    await until(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`${what} exited at start: ${readFileSync(logFile, 'utf8').slice(-600)}`);
        return udpPortTaken(port, HOST);
      },
      15_000,
      `${what} to bind ${HOST}:${port}`,
    );
  } catch (err) {
    await stopChild(child, 'SIGKILL', 1000);
    throw err;
  }
}

/** nginx (master + 1 worker) proxying UDP HOST:port to the aws sink, replies relayed per client session. */
export async function startNginx(
  shared: Shared,
  tools: { bin: string; module: string | null },
): Promise<SystemUnderTest> {
  const port = await freePort(HOST);
  const dir = join(shared.dir, 'nginx');
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'nginx.conf');
  const sink = shared.sink('aws');
  writeFileSync(
    conf,
    [
      ...(tools.module ? [`load_module ${tools.module};`] : []),
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'worker_rlimit_nofile 16384;',
      'events { worker_connections 8192; }',
      'stream {',
      '  server {',
      // No proxy_responses: a client's session (and its upstream socket) lives until proxy_timeout of
      // silence and relays every reply, as udpmesh and the Node relay do.
      `    listen ${HOST}:${port} udp;`,
      `    proxy_pass ${HOST}:${sink.port};`,
      '    proxy_timeout 10s;',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const logFile = join(shared.dir, 'nginx.log');
  const child = spawnLogged(
    tools.bin,
    ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf, '-g', 'daemon off;'],
    logFile,
  );
  await waitBound(child, port, 'nginx', logFile);
  return externalSut('nginx', child, port, 'nginx');
}

/** socat relaying HOST:port to the aws sink: UDP4-LISTEN with fork, one child per client address. */
export async function startSocat(shared: Shared, tools: { bin: string }): Promise<SystemUnderTest> {
  const port = await freePort(HOST);
  const sink = shared.sink('aws');
  const logFile = join(shared.dir, 'socat.log');
  const child = spawnLogged(
    tools.bin,
    ['-T', '10', `UDP4-LISTEN:${port},bind=${HOST},fork,reuseaddr`, `UDP4:${HOST}:${sink.port}`],
    logFile,
  );
  await waitBound(child, port, 'socat', logFile);
  return externalSut('socat', child, port, 'socat');
}

/** baseline.ts as a plain reply relay: no peers, one upstream socket per client session. */
export async function startNodeRelay(shared: Shared): Promise<SystemUnderTest> {
  const port = await freePort(HOST);
  const logFile = join(shared.dir, 'node-relay.log');
  const sink = shared.sink('aws');
  const proc = new NodeChild(
    'node-relay',
    benchFile('baseline.ts'),
    [
      '--port',
      String(port),
      '--host',
      HOST,
      '--sink',
      `${HOST}:${sink.port}`,
      '--mode',
      'reply',
      '--role',
      'fanout',
    ],
    { ipc: false, logFile },
  );
  await waitBound(proc.child, port, 'node-relay', logFile);
  return externalSut('node-relay', proc.child, port, 'node-relay', () => proc.stop());
}
