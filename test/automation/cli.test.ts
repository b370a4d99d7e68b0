// The `udpmesh` CLI over the library (scripted engine): progress output, exit codes, spec files,
// confirmation for destroy, cancellation, and token management in the service's database.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { runCli } from '../../automation/cli/main.ts';
import { TokenStore } from '../../automation/auth/tokens.ts';
import { EngineError } from '../../automation/errors.ts';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import { tempDir } from './support/harness.ts';

describe('udpmesh CLI', () => {
  let tmp: ReturnType<typeof tempDir>;
  let engine: ScriptedEngine;
  let out: string;
  let err: string;
  const run = (args: string[], signal?: AbortSignal) =>
    runCli(args, {
      engine: () => engine,
      dbFile: path.join(tmp.dir, 'automation.db'),
      io: { stdout: (s) => void (out += s), stderr: (s) => void (err += s) },
      ...(signal ? { signal } : {}),
    });
  beforeEach(() => {
    tmp = tempDir();
    engine = new ScriptedEngine();
    out = '';
    err = '';
  });
  afterEach(() => tmp.cleanup());

  function specFile(content: string, name = 'dev.yaml'): string {
    const file = path.join(tmp.dir, name);
    writeFileSync(file, content);
    return file;
  }

  it('stack up reads a YAML spec, prints readable progress and the outputs', async () => {
    const file = specFile('clouds: [aws, gcp, azure]\nreplicator:\n  replicas: 3\n');
    const code = await run(['stack', 'up', 'dev', '--spec', file, '--message', 'from ci']);
    assert.equal(code, 0, err);
    assert.equal(engine.calls[0]!.spec!.replicator.replicas, 3);
    assert.equal(engine.calls[0]!.message, 'from ci');
    const lines = err.split('\n');
    assert.equal(lines[0], 'Updating stack dev');
    assert.ok(
      lines.some((l) => /^\s+\+\s+create\s+aws:ec2\/vpc:Vpc\s+udpmesh-aws-vpc$/.test(l)),
      err,
    );
    assert.ok(
      lines.some((l) => /^\s+ok create\s+aws:eks\/cluster:Cluster\s+udpmesh-aws$/.test(l)),
      err,
    );
    assert.ok(lines.includes('  udpmesh-aws: creating EKS cluster (this takes ~10 minutes)'), err);
    assert.ok(lines.includes('Resources: 3 created, 1 unchanged (12s)'), err);
    assert.match(err, /up of dev finished in \d+\.\ds: 3 created, 1 unchanged/);
    assert.equal(out, 'Outputs:\n  clusters: ["aws"]\n');
  });

  it('stack preview accepts JSON specs; --json prints the result as JSON on stdout', async () => {
    const file = specFile(JSON.stringify({ clouds: ['aws'] }), 'dev.json');
    assert.equal(await run(['stack', 'preview', 'dev', '--spec', file, '--json']), 0, err);
    assert.equal(JSON.parse(out).operation, 'preview');
    assert.match(err, /\(planned\)/);
  });

  it('accepts a Pulumi stack file (config: udpmesh:<key>) as the spec', async () => {
    const file = specFile(
      'encryptionsalt: v1:x\nconfig:\n  aws:region: us-east-1\n  udpmesh:clouds:\n    - aws\n  udpmesh:mesh: udpmesh-dev\n  udpmesh:replicator:\n    replicas: 1\n',
      'Pulumi.dev.yaml',
    );
    assert.equal(await run(['stack', 'preview', 'dev', '--spec', file]), 0, err);
    assert.deepEqual(engine.calls[0]!.spec!.clouds, ['aws']);
    assert.equal(engine.calls[0]!.spec!.mesh, 'udpmesh-dev');
    assert.equal(engine.calls[0]!.spec!.replicator.replicas, 1);
    err = '';
    const secure = specFile(
      'config:\n  udpmesh:clouds: [aws]\n  udpmesh:mesh:\n    secure: v1:abc\n',
      'Pulumi.x.yaml',
    );
    assert.equal(await run(['stack', 'preview', 'dev', '--spec', secure]), 2);
    assert.match(err, /udpmesh:mesh: encrypted values cannot be read/);
  });

  it('an invalid spec exits 2 listing each issue, without calling the engine', async () => {
    const file = specFile('clouds: [aws, gcp]\ngcp:\n  vpcCidr: 10.10.0.0/16\nbogus: 1\n');
    assert.equal(await run(['stack', 'up', 'dev', '--spec', file]), 2);
    assert.match(err, /the spec is invalid:\n {2}\(root\): unknown key\(s\) bogus/);
    assert.equal(engine.calls.length, 0);
    err = '';
    assert.equal(await run(['stack', 'up', 'dev', '--spec', specFile('clouds: [aws\n', 'broken.yaml')]), 2);
    assert.match(err, /not valid YAML or JSON/);
    err = '';
    assert.equal(await run(['stack', 'up', 'dev', '--spec', path.join(tmp.dir, 'missing.yaml')]), 2);
    assert.match(err, /cannot read spec file/);
    assert.equal(engine.calls.length, 0);
  });

  it('usage errors exit 2: missing --spec, bad stack name, unknown command or flag, destroy without --yes', async () => {
    for (const args of [
      ['stack', 'up', 'dev'],
      ['stack', 'up', '../dev', '--spec', 'x'],
      ['stack', 'launch', 'dev'],
      ['stack', 'up', 'dev', '--force'],
      ['stack', 'destroy', 'dev'],
      ['cluster', 'up'],
    ]) {
      err = '';
      assert.equal(await run(args), 2, args.join(' '));
      assert.ok(err.length > 0);
    }
    assert.match(err, /unknown command cluster/);
    assert.equal(engine.calls.length, 0);
    assert.equal(await run(['--help']), 0);
    assert.match(out, /udpmesh stack up <stack> \[--spec <file>\]/);
  });

  it('destroy --yes --remove, outputs (secrets hidden) and history', async () => {
    engine.script('dev', {
      outputs: {
        kubeconfig: { value: 'token: abc123', secret: true },
        endpoint: { value: 'udp.example:7001', secret: false },
      },
    });
    assert.equal(await run(['stack', 'up', 'dev', '--spec', specFile('clouds: [aws]\n')]), 0, err);
    out = '';
    assert.equal(await run(['stack', 'outputs', 'dev']), 0, err);
    assert.equal(out, 'kubeconfig: [secret]\nendpoint: udp.example:7001\n');
    out = '';
    assert.equal(await run(['stack', 'outputs', 'dev', '--json']), 0);
    assert.deepEqual(JSON.parse(out), { kubeconfig: '[secret]', endpoint: 'udp.example:7001' });
    out = '';
    assert.equal(await run(['stack', 'history', 'dev']), 0);
    assert.match(out, /^#1 {2}update {3}succeeded /);
    assert.equal(await run(['stack', 'destroy', 'dev', '--yes', '--remove']), 0, err);
    assert.deepEqual(engine.calls.at(-1), { op: 'destroy', stack: 'dev', remove: true });
    err = '';
    assert.equal(await run(['stack', 'outputs', 'dev']), 1);
    assert.match(err, /stack "dev" does not exist/);
  });

  it('engine failures exit 1 with the diagnostics; Ctrl-C cancels with exit 130', async () => {
    engine.script('dev', {
      fail: new EngineError('pulumi failed (exit 255): AccessDenied', [
        {
          severity: 'error',
          message: 'AccessDenied: eks:CreateCluster',
          urn: 'urn:pulumi:dev::udpmesh::aws:eks/cluster:Cluster::udpmesh-aws',
        },
      ]),
    });
    assert.equal(await run(['stack', 'up', 'dev', '--spec', specFile('clouds: [aws]\n')]), 1);
    assert.match(
      err,
      /udpmesh: pulumi failed \(exit 255\): AccessDenied\n {2}udpmesh-aws: AccessDenied: eks:CreateCluster/,
    );

    engine.script('dev', { hold: true });
    const controller = new AbortController();
    const running = run(['stack', 'up', 'dev', '--spec', specFile('clouds: [aws]\n')], controller.signal);
    await engine.started('dev');
    controller.abort();
    assert.equal(await running, 130);
    assert.match(err, /cancellation acknowledged by the engine/);
    assert.match(err, /udpmesh: cancelled/);
  });

  it('token create prints a working token once and stores only its hash; list and revoke', async () => {
    assert.equal(await run(['token', 'create', '--role', 'operate', '--name', 'portal']), 0, err);
    const token = out.trim();
    assert.match(token, /^udpm_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    assert.match(err, /role operate/);
    const db = new DatabaseSync(path.join(tmp.dir, 'automation.db'));
    try {
      const tokens = new TokenStore(db);
      const info = tokens.verify(token);
      assert.equal(info?.role, 'operate');
      assert.equal(info?.name, 'portal');
      assert.ok(!JSON.stringify(db.prepare('SELECT * FROM tokens').all()).includes(token.split('_').pop()!));
      out = '';
      assert.equal(await run(['token', 'list']), 0);
      assert.match(out, new RegExp(`^${info!.id} {2}operate portal`));
      assert.equal(await run(['token', 'revoke', info!.id]), 0);
      assert.equal(tokens.verify(token), undefined);
      const audit = db.prepare('SELECT action, result, detail FROM audit ORDER BY id').all() as {
        action: string;
        detail: string;
      }[];
      assert.deepEqual(
        audit.map((a) => a.action),
        ['token.create', 'token.revoke'],
      );
      assert.ok(!JSON.stringify(audit).includes(token.split('_').pop()!));
    } finally {
      db.close();
    }
    err = '';
    assert.equal(await run(['token', 'create', '--role', 'admin']), 2);
    assert.match(err, /--role must be read or operate/);
  });
});
