// Issue 11's defects at the edges: the CLI and the service share one job store and one lock, the
// CLI is scriptable, engine errors say what Pulumi said, reads create nothing, files are private,
// free-text spec fields are bounded, the documented start stops cleanly, the docs are true.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../automation/cli/main.ts';
import { EngineError, InvalidSpecError, StackNotFoundError } from '../../automation/errors.ts';
import { PulumiEngine } from '../../automation/pulumiEngine.ts';
import { validateSpec } from '../../automation/spec.ts';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import { api, startTestService, tempDir, VALID_SPEC, waitForJob } from './support/harness.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE_BIN = path.join(ROOT, 'node_modules', '.bin');

describe('automation: issue 11 defects at the entry points', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  function fakeCli(script: string): string {
    const root = path.join(tmp.dir, 'pulumi');
    mkdirSync(path.join(root, 'bin'), { recursive: true });
    writeFileSync(
      path.join(root, 'bin', 'pulumi'),
      `#!/bin/sh\nif [ "$1" = version ]; then echo v3.210.0; exit 0; fi\n${script}\n`,
    );
    chmodSync(path.join(root, 'bin', 'pulumi'), 0o755);
    return root;
  }
  function project(): string {
    const dir = path.join(tmp.dir, 'repo');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'Pulumi.yaml'), 'name: udpmesh\nruntime: nodejs\nmain: infra/index.ts\n');
    return dir;
  }

  it('4: a read for an unknown stack answers stack_not_found and creates no directory', async () => {
    const stateDir = path.join(tmp.dir, 'state');
    const root = fakeCli(`echo "error: no stack named 'nope' found" >&2; exit 255`);
    const engine = new PulumiEngine({ stateDir, projectDir: project(), pulumiRoot: root });
    await assert.rejects(engine.outputs('nope'), StackNotFoundError);
    await assert.rejects(engine.history('nope'), StackNotFoundError);
    assert.ok(!existsSync(path.join(stateDir, 'stacks', 'nope')), 'no work dir for a read');
  });

  it("8: an engine error carries Pulumi's own error: lines and the real exit code", async () => {
    const root = fakeCli(
      `echo "Updating (dev):" >&2; echo "error: could not load plugin for aws provider" >&2; exit 255`,
    );
    const engine = new PulumiEngine({
      stateDir: path.join(tmp.dir, 's'),
      projectDir: project(),
      pulumiRoot: root,
    });
    await assert.rejects(engine.up('dev', validateSpec(VALID_SPEC)), (e: unknown) => {
      assert.ok(e instanceof EngineError, String(e));
      assert.match(e.message, /could not load plugin for aws provider/);
      assert.doesNotMatch(e.message, /Command failed|exit -2/);
      assert.match(e.message, /exit 255/);
      return true;
    });
  });

  it('13: work dirs are private to the service user', async () => {
    const stateDir = path.join(tmp.dir, 'state');
    const engine = new PulumiEngine({ stateDir, projectDir: project(), pulumiRoot: fakeCli('exit 255') });
    await assert.rejects(engine.up('dev', validateSpec(VALID_SPEC)));
    for (const d of [stateDir, path.join(stateDir, 'stacks', 'dev')])
      assert.equal(statSync(d).mode & 0o077, 0, `${d} ${(statSync(d).mode & 0o777).toString(8)}`);
  });

  it('14: free-text spec fields are bounded: no control characters, no huge strings', () => {
    for (const [spec, key] of [
      [{ clouds: ['aws'], aws: { region: 'us-east-1\nevil: true' } }, 'aws.region'],
      [{ clouds: ['aws'], replicator: { image: 'img\u0000' } }, 'replicator.image'],
      [{ clouds: ['aws'], replicator: { image: 'x'.repeat(1000) } }, 'replicator.image'],
      [{ clouds: ['aws'], aws: { nodePool: { machineType: 'm5 large' } } }, 'aws.nodePool.machineType'],
    ] as const) {
      assert.throws(
        () => validateSpec(spec),
        (e: unknown) => e instanceof InvalidSpecError && e.issues.some((i) => i.key === key),
        JSON.stringify(spec).slice(0, 80),
      );
    }
  });

  it('6: CLI operations go through the job store and the lock the service uses', async () => {
    const dbFile = path.join(tmp.dir, 'automation.db');
    const engine = new ScriptedEngine();
    const svc = await startTestService(engine, { dbFile });
    let out = '';
    let err = '';
    const cli = (args: string[]) =>
      runCli(args, {
        engine: () => engine,
        dbFile,
        io: { stdout: (s) => void (out += s), stderr: (s) => void (err += s) },
      });
    const specFile = path.join(tmp.dir, 'spec.json');
    writeFileSync(specFile, JSON.stringify(VALID_SPEC));
    try {
      engine.script('dev', { hold: true });
      const { json } = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
        token: svc.operate,
        body: { spec: VALID_SPEC },
      });
      await engine.started('dev');
      const busy = await cli(['stack', 'up', 'dev', '--spec', specFile]);
      assert.notEqual(busy, 0);
      assert.match(err, new RegExp(json.jobId));
      assert.equal(engine.calls.length, 1, 'the CLI did not run the engine');
      engine.release('dev');
      await waitForJob(svc, json.jobId);

      engine.script('c', { hold: true });
      const running = cli(['stack', 'up', 'c', '--spec', specFile]);
      await engine.started('c');
      const refused = await api(svc.url, 'POST', '/v1/stacks/c/up', {
        token: svc.operate,
        body: { spec: VALID_SPEC },
      });
      assert.equal(refused.status, 409, refused.text);
      engine.release('c');
      assert.equal(await running, 0, err);
      const jobs = await api(svc.url, 'GET', '/v1/jobs?stack=c', { token: svc.read });
      assert.equal(jobs.json.jobs.length, 1);
      assert.match(jobs.json.jobs[0].requestedBy, /^cli:/);
      assert.equal(jobs.json.jobs[0].status, 'succeeded');
      const audit = await api(svc.url, 'GET', '/v1/audit?stack=c', { token: svc.operate });
      assert.ok(audit.json.entries.some((e: { actor: string }) => e.actor.startsWith('cli:')));
    } finally {
      await svc.close({ jobTimeoutMs: 1000 });
    }
  });

  it('11: the documented token command captures exactly the token; no warnings; --json everywhere; bare udpmesh is help', async () => {
    const docs = readFileSync(path.join(ROOT, 'docs', 'automation.md'), 'utf8');
    const m = /TOKEN=\$\(([^)]*token create[^)]*)\)/.exec(docs);
    assert.ok(m, 'docs/automation.md shows TOKEN=$(... token create ...)');
    const env = {
      ...process.env,
      UDPMESH_DB: path.join(tmp.dir, 'a.db'),
      PATH: `${NODE_BIN}:${process.env.PATH}`,
    };
    const r = spawnSync('sh', ['-c', m[1]!], { cwd: ROOT, env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^udpm_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/, r.stdout);
    assert.doesNotMatch(r.stderr, /ExperimentalWarning/);

    let out = '';
    const io = { stdout: (s: string) => void (out += s), stderr: () => {} };
    const deps = { engine: () => new ScriptedEngine(), dbFile: path.join(tmp.dir, 'b.db'), io };
    assert.equal(await runCli(['token', 'create', '--role', 'read', '--json'], deps), 0);
    const created = JSON.parse(out);
    assert.match(created.token, /^udpm_/);
    out = '';
    assert.equal(await runCli(['token', 'list', '--json'], deps), 0);
    assert.equal(JSON.parse(out)[0].id, created.id);
    out = '';
    assert.equal(await runCli(['token', 'revoke', created.id, '--json'], deps), 0);
    assert.equal(JSON.parse(out).revoked, created.id);
    out = '';
    assert.equal(await runCli(['stack', 'list', '--json'], deps), 0);
    assert.deepEqual(JSON.parse(out), []);
    out = '';
    assert.equal(await runCli([], deps), 0);
    assert.match(out, /usage:/);
  });

  it('5: the documented start stops on SIGTERM with nothing left holding the port', async function () {
    const env = {
      ...process.env,
      UDPMESH_PORT: '0',
      UDPMESH_STATE_DIR: path.join(tmp.dir, 'state'),
      UDPMESH_PULUMI_ROOT: path.join(tmp.dir, 'no-pulumi'),
      PATH: `${NODE_BIN}:${process.env.PATH}`,
    };
    const child = spawn('npm', ['run', 'automation'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listening line:\n${log}`)), 30_000);
      child.stdout.on('data', () => {
        const u = /"url":"(http:\/\/[^"]+)"/.exec(log);
        if (u) {
          clearTimeout(t);
          resolve(u[1]!);
        }
      });
    });
    const port = Number(new URL(url).port);
    assert.equal((await api(url, 'GET', '/healthz')).status, 200);
    // npm itself dies of the signal (it does not pass it on); the service must still stop cleanly.
    child.kill('SIGTERM');
    const stopDeadline = Date.now() + 10_000;
    while (!/"msg":"stopped"/.test(log) && Date.now() < stopDeadline)
      await new Promise((r) => setTimeout(r, 100));
    // Nothing may keep the port: a connect is refused within 5 s.
    const deadline = Date.now() + 5000;
    let refused = false;
    while (!refused && Date.now() < deadline) {
      refused = await new Promise<boolean>((r) => {
        const s = connect(port, '127.0.0.1');
        s.on('connect', () => (s.destroy(), r(false)));
        s.on('error', () => r(true));
      });
      if (!refused) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(refused, `port ${port} still accepts connections after SIGTERM:\n${log}`);
    assert.match(log, /stopped/);
  });

  it('17: the docs show real output keys and reference files that exist', () => {
    const docs = readFileSync(path.join(ROOT, 'docs', 'automation.md'), 'utf8');
    const exports = new Set(
      [...readFileSync(path.join(ROOT, 'infra', 'index.ts'), 'utf8').matchAll(/^export const (\w+)/gm)].map(
        (x) => x[1]!,
      ),
    );
    for (const m of docs.matchAll(/"outputs":\s*\{\s*"(\w+)"/g))
      assert.ok(exports.has(m[1]!), `docs show output ${m[1]} that infra/index.ts does not export`);
    const missing: string[] = [];
    const refs = [
      ...[...docs.matchAll(/`([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*\.(?:ts|ya?ml|json|md|sh))`/g)].map(
        (x) => x[1]!,
      ),
      ...[...docs.matchAll(/--spec ([^\s`]+)/g)].map((x) => x[1]!).filter((x) => !x.startsWith('<')),
      ...[...docs.matchAll(/-f (\S+\.ya?ml)/g)].map((x) => x[1]!),
    ];
    for (const ref of refs) {
      const candidates = [path.join(ROOT, ref), path.join(ROOT, 'test', 'automation', ref)];
      if (!candidates.some((c) => existsSync(c))) missing.push(ref);
    }
    assert.deepEqual(missing, [], 'files the docs reference');
  });
});
