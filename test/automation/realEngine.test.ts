// The real engine: PulumiEngine + the Pulumi CLI (built by scripts/install-pulumi-engine.sh, or on
// PATH) against a local file backend, offline. Three parts:
// - the lifecycle through the library with an inline program (component resources, config, a
//   secret output, a slow dynamic resource): create/select, set config, preview, up, outputs with
//   secrets hidden, refresh, history, concurrent operation -> busy (in process and through the
//   backend's lock), cancel of a running update, destroy, remove;
// - the same lifecycle through the service over HTTP (stored spec, jobs, SSE, 409, cancel);
// - the per-stack work dirs running a local program (test/automation/fixtures/project) through the
//   language host, as the service runs infra/.
// Skipped, with the reason printed, where no engine is found.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CancelledError, EngineError, StackBusyError, StackNotFoundError } from '../../automation/errors.ts';
import type { StackEvent } from '../../automation/events.ts';
import { PulumiEngine } from '../../automation/pulumiEngine.ts';
import { validateSpec } from '../../automation/spec.ts';
import { inlineProgram, SECRET_MARK } from './fixtures/inlineProgram.ts';
import {
  api,
  readEvents,
  readEventsUntil,
  startTestService,
  tempDir,
  waitForJob,
  type TestService,
} from './support/harness.ts';
import { engineEnv, findPulumiEngine, type FoundEngine } from './support/realEngine.ts';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'project');
const SPEC = {
  clouds: ['aws', 'gcp'],
  aws: { region: 'eu-west-1' },
  gcp: { project: 'p', region: 'europe-west1' },
};
const spec = () => validateSpec({ ...SPEC, etcd: { allowQuorumLossOnCloudFailure: true } });

function requireEngine(ctx: Mocha.Context): FoundEngine {
  const found = findPulumiEngine();
  if ('reason' in found) {
    console.log(`      skipped: ${found.reason}`);
    ctx.skip();
  }
  return found as FoundEngine;
}

function makeEngine(found: FoundEngine, dir: string, name: string, state?: { slowMs: number }) {
  mkdirSync(path.join(dir, 'backend'), { recursive: true });
  return new PulumiEngine({
    stateDir: path.join(dir, name),
    projectDir: FIXTURE,
    backendUrl: `file://${path.join(dir, 'backend')}`,
    pulumiHome: path.join(dir, 'pulumi-home'),
    pulumiRoot: found.root,
    envVars: engineEnv(found),
    ...(state ? { program: inlineProgram(state) } : {}),
  });
}

describe('automation library: lifecycle on the real Pulumi engine (inline program, file backend)', function () {
  this.timeout(300_000);
  let tmp: ReturnType<typeof tempDir>;
  let found: FoundEngine;
  let engine: PulumiEngine;
  const state = { slowMs: 10 };
  const stack = `lib-${process.pid}`;

  before(function () {
    found = requireEngine(this);
    tmp = tempDir('udpmesh-real-');
    engine = makeEngine(found, tmp.dir, 'a', state);
  });
  after(() => tmp?.cleanup());

  it('preview creates (selects) the stack, sets its config and plans the resources', async () => {
    const events: StackEvent[] = [];
    const r = await engine.preview(stack, spec(), { onEvent: (e) => events.push(e) });
    assert.equal(r.operation, 'preview');
    assert.ok((r.changes.create ?? 0) >= 4, JSON.stringify(r.changes));
    assert.ok(
      events.some(
        (e) => e.type === 'resource-pre' && e.planning && /Slow|dynamic/.test(e.resourceType + e.urn),
      ),
    );
    const cfg = readFileSync(path.join(engine.workDir(stack), `Pulumi.${stack}.yaml`), 'utf8');
    assert.match(cfg, /udpmesh:clouds:/);
    assert.match(cfg, /europe-west1/);
  });

  it('up creates the resources and returns outputs with the secret hidden', async () => {
    const events: StackEvent[] = [];
    const r = await engine.up(stack, spec(), { onEvent: (e) => events.push(e), message: 'first' });
    assert.deepEqual(r.outputs!.clouds, { value: ['aws', 'gcp'], secret: false });
    assert.deepEqual(r.outputs!.regions!.value, { aws: 'eu-west-1', gcp: 'europe-west1' });
    assert.deepEqual(r.outputs!.apiToken, { value: '[secret]', secret: true });
    assert.ok(events.some((e) => e.type === 'summary'));
    assert.ok(!JSON.stringify(events).includes(SECRET_MARK));
    const outputs = await engine.outputs(stack);
    assert.equal(outputs.apiToken!.value, '[secret]');
    assert.ok(!JSON.stringify(outputs).includes(SECRET_MARK));
  });

  it('a concurrent operation is busy: in this process, and through the backend lock from another', async () => {
    state.slowMs = 6000;
    const other = makeEngine(found, tmp.dir, 'b', state);
    const events: StackEvent[] = [];
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const update = engine.up(stack, spec(), {
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'resource-pre' && e.urn.endsWith('::slow')) started();
      },
    });
    await running;
    await assert.rejects(engine.refresh(stack), StackBusyError);
    await assert.rejects(other.refresh(stack), (e: unknown) => {
      assert.ok(e instanceof StackBusyError, String(e));
      assert.match(e.message, /locked/);
      return true;
    });
    const r = await update;
    assert.equal(r.changes.update, 1, JSON.stringify(r.changes));
  });

  it('refresh and history', async () => {
    const r = await engine.refresh(stack, { message: 'check' });
    assert.equal(r.operation, 'refresh');
    const h = await engine.history(stack);
    assert.deepEqual(
      h.map((u) => u.kind),
      ['refresh', 'update', 'update'],
    );
    assert.equal(h.at(-1)!.message, 'first');
    assert.ok(h.every((u) => u.result === 'succeeded'));
    assert.ok((await engine.listStacks()).some((s) => s.name === stack));
  });

  it('cancel of a running update: Pulumi stops after the operation in flight, the call is CancelledError', async () => {
    state.slowMs = 5000;
    const controller = new AbortController();
    const events: StackEvent[] = [];
    const update = engine.up(stack, spec(), {
      signal: controller.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'resource-pre' && e.urn.endsWith('::slow')) controller.abort();
      },
    });
    await assert.rejects(update, CancelledError);
    // The stack is usable afterwards (the lock is released).
    const r = await engine.refresh(stack);
    assert.equal(r.operation, 'refresh');
    state.slowMs = 10;
  });

  it('plan then apply: up performs the saved plan; Pulumi refuses it once the program wants more', async () => {
    state.slowMs = 20;
    const planId = '00000000-0000-4000-8000-00000000a11c';
    const preview = await engine.preview(stack, spec(), { plan: { id: planId, mode: 'save' } });
    assert.equal(preview.changes.update, 1, JSON.stringify(preview.changes));
    const applied = await engine.up(stack, spec(), { plan: { id: planId, mode: 'apply' } });
    assert.equal(applied.changes.update, 1, JSON.stringify(applied.changes));
    state.slowMs = 30;
    await assert.rejects(engine.up(stack, spec(), { plan: { id: planId, mode: 'apply' } }), (e: unknown) => {
      assert.ok(e instanceof EngineError, String(e));
      assert.match(e.message, /plan/i);
      return true;
    });
    state.slowMs = 10;
  });

  it('destroy with remove deletes the resources and the stack', async () => {
    const r = await engine.destroy(stack, { remove: true });
    assert.ok((r.changes.delete ?? 0) >= 4, JSON.stringify(r.changes));
    assert.ok(!(await engine.listStacks()).some((s) => s.name === stack));
    await assert.rejects(engine.outputs(stack), StackNotFoundError);
  });
});

describe('automation service: lifecycle on the real Pulumi engine (HTTP, jobs, SSE)', function () {
  this.timeout(300_000);
  let tmp: ReturnType<typeof tempDir>;
  let svc: TestService;
  const state = { slowMs: 10 };
  const stack = `svc-${process.pid}`;
  const job = async (r: { status: number; text: string; json: { jobId: string } }) => {
    assert.equal(r.status, 202, r.text);
    return waitForJob(svc, r.json.jobId);
  };

  before(async function () {
    const found = requireEngine(this);
    tmp = tempDir('udpmesh-real-svc-');
    svc = await startTestService(makeEngine(found, tmp.dir, 's', state), {
      dbFile: path.join(tmp.dir, 'db', 'a.db'),
    });
  });
  after(async () => {
    await svc?.close({ jobTimeoutMs: 30_000 });
    tmp?.cleanup();
  });

  it('stores the spec, previews, applies, streams events, answers outputs (secret hidden), refreshes, shows history', async () => {
    const put = await api(svc.url, 'PUT', `/v1/stacks/${stack}/spec`, {
      token: svc.operate,
      body: { ...SPEC, etcd: { allowQuorumLossOnCloudFailure: true } },
    });
    assert.equal(put.status, 200, put.text);
    const preview = await job(
      await api(svc.url, 'POST', `/v1/stacks/${stack}/preview`, { token: svc.operate, body: {} }),
    );
    assert.equal(preview.status, 'succeeded', JSON.stringify(preview.error));
    const up = await api(svc.url, 'POST', `/v1/stacks/${stack}/up`, {
      token: svc.operate,
      body: { message: 'portal' },
    });
    const done = await job(up);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    const stream = await readEvents(svc.url, up.json.jobId, svc.read);
    assert.equal(stream.events.at(-1)!.event, 'result');
    assert.ok(stream.events.some((e) => e.event === 'engine' && e.parsed.data.type === 'summary'));
    assert.ok(!stream.raw.includes(SECRET_MARK));
    const outputs = await api(svc.url, 'GET', `/v1/stacks/${stack}/outputs`, { token: svc.read });
    assert.equal(outputs.status, 200, outputs.text);
    assert.deepEqual(outputs.json.outputs.apiToken, { value: '[secret]', secret: true });
    assert.ok(!outputs.text.includes(SECRET_MARK));
    const refresh = await job(
      await api(svc.url, 'POST', `/v1/stacks/${stack}/refresh`, { token: svc.operate, body: {} }),
    );
    assert.equal(refresh.status, 'succeeded', JSON.stringify(refresh.error));
    const history = await api(svc.url, 'GET', `/v1/stacks/${stack}/history`, { token: svc.read });
    assert.deepEqual(
      history.json.updates.map((u: { kind: string }) => u.kind),
      ['refresh', 'update'],
    );
    const log = await api(svc.url, 'GET', `/v1/jobs/${up.json.jobId}/log`, { token: svc.read });
    assert.match(log.text, /succeeded/);
  });

  it('a running update: a second operation gets 409 naming it; cancel ends it cancelled', async () => {
    state.slowMs = 5000;
    const up = await api(svc.url, 'POST', `/v1/stacks/${stack}/up`, { token: svc.operate, body: {} });
    assert.equal(up.status, 202, up.text);
    await readEventsUntil(svc.url, up.json.jobId, svc.read, (events) =>
      events.some(
        (e) =>
          e.event === 'engine' &&
          e.parsed.data.type === 'resource-pre' &&
          e.parsed.data.urn.endsWith('::slow'),
      ),
    );
    const busy = await api(svc.url, 'POST', `/v1/stacks/${stack}/refresh`, { token: svc.operate, body: {} });
    assert.equal(busy.status, 409);
    assert.equal(busy.json.error.details.runningJobId, up.json.jobId);
    const cancel = await api(svc.url, 'POST', `/v1/jobs/${up.json.jobId}/cancel`, {
      token: svc.operate,
      body: {},
    });
    assert.equal(cancel.status, 202);
    const ended = await waitForJob(svc, up.json.jobId);
    assert.equal(ended.status, 'cancelled', JSON.stringify(ended.error));
    state.slowMs = 10;
  });

  it('destroy with remove: the stack is gone (404)', async () => {
    const d = await job(
      await api(svc.url, 'POST', `/v1/stacks/${stack}/destroy`, {
        token: svc.operate,
        body: { remove: true },
      }),
    );
    assert.equal(d.status, 'succeeded', JSON.stringify(d.error));
    const outputs = await api(svc.url, 'GET', `/v1/stacks/${stack}/outputs`, { token: svc.read });
    assert.equal(outputs.status, 404, outputs.text);
  });
});

describe('automation library: a local program in per-stack work dirs on the real engine', function () {
  this.timeout(300_000);
  let tmp: ReturnType<typeof tempDir>;
  let engine: PulumiEngine;
  const stack = `it-${process.pid}`;

  before(function () {
    const found = requireEngine(this);
    tmp = tempDir('udpmesh-real-local-');
    engine = makeEngine(found, tmp.dir, 'l');
  });
  after(() => tmp?.cleanup());

  it('up runs the project program through the language host; outputs with the secret hidden; destroy + remove', async () => {
    const r = await engine.up(stack, validateSpec({ clouds: ['aws', 'gcp', 'azure'] }), { message: 'it' });
    assert.deepEqual(r.outputs!.clouds, { value: ['aws', 'gcp', 'azure'], secret: false });
    assert.deepEqual(r.outputs!.apiToken, { value: '[secret]', secret: true });
    assert.equal((await engine.history(stack))[0]!.message, 'it');
    await engine.destroy(stack, { remove: true });
    await assert.rejects(engine.outputs(stack), StackNotFoundError);
  });
});
