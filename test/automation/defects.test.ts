// Issue 11's defects of the service, one test each (written first, seen failing, then fixed): the
// SSE stream past its end, the drain on shutdown, state wording, reads that load the host, logged
// credentials, error bodies, limits, file modes, token expiry and the stored spec.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import { PulumiCliError } from '../../automation/errors.ts';
import { openDatabase } from '../../automation/jobs/db.ts';
import { JobStore } from '../../automation/jobs/jobStore.ts';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import {
  api,
  readEvents,
  readEventsUntil,
  startTestService,
  tempDir,
  VALID_SPEC,
  waitForJob,
  type TestService,
} from './support/harness.ts';

const withTimeout = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([
    p,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${what}: not done after ${ms} ms`)), ms)),
  ]);

describe('automation service: issue 11 defects', () => {
  let engine: ScriptedEngine;
  let svc: TestService | undefined;
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    engine = new ScriptedEngine();
    tmp = tempDir();
  });
  afterEach(async () => {
    for (const s of ['dev', 'a', 'b', 'c']) if (engine.isHeld(s)) engine.release(s);
    await svc?.close({ jobTimeoutMs: 2000 });
    svc = undefined;
    tmp.cleanup();
  });
  const up = (stack: string, body: unknown = { spec: VALID_SPEC }, token = svc!.operate) =>
    api(svc!.url, 'POST', `/v1/stacks/${stack}/up`, { token, body });

  it('1: a stream resumed past the latest id ends when the job ends, with its result', async () => {
    svc = await startTestService(engine);
    engine.script('dev', { hold: true });
    const { json } = await up('dev');
    await engine.started('dev');
    const stream = readEvents(svc.url, json.jobId, svc.read, { query: '?after=1000' });
    const byHeader = readEvents(svc.url, json.jobId, svc.read, { lastEventId: '999' });
    await new Promise((r) => setTimeout(r, 100));
    engine.release('dev');
    const [a, b] = await withTimeout(Promise.all([stream, byHeader]), 3000, 'resumed streams');
    for (const s of [a, b]) assert.equal(s.events.at(-1)?.event, 'result');
  });

  it('2: during the drain new operations get 503 with Retry-After and /healthz says draining', async () => {
    svc = await startTestService(engine);
    engine.script('dev', { hold: true, holdThroughAbort: true });
    await up('dev');
    await engine.started('dev');
    const closing = svc.close({ jobTimeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    const res = await up('other');
    assert.equal(res.status, 503, res.text);
    assert.equal(res.json.error.code, 'draining');
    assert.ok(Number(res.headers.get('retry-after')) > 0);
    const health = await api(svc.url, 'GET', '/healthz');
    assert.equal(health.status, 503);
    assert.equal(health.json.status, 'draining');
    engine.release('dev');
    await closing;
  });

  it('3: a job interrupted by shutdown is not labelled cancelled', async () => {
    svc = await startTestService(engine);
    engine.script('dev', { hold: true });
    const { json } = await up('dev');
    await engine.started('dev');
    const closing = svc.close({ jobTimeoutMs: 2000 });
    await svc.runner.waitFor(json.jobId);
    const job = svc.store.getJob(json.jobId)!;
    await closing;
    assert.equal(job.status, 'interrupted');
    assert.equal(job.error!.code, 'interrupted');
    assert.doesNotMatch(job.error!.message, /cancel/);
    svc = undefined;
  });

  it('4: reads are coalesced, cached until the stack changes, and bounded', async () => {
    svc = await startTestService(engine, { extra: { readConcurrency: 2 } });
    for (const s of ['a', 'b', 'c', 'dev']) await waitForJob(svc, (await up(s)).json.jobId);
    let open!: () => void;
    engine.readGate = new Promise((r) => (open = r));
    const before = engine.readCalls;
    const same = Array.from({ length: 10 }, () =>
      api(svc!.url, 'GET', '/v1/stacks/dev/outputs', { token: svc!.read }),
    );
    const others = ['a', 'b', 'c'].map((s) =>
      api(svc!.url, 'GET', `/v1/stacks/${s}/history`, { token: svc!.read }),
    );
    await new Promise((r) => setTimeout(r, 100));
    open();
    const results = await Promise.all([...same, ...others]);
    for (const r of results) assert.equal(r.status, 200, r.text);
    assert.ok(engine.maxReadsRunning <= 2, `max concurrent reads ${engine.maxReadsRunning}`);
    assert.equal(engine.readCalls - before, 4, 'one engine read per distinct (read, stack)');
    // Cached: a second round makes no engine call; a job on the stack invalidates it.
    await api(svc.url, 'GET', '/v1/stacks/dev/outputs', { token: svc.read });
    assert.equal(engine.readCalls - before, 4);
    await waitForJob(svc, (await up('dev', {})).json.jobId);
    await api(svc.url, 'GET', '/v1/stacks/dev/outputs', { token: svc.read });
    assert.equal(engine.readCalls - before, 5);
  });

  it('7: a token in the query string is never logged', async () => {
    svc = await startTestService(engine);
    const secret = svc.read.split('_')[2]!;
    const res = await api(svc.url, 'GET', `/v1/jobs?token=${svc.read}&access_token=${svc.read}`);
    assert.equal(res.status, 401);
    assert.ok(svc.logs.length > 0, 'requests are logged');
    assert.ok(!svc.logs.join('').includes(secret), svc.logs.join(''));
  });

  it('9: error bodies follow the documented shape', async () => {
    svc = await startTestService(engine);
    // A long URL: the error shape, no echo of the URL, and no route answer before auth.
    const long = await api(svc.url, 'GET', `/v1/jobs/${'x'.repeat(300)}`);
    assert.ok(long.json?.error?.code, long.text);
    assert.ok(!long.text.includes('x'.repeat(300)), long.text);
    // Valid JSON with a __proto__ key: an unknown field, not malformed JSON.
    const proto = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      rawBody: '{"spec":{"clouds":["aws"]},"__proto__":{"admin":true}}',
    });
    assert.equal(proto.status, 400);
    assert.equal(proto.json.error.code, 'invalid_request', proto.text);
    assert.match(proto.json.error.message, /__proto__/);
    // {} for preview: names the missing field in plain words.
    const empty = await api(svc.url, 'POST', '/v1/stacks/dev/preview', { token: svc.operate, body: {} });
    assert.equal(empty.status, 400);
    assert.doesNotMatch(empty.json.error.message, /nonoptional/);
    assert.match(empty.json.error.message, /spec/);
    // Repeated query parameters: a clear 400, not NaN.
    const rep = await api(svc.url, 'GET', '/v1/jobs?limit=1&limit=2', { token: svc.read });
    assert.equal(rep.status, 400);
    assert.doesNotMatch(rep.text, /NaN/);
    assert.match(rep.json.error.message, /limit/);
    // Hex is not an event id.
    await waitForJob(svc, (await up('dev')).json.jobId);
    const jobId = svc.store.listJobs()[0]!.id;
    const hex = await api(svc.url, 'GET', `/v1/jobs/${jobId}/events?after=0x10`, { token: svc.read });
    assert.equal(hex.status, 400, hex.text);
    // A known path with the wrong method: 405 with Allow.
    const wrong = await api(svc.url, 'DELETE', `/v1/jobs/${jobId}`, { token: svc.operate });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.json.error.code, 'method_not_allowed');
    assert.match(wrong.headers.get('allow') ?? '', /GET/);
  });

  it('10: without a usable CLI an operation is refused with 503 (as documented), not 202-then-fail', async () => {
    engine.notReady = new PulumiCliError('pulumi_cli_missing', 'Pulumi CLI not found (pulumi)');
    svc = await startTestService(engine);
    const res = await up('dev');
    assert.equal(res.status, 503, res.text);
    assert.equal(res.json.error.code, 'pulumi_cli_missing');
    assert.equal(svc.store.listJobs().length, 0);
    const doc = (await api(svc.url, 'GET', '/openapi.json')).json;
    for (const op of ['up', 'preview', 'refresh', 'destroy'])
      assert.ok(doc.paths[`/v1/stacks/{stack}/${op}`].post.responses['503'], `${op} documents 503`);
    for (const p of ['/v1/stacks', '/v1/stacks/{stack}/outputs', '/v1/stacks/{stack}/history'])
      for (const code of ['502', '503'])
        assert.ok(doc.paths[p].get.responses[code], `${p} documents ${code}`);
  });

  it('12: job states are worded for what they are', async () => {
    svc = await startTestService(engine, { maxConcurrent: 1 });
    // Cancelling: a running job asked to stop reads `cancelling` until the engine returns.
    engine.script('a', { hold: true, holdThroughAbort: true });
    const a = (await up('a')).json.jobId;
    await engine.started('a');
    await api(svc.url, 'POST', `/v1/jobs/${a}/cancel`, { token: svc.operate, body: {} });
    assert.equal((await api(svc.url, 'GET', `/v1/jobs/${a}`, { token: svc.read })).json.status, 'cancelling');
    // A 409 for a queued job says queued.
    await up('b');
    const busy = await up('b', {});
    assert.equal(busy.status, 409);
    assert.match(busy.json.error.message, /queued/);
    assert.doesNotMatch(busy.json.error.message, /running/);
    engine.release('a');
    await svc.runner.idle();
    assert.equal(svc.store.getJob(a)!.status, 'cancelled');
  });

  it('12: recovery tells only jobs that ran about a stale lock; a job still running at the timeout is logged', async () => {
    const db = openDatabase(':memory:');
    const store = new JobStore(db);
    const queued = store.createJob({ stack: 'q', operation: 'up', requestedBy: 't' });
    const running = store.createJob({ stack: 'r', operation: 'up', requestedBy: 't' });
    store.markRunning(running.id);
    store.recoverInterrupted();
    assert.doesNotMatch(store.getJob(queued.id)!.error!.message, /lock/);
    assert.match(store.getJob(running.id)!.error!.message, /lock/);
    db.close();

    svc = await startTestService(engine);
    engine.script('dev', { hold: true, holdThroughAbort: true });
    const id = (await up('dev')).json.jobId;
    await engine.started('dev');
    await svc.close({ jobTimeoutMs: 100 });
    const logs = svc.logs.join('');
    assert.ok(logs.includes(id) && /still running/.test(logs), logs);
    engine.release('dev');
    svc = undefined;
  });

  it('13: the database and its directory are private to the service user', async () => {
    const dbFile = path.join(tmp.dir, 'state', 'automation.db');
    svc = await startTestService(engine, { dbFile });
    for (const f of [dbFile, path.dirname(dbFile)])
      assert.equal(statSync(f).mode & 0o077, 0, `${f} mode ${(statSync(f).mode & 0o777).toString(8)}`);
  });

  it('15: expired tokens are refused, last use is recorded, a revoked token ends its stream', async () => {
    svc = await startTestService(engine, { extra: { authRecheckMs: 50 } });
    const expired = svc.tokens.create('old', 'read', { expiresAt: new Date(Date.now() - 1000) });
    const r = await api(svc.url, 'GET', '/v1/jobs', { token: expired.token });
    assert.equal(r.status, 401);
    assert.match(r.json.error.message, /expired/);
    await api(svc.url, 'GET', '/v1/jobs', { token: svc.read });
    assert.ok(svc.tokens.list().find((t) => t.name === 'dashboard')!.lastUsedAt);

    engine.script('dev', { hold: true });
    const id = (await up('dev')).json.jobId;
    await engine.started('dev');
    const viewer = svc.tokens.create('viewer', 'read');
    const streamed = readEventsUntil(svc.url, id, viewer.token, () => false);
    await new Promise((res) => setTimeout(res, 100));
    svc.tokens.revoke(viewer.info.id);
    await withTimeout(streamed, 2000, 'stream of a revoked token');
  });

  it('15: the queue and open streams are bounded (429 with Retry-After)', async () => {
    svc = await startTestService(engine, { maxConcurrent: 1, extra: { maxQueued: 1, maxStreams: 1 } });
    engine.script('a', { hold: true });
    const a = (await up('a')).json.jobId;
    await engine.started('a');
    assert.equal((await up('b')).status, 202);
    const full = await up('c');
    assert.equal(full.status, 429, full.text);
    assert.equal(full.json.error.code, 'queue_full');
    assert.ok(Number(full.headers.get('retry-after')) > 0);
    const controller = new AbortController();
    const holder = await fetch(`${svc.url}/v1/jobs/${a}/events`, {
      headers: { authorization: `Bearer ${svc.read}` },
      signal: controller.signal,
    });
    assert.equal(holder.status, 200);
    const second = await api(svc.url, 'GET', `/v1/jobs/${a}/events`, { token: svc.read });
    assert.equal(second.status, 429, second.text);
    assert.equal(second.json.error.code, 'too_many_streams');
    controller.abort();
    void holder.body?.cancel().catch(() => {});
  });

  it('16: the stored spec is the source of truth: GET, PATCH merges, PUT replaces, up without spec uses it', async () => {
    svc = await startTestService(engine);
    const full = {
      clouds: ['aws', 'gcp', 'azure'],
      aws: { region: 'eu-west-1' },
      gcp: { project: 'acme-prod', region: 'europe-west1' },
      azure: { location: 'westeurope' },
    };
    const put = await api(svc.url, 'PUT', '/v1/stacks/prod/spec', { token: svc.operate, body: full });
    assert.equal(put.status, 200, put.text);
    const patch = await api(svc.url, 'PATCH', '/v1/stacks/prod/spec', {
      token: svc.operate,
      body: { replicator: { replicas: 3 } },
      contentType: 'application/merge-patch+json',
    });
    assert.equal(patch.status, 200, patch.text);
    const got = await api(svc.url, 'GET', '/v1/stacks/prod/spec', { token: svc.read });
    assert.equal(got.json.spec.replicator.replicas, 3);
    assert.equal(got.json.spec.gcp.project, 'acme-prod');
    assert.equal(got.json.spec.gcp.region, 'europe-west1');
    const res = await up('prod', { message: 'scale to 3' });
    assert.equal(res.status, 202, res.text);
    await waitForJob(svc, res.json.jobId);
    assert.equal(engine.calls.at(-1)!.spec!.gcp.project, 'acme-prod');
    assert.equal(engine.calls.at(-1)!.spec!.replicator.replicas, 3);
    // A partial spec sent to up against a stored one is refused, not applied with defaults.
    const partial = await up('prod', { spec: { replicator: { replicas: 4 } } });
    assert.equal(partial.status, 409, partial.text);
    assert.equal(partial.json.error.code, 'spec_exists');
  });

  it('16: values that identify infrastructure have no silent defaults', async () => {
    svc = await startTestService(engine);
    const res = await api(svc.url, 'PUT', '/v1/stacks/prod/spec', {
      token: svc.operate,
      body: { clouds: ['gcp'] },
    });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.code, 'invalid_spec');
    assert.match(res.json.error.message, /gcp\.project/);
  });

  it('16: an update whose preview replaces clusters or networks needs confirmReplace', async () => {
    svc = await startTestService(engine);
    await waitForJob(svc, (await up('prod')).json.jobId);
    const replace = {
      type: 'resource-pre' as const,
      op: 'replace',
      urn: 'urn:pulumi:prod::udpmesh::udpmesh:aws:Cluster$aws:eks/cluster:Cluster::udpmesh-aws',
      resourceType: 'aws:eks/cluster:Cluster',
      planning: true,
    };
    engine.script('prod', { before: [replace], after: [] });
    const res = await up('prod', { message: 'resize' });
    const job = await waitForJob(svc, res.json.jobId);
    assert.equal(job.status, 'failed');
    assert.equal(job.error!.code, 'confirmation_required');
    assert.match(job.error!.message, /udpmesh-aws/);
    assert.equal(engine.calls.filter((c) => c.op === 'up').length, 1, 'the update did not run');
    engine.script('prod', { before: [replace], after: [] });
    const ok = await waitForJob(svc, (await up('prod', { confirmReplace: true })).json.jobId);
    assert.equal(ok.status, 'succeeded', JSON.stringify(ok.error));
  });
});
