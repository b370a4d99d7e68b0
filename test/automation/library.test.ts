// The library without HTTP: spec validation and stack names, event projection, redaction
// (property-based), error mapping from the Automation API, the Pulumi CLI check (with fake CLIs),
// and the per-stack project file.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import {
  CommandError,
  ConcurrentUpdateError,
  LocalWorkspace,
  PulumiCommand,
  StackNotFoundError as PulumiStackNotFound,
  type EngineEvent,
} from '@pulumi/pulumi/automation/index.js';
import {
  CancelledError,
  EngineError,
  InvalidSpecError,
  InvalidStackNameError,
  PulumiCliError,
  StackBusyError,
  StackNotFoundError,
} from '../../automation/errors.ts';
import { fromEngineEvent } from '../../automation/events.ts';
import {
  applyConfig,
  checkPulumiCli,
  mapError,
  projectFileFor,
  PulumiEngine,
  structuredValue,
} from '../../automation/pulumiEngine.ts';
import { REDACTED, Redactor, redactOutputs } from '../../automation/redact.ts';
import {
  assertStackName,
  isValidStackName,
  secretValuesOf,
  toPulumiConfig,
  validateSpec,
} from '../../automation/spec.ts';
import { tempDir } from './support/harness.ts';

describe('automation library: spec and stack names', () => {
  it('validates with the infra schema and reports every issue by key', () => {
    const spec = validateSpec({ clouds: ['aws'] });
    assert.equal(spec.etcd.members, 3, 'schema defaults applied');
    assert.throws(
      () =>
        validateSpec({
          clouds: ['aws', 'mars'],
          aws: { nodePool: { minNodes: 5, maxNodes: 2, desiredNodes: 3 } },
        }),
      (err: unknown) =>
        err instanceof InvalidSpecError &&
        err.code === 'invalid_spec' &&
        err.issues.some((i) => i.key === 'clouds[1]') &&
        err.issues.some((i) => i.key === 'aws.nodePool.minNodes'),
    );
    assert.throws(() => validateSpec('clouds: aws'), InvalidSpecError);
  });

  it('accepts only safe stack names', () => {
    for (const ok of ['dev', 'prod-eu', 'a', 'team.stack_1', 'A9', 'x'.repeat(64)])
      assert.ok(isValidStackName(ok), ok);
    for (const bad of [
      '',
      '.',
      '..',
      'a/b',
      'a\\b',
      '../x',
      '.x',
      '-x',
      '_x',
      'a b',
      'a\0b',
      'x'.repeat(65),
      'a..b',
      'é',
      'org/proj/dev',
    ]) {
      assert.ok(!isValidStackName(bad), bad);
      assert.throws(() => assertStackName(bad), InvalidStackNameError);
    }
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        if (isValidStackName(s)) assert.ok(!/[/\\\0]/.test(s) && !s.includes('..') && !s.startsWith('.'));
      }),
    );
  });

  it('secretValuesOf picks values marked secret, including the leaves of JSON values', () => {
    assert.deepEqual(
      secretValuesOf({
        'udpmesh:clouds': { value: '["aws"]' },
        'udpmesh:token': { value: 'tok-123', secret: true },
        'udpmesh:creds': { value: JSON.stringify({ user: 'admin', pass: 'hunter22' }), secret: true },
      }).sort(),
      ['admin', 'hunter22', 'tok-123', JSON.stringify({ user: 'admin', pass: 'hunter22' })].sort(),
    );
  });
});

describe('automation library: engine events', () => {
  const meta = {
    op: 'create' as const,
    urn: 'urn:pulumi:dev::udpmesh::aws:ec2/vpc:Vpc::vpc',
    type: 'aws:ec2/vpc:Vpc',
    provider: '',
    new: {
      type: 'aws:ec2/vpc:Vpc',
      urn: '',
      id: '',
      parent: '',
      provider: '',
      inputs: { password: 'in-clear' },
      outputs: { arn: 'x' },
    },
  };
  it('projects Pulumi engine events to compact events without resource inputs/outputs', () => {
    const cases: [EngineEvent, unknown][] = [
      [
        { sequence: 1, timestamp: 1, preludeEvent: { config: { 'udpmesh:clouds': '["aws"]' } } },
        { type: 'prelude', config: { 'udpmesh:clouds': '["aws"]' } },
      ],
      [
        { sequence: 2, timestamp: 1, resourcePreEvent: { metadata: meta, planning: true } },
        { type: 'resource-pre', op: 'create', urn: meta.urn, resourceType: meta.type, planning: true },
      ],
      [
        { sequence: 3, timestamp: 1, resOutputsEvent: { metadata: meta } },
        { type: 'resource-outputs', op: 'create', urn: meta.urn, resourceType: meta.type },
      ],
      [
        { sequence: 4, timestamp: 1, resOpFailedEvent: { metadata: meta, status: 1, steps: 1 } },
        { type: 'resource-failed', op: 'create', urn: meta.urn, resourceType: meta.type },
      ],
      [
        {
          sequence: 5,
          timestamp: 1,
          diagnosticEvent: {
            message: '\u001b[31merror:\u001b[0m <{%reset%}>boom<{%reset%}>\n',
            color: 'raw',
            severity: 'error',
            urn: meta.urn,
          },
        },
        { type: 'diagnostic', severity: 'error', message: 'error: boom\n', urn: meta.urn },
      ],
      [
        {
          sequence: 6,
          timestamp: 1,
          diagnosticEvent: { message: 'progress', color: 'raw', severity: 'info', ephemeral: true },
        },
        undefined,
      ],
      [
        {
          sequence: 7,
          timestamp: 1,
          summaryEvent: {
            maybeCorrupt: false,
            durationSeconds: 3,
            resourceChanges: { create: 2, same: 1 },
            policyPacks: {},
          },
        },
        { type: 'summary', resourceChanges: { create: 2, same: 1 }, durationSeconds: 3, maybeCorrupt: false },
      ],
      [{ sequence: 8, timestamp: 1, cancelEvent: {} }, { type: 'cancel' }],
      [{ sequence: 9, timestamp: 1 }, undefined],
    ];
    for (const [input, expected] of cases) assert.deepEqual(fromEngineEvent(input), expected);
    assert.ok(!JSON.stringify(cases.map(([e]) => fromEngineEvent(e))).includes('in-clear'));
  });
});

describe('automation library: redaction', () => {
  it('replaces every occurrence, in keys and nested values, longest secret first', () => {
    const r = new Redactor(['abc', 'abcdef', '']);
    assert.deepEqual(r.value({ 'k-abcdef': ['xabcx', { y: 'abcdefabc' }], n: 3, b: true, z: null }), {
      'k-[secret]': ['x[secret]x', { y: '[secret][secret]' }],
      n: 3,
      b: true,
      z: null,
    });
    assert.equal(new Redactor(['a"b\\c']).string(JSON.stringify({ v: 'a"b\\c' })), '{"v":"[secret]"}');
  });

  it('property: no secret survives in the JSON of any value that contained it', () => {
    const secret = fc.stringMatching(/^[A-Za-z0-9+/=_-]{4,24}$/).filter((s) => !REDACTED.includes(s));
    const json = fc.jsonValue({ maxDepth: 3 });
    fc.assert(
      fc.property(secret, json, fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), (s, v, glue) => {
        const withSecret = { payload: v, text: `${glue.join(s)}${s}`, nested: [{ [s]: s }] };
        const out = JSON.stringify(new Redactor([s]).value(withSecret));
        assert.ok(!out.includes(s));
      }),
      { numRuns: 300 },
    );
  });

  it('hides outputs flagged secret and redacts known secrets in the others', () => {
    assert.deepEqual(
      redactOutputs(
        { a: { value: { t: 'x' }, secret: true }, b: { value: 'url/s3cr3t', secret: false } },
        new Redactor(['s3cr3t']),
      ),
      {
        a: { value: REDACTED, secret: true },
        b: { value: `url/${REDACTED}`, secret: false },
      },
    );
  });
});

describe('automation library: typed errors from the Automation API', () => {
  // The shape of the SDK's (internal) CommandResult, which its error classes take.
  const result = (stderr: string, code = 255) => ({
    stdout: '',
    stderr,
    code,
    toString: () => `code: ${code}\n stderr: ${stderr}`,
  });
  it('maps lock conflicts, missing stacks, command failures and aborts', () => {
    const busy = mapError(
      new ConcurrentUpdateError(result('error: the stack is currently locked by 1 lock(s)') as never),
      'dev',
      [],
      new Redactor(),
      undefined,
    );
    assert.ok(busy instanceof StackBusyError && busy.code === 'stack_busy');
    const missing = mapError(
      new PulumiStackNotFound(result("error: no stack named 'dev' found") as never),
      'dev',
      [],
      new Redactor(),
      undefined,
    );
    assert.ok(missing instanceof StackNotFoundError);
    const failed = mapError(
      new CommandError(result('error: update failed; token=hunter22\n') as never),
      'dev',
      [
        { severity: 'error', message: 'aws: AccessDenied' },
        { severity: 'warning', message: 'deprecated' },
      ],
      new Redactor(['hunter22']),
      undefined,
    );
    assert.ok(failed instanceof EngineError, String(failed));
    assert.equal(failed.message, 'pulumi failed (exit 255): aws: AccessDenied');
    assert.equal(failed.diagnostics.length, 2);
    assert.ok(failed.stderr.includes('token=[secret]') && !failed.stderr.includes('hunter22'));
    const controller = new AbortController();
    controller.abort();
    assert.ok(
      mapError(new Error('killed'), 'dev', [], new Redactor(), controller.signal) instanceof CancelledError,
    );
    const other = mapError(
      new Error('spawn failed: hunter22'),
      'dev',
      [],
      new Redactor(['hunter22']),
      undefined,
    );
    assert.ok(other instanceof EngineError && other.message === 'spawn failed: [secret]');
  });
});

describe('automation library: Pulumi CLI check', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  /** A fake `pulumi` that knows its version, logs every other call (cwd and args) and fails it. */
  function fakeCli(version: string): string {
    const root = path.join(tmp.dir, `pulumi-${version}`);
    mkdirSync(path.join(root, 'bin'), { recursive: true });
    const bin = path.join(root, 'bin', 'pulumi');
    writeFileSync(
      bin,
      `#!/bin/sh\nif [ "$1" = version ]; then echo "${version}"; exit 0; fi\n` +
        `echo "$PWD|$*" >> "${root}/calls.log"\necho "error: fake pulumi cannot $1" >&2; exit 1\n`,
    );
    chmodSync(bin, 0o755);
    return root;
  }

  it('a missing CLI is PulumiCliError pulumi_cli_missing with install instructions', async () => {
    await assert.rejects(checkPulumiCli(path.join(tmp.dir, 'nowhere'), '3.150.0'), (err: unknown) => {
      assert.ok(err instanceof PulumiCliError);
      assert.equal(err.code, 'pulumi_cli_missing');
      assert.match(err.message, /get\.pulumi\.com/);
      return true;
    });
  });

  it('an old CLI is pulumi_cli_too_old naming both versions; a recent one passes', async () => {
    await assert.rejects(checkPulumiCli(fakeCli('v3.100.0'), '3.150.0'), (err: unknown) => {
      assert.ok(err instanceof PulumiCliError);
      assert.equal(err.code, 'pulumi_cli_too_old');
      assert.equal(err.foundVersion, 'v3.100.0');
      assert.equal(err.minimumVersion, '3.150.0');
      assert.match(err.message, /install/i);
      return true;
    });
    await assert.rejects(checkPulumiCli(fakeCli('garbage'), '3.150.0'), /older than the required/);
    const cli = await checkPulumiCli(fakeCli('v3.210.1'), '3.150.0');
    assert.equal(cli.version?.toString(), '3.210.1');
  });

  it('PulumiEngine calls fail typed: invalid spec and stack name before the CLI, then a missing CLI', async () => {
    const engine = new PulumiEngine({
      stateDir: tmp.dir,
      projectDir: tmp.dir,
      pulumiRoot: path.join(tmp.dir, 'nowhere'),
    });
    await assert.rejects(engine.up('dev', { clouds: [] } as never), InvalidSpecError);
    await assert.rejects(engine.up('../etc', validateSpec({ clouds: ['aws'] })), InvalidStackNameError);
    await assert.rejects(
      engine.up('dev', validateSpec({ clouds: ['aws'] })),
      (e: unknown) => e instanceof PulumiCliError && e.code === 'pulumi_cli_missing',
    );
    await assert.rejects(engine.outputs('dev'), PulumiCliError);
    await assert.rejects(engine.listStacks(), PulumiCliError);
    const old = new PulumiEngine({ stateDir: tmp.dir, projectDir: tmp.dir, pulumiRoot: fakeCli('v3.1.0') });
    await assert.rejects(
      old.destroy('dev', { remove: true }),
      (e: unknown) => e instanceof PulumiCliError && e.code === 'pulumi_cli_too_old',
    );
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(engine.refresh('dev', { signal: controller.signal }), CancelledError);
  });
});

describe('automation library: PulumiEngine against a fake CLI', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  it('runs every stack in its own work dir holding a Pulumi.yaml that points at the project program', async () => {
    const root = path.join(tmp.dir, 'pulumi');
    mkdirSync(path.join(root, 'bin'), { recursive: true });
    writeFileSync(
      path.join(root, 'bin', 'pulumi'),
      `#!/bin/sh\nif [ "$1" = version ]; then echo v3.210.0; exit 0; fi\necho "$PWD|$*" >> "${root}/calls.log"\n` +
        `echo "error: the stack is broken" >&2; exit 255\n`,
    );
    chmodSync(path.join(root, 'bin', 'pulumi'), 0o755);
    const project = path.join(tmp.dir, 'repo');
    mkdirSync(path.join(project, 'infra'), { recursive: true });
    writeFileSync(
      path.join(project, 'Pulumi.yaml'),
      'name: udpmesh\nruntime:\n  name: nodejs\nmain: infra/index.ts\n',
    );
    const stateDir = path.join(tmp.dir, 'state');
    const engine = new PulumiEngine({ stateDir, projectDir: project, pulumiRoot: root });
    for (const stack of ['dev', 'prod']) {
      await assert.rejects(engine.up(stack, validateSpec({ clouds: ['aws'] })), (e: unknown) => {
        assert.ok(e instanceof EngineError, String(e));
        assert.match(e.stderr, /the stack is broken/);
        return true;
      });
    }
    const { readFileSync } = await import('node:fs');
    const YAML = (await import('yaml')).default;
    for (const stack of ['dev', 'prod']) {
      const file = YAML.parse(readFileSync(path.join(stateDir, 'stacks', stack, 'Pulumi.yaml'), 'utf8'));
      assert.equal(file.name, 'udpmesh');
      assert.equal(
        path.resolve(stateDir, 'stacks', stack, file.main),
        path.join(project, 'infra', 'index.ts'),
      );
    }
    const calls = readFileSync(path.join(root, 'calls.log'), 'utf8').trim().split('\n');
    assert.ok(
      calls.some((c) => c.startsWith(path.join(stateDir, 'stacks', 'dev') + '|') && /--stack dev/.test(c)),
      calls.join('\n'),
    );
    assert.ok(
      calls.some((c) => c.startsWith(path.join(stateDir, 'stacks', 'prod') + '|') && /--stack prod/.test(c)),
      calls.join('\n'),
    );
  });
});

describe('automation library: stack config written for the typed project config', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  it('writes structured values as YAML, drops stale keys of the namespace, keeps the rest, encrypts secrets via the CLI', async () => {
    const root = path.join(tmp.dir, 'pulumi');
    mkdirSync(path.join(root, 'bin'), { recursive: true });
    writeFileSync(path.join(root, 'bin', 'pulumi'), '#!/bin/sh\necho v3.210.0\n');
    chmodSync(path.join(root, 'bin', 'pulumi'), 0o755);
    const workDir = path.join(tmp.dir, 'stacks', 'dev');
    mkdirSync(workDir, { recursive: true });
    writeFileSync(path.join(workDir, 'Pulumi.yaml'), 'name: udpmesh\nruntime: nodejs\n');
    writeFileSync(
      path.join(workDir, 'Pulumi.dev.yaml'),
      'encryptionsalt: v1:abc\nconfig:\n  aws:region: eu-west-1\n  udpmesh:gcp: \'{"project":"old"}\'\n  udpmesh:mesh: old\n',
    );
    const ws = await LocalWorkspace.create({
      workDir,
      pulumiCommand: await PulumiCommand.get({ root, skipVersionCheck: true }),
    });
    const secretCalls: unknown[] = [];
    const fakeStack = {
      name: 'dev',
      workspace: ws,
      setAllConfig: async (c: unknown) => void secretCalls.push(c),
    };
    const spec = validateSpec({ clouds: ['aws', 'azure', 'gcp'], mesh: 'prod' });
    const config: Record<string, { value: string; secret?: boolean }> = {
      ...toPulumiConfig(spec),
      'udpmesh:token': { value: 'tok-1', secret: true },
    };
    delete config['udpmesh:gcp'];
    await applyConfig(fakeStack as never, config);
    const YAML = (await import('yaml')).default;
    const { readFileSync } = await import('node:fs');
    const file = YAML.parse(readFileSync(path.join(workDir, 'Pulumi.dev.yaml'), 'utf8'));
    assert.equal(file.encryptionsalt, 'v1:abc');
    assert.equal(file.config['aws:region'], 'eu-west-1', 'other namespaces untouched');
    assert.deepEqual(
      file.config['udpmesh:clouds'],
      ['aws', 'azure', 'gcp'],
      'an array, as the project config type requires',
    );
    assert.equal(file.config['udpmesh:mesh'], 'prod');
    assert.equal(file.config['udpmesh:replicator'].replicas, 2);
    assert.equal(file.config['udpmesh:gcp'], undefined, 'stale key removed');
    assert.equal(file.config['udpmesh:token'], undefined, 'secrets are not written in clear');
    assert.deepEqual(secretCalls, [{ 'udpmesh:token': { value: 'tok-1', secret: true } }]);
    assert.equal(structuredValue('[1'), '[1');
    assert.equal(structuredValue('plain'), 'plain');
    assert.equal(structuredValue('null'), 'null');
  });
});

describe('automation library: per-stack work directory', () => {
  it('rewrites main relative to the stack work dir, keeping the rest of the project file', () => {
    const root = {
      name: 'udpmesh',
      runtime: { name: 'nodejs', options: { nodeargs: '--import tsx' } },
      main: 'infra/index.ts',
    };
    const p = projectFileFor(root, '/repo', '/var/lib/udpmesh/stacks/dev');
    assert.equal(path.resolve('/var/lib/udpmesh/stacks/dev', p.main as string), '/repo/infra/index.ts');
    assert.deepEqual({ ...p, main: undefined }, { ...root, main: undefined });
    const inside = projectFileFor(
      { name: 'udpmesh', runtime: 'nodejs' },
      '/repo',
      '/repo/.udpmesh/stacks/dev',
    );
    assert.equal(inside.main, '../../..');
    assert.equal(
      projectFileFor({ name: 'x', main: 'infra/' }, '/repo', '/repo/.udpmesh/stacks/dev').main,
      '../../../infra/',
    );
  });
});
