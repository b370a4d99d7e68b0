// What portal teams expect beyond the basics (issue 11): operation options and drift checks,
// idempotency keys, destroy protection, per-stack grants, signed and retried webhooks, audit of
// refusals with filters and a cursor, readiness and metrics, queue position, per-token rate limits,
// the stale-lock clear, retention purge, the job log as text, property diffs in preview events.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EngineEvent } from '@pulumi/pulumi/automation/index.js';
import { fromEngineEvent } from '../../automation/events.ts';
import { signPayload } from '../../automation/jobs/webhooks.ts';
import { scheduleDriftChecks } from '../../automation/service.ts';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import { api, startTestService, VALID_SPEC, waitForJob, type TestService } from './support/harness.ts';

const URN = 'urn:pulumi:dev::udpmesh::udpmesh:aws:Cluster$aws:eks/cluster:Cluster::udpmesh-aws';

describe('automation service: features', () => {
  let engine: ScriptedEngine;
  let svc: TestService | undefined;
  beforeEach(() => (engine = new ScriptedEngine()));
  afterEach(async () => {
    for (const s of ['dev', 'a', 'b']) if (engine.isHeld(s)) engine.release(s);
    await svc?.close({ jobTimeoutMs: 1000 });
    svc = undefined;
  });
  const post = (path: string, body: unknown = {}, headers: Record<string, string> = {}, token?: string) =>
    api(svc!.url, 'POST', path, { token: token ?? svc!.operate, body, headers });

  it('operation options reach the engine; a drift check refreshes, previews and reports drift (audit, metric)', async () => {
    svc = await startTestService(engine);
    await waitForJob(svc, (await post('/v1/stacks/dev/up', { spec: VALID_SPEC })).json.jobId);
    const r = await post('/v1/stacks/dev/up', {
      targets: [URN],
      replace: [URN],
      refresh: true,
      expectNoChanges: true,
    });
    await waitForJob(svc, r.json.jobId);
    const up = engine.calls.filter((c) => c.op === 'up').at(-1)!;
    assert.deepEqual(up.options, { targets: [URN], replace: [URN], refresh: true, expectNoChanges: true });
    engine.changes = { update: 1, same: 3 };
    const drift = await waitForJob(svc, (await post('/v1/stacks/dev/drift')).json.jobId);
    assert.equal(drift.status, 'succeeded');
    assert.equal((drift.result as { drift: boolean }).drift, true);
    assert.equal(engine.calls.at(-1)!.options!.refresh, true);
    const audit = await api(svc.url, 'GET', '/v1/audit?action=stack.drift', { token: svc.operate });
    assert.equal(audit.json.entries[0].result, 'drift_detected');
    const metrics = await api(svc.url, 'GET', '/metrics');
    assert.match(metrics.text, /udpmesh_automation_stack_drift\{stack="dev"\} 1/);
    // Scheduled: one round starts a drift job for every deployed stack with a stored spec.
    engine.changes = { same: 4 };
    const started = scheduleDriftChecks(svc.store, svc.runner);
    assert.equal(started.length, 1);
    await waitForJob(svc, started[0]!);
    assert.equal(svc.store.getJob(started[0]!)!.requestedBy, 'system:drift');
    assert.match(
      (await api(svc.url, 'GET', '/metrics')).text,
      /udpmesh_automation_stack_drift\{stack="dev"\} 0/,
    );
  });

  it('plan then apply: a preview saves its plan, up applies exactly it; refused once the spec changed', async () => {
    svc = await startTestService(engine);
    await waitForJob(svc, (await post('/v1/stacks/dev/up', { spec: VALID_SPEC })).json.jobId);
    const preview = await waitForJob(
      svc,
      (await post('/v1/stacks/dev/preview', { savePlan: true })).json.jobId,
    );
    assert.equal((preview.result as { planId: string }).planId, preview.id);
    assert.deepEqual(engine.calls.at(-1)!.options!.plan, { id: preview.id, mode: 'save' });
    const apply = await waitForJob(
      svc,
      (await post('/v1/stacks/dev/up', { planFrom: preview.id })).json.jobId,
    );
    assert.equal(apply.status, 'succeeded');
    const up = engine.calls.at(-1)!;
    assert.equal(up.op, 'up', 'no preflight preview: the saved preview was the confirmation');
    assert.deepEqual(up.options!.plan, { id: preview.id, mode: 'apply' });
    await api(svc.url, 'PATCH', '/v1/stacks/dev/spec', {
      token: svc.operate,
      body: { replicator: { replicas: 3 } },
    });
    const stale = await post('/v1/stacks/dev/up', { planFrom: preview.id });
    assert.equal(stale.status, 409);
    assert.equal(stale.json.error.code, 'plan_stale');
    const notAPlan = await post('/v1/stacks/dev/up', { planFrom: apply.id });
    assert.equal(notAPlan.json.error.code, 'invalid_plan');
  });

  it('an Idempotency-Key makes a POST run once; reusing it for another request is 409', async () => {
    svc = await startTestService(engine);
    const h = { 'idempotency-key': 'deploy-42' };
    const first = await post('/v1/stacks/dev/up', { spec: VALID_SPEC }, h);
    const again = await post('/v1/stacks/dev/up', { spec: VALID_SPEC }, h);
    assert.equal(first.status, 202);
    assert.equal(again.status, 202, again.text);
    assert.equal(again.json.jobId, first.json.jobId);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    const other = await post('/v1/stacks/dev/refresh', {}, h);
    assert.equal(other.status, 409);
    assert.equal(other.json.error.code, 'idempotency_key_reused');
    await waitForJob(svc, first.json.jobId);
    assert.equal(engine.calls.filter((c) => c.op === 'up').length, 1);
  });

  it('a protected stack cannot be destroyed until the protection is lifted (audited)', async () => {
    svc = await startTestService(engine);
    await waitForJob(svc, (await post('/v1/stacks/dev/up', { spec: VALID_SPEC })).json.jobId);
    const on = await api(svc.url, 'PUT', '/v1/stacks/dev/protection', {
      token: svc.operate,
      body: { protected: true },
    });
    assert.equal(on.status, 200);
    const refused = await post('/v1/stacks/dev/destroy');
    assert.equal(refused.status, 409);
    assert.equal(refused.json.error.code, 'stack_protected');
    await api(svc.url, 'PUT', '/v1/stacks/dev/protection', {
      token: svc.operate,
      body: { protected: false },
    });
    assert.equal((await post('/v1/stacks/dev/destroy')).status, 202);
    const audit = await api(svc.url, 'GET', '/v1/audit?stack=dev&action=stack.protection', {
      token: svc.operate,
    });
    assert.deepEqual(
      audit.json.entries.map((e: { result: string }) => e.result),
      ['unprotected', 'protected'],
    );
  });

  it('per-stack grants: a token limited to dev-* cannot touch prod, its jobs or its list', async () => {
    svc = await startTestService(engine);
    const limited = svc.tokens.create('team-dev', 'operate', { stacks: ['dev-*'] }).token;
    assert.equal((await post('/v1/stacks/dev-1/up', { spec: VALID_SPEC }, {}, limited)).status, 202);
    const prod = await post('/v1/stacks/prod/up', { spec: VALID_SPEC });
    const denied = await post('/v1/stacks/prod/up', { spec: VALID_SPEC }, {}, limited);
    assert.equal(denied.status, 403);
    const job = await api(svc.url, 'GET', `/v1/jobs/${prod.json.jobId}`, { token: limited });
    assert.equal(job.status, 404);
    assert.equal((await api(svc.url, 'GET', '/v1/jobs', { token: limited })).status, 403);
    const own = await api(svc.url, 'GET', '/v1/jobs?stack=dev-1', { token: limited });
    assert.equal(own.json.total, 1);
  });

  it('per-stack grants: a limited token reads only its stacks in the audit log and cannot purge', async () => {
    // Before: GET /v1/audit gave a dev-* token every stack's entries (prod's actors and actions), and
    // POST /v1/admin/purge let it delete every stack's history.
    svc = await startTestService(engine);
    const limited = svc.tokens.create('team-dev', 'operate', { stacks: ['dev-*'] }).token;
    await waitForJob(svc, (await post('/v1/stacks/prod/up', { spec: VALID_SPEC })).json.jobId);
    await waitForJob(svc, (await post('/v1/stacks/dev-1/up', { spec: VALID_SPEC }, {}, limited)).json.jobId);
    const all = await api(svc.url, 'GET', '/v1/audit', { token: limited });
    assert.equal(all.status, 403, `a dev-* token read ${all.json.total} audit entries of every stack`);
    assert.match(all.json.error.message, /pass \?stack=/);
    const prod = await api(svc.url, 'GET', '/v1/audit?stack=prod', { token: limited });
    assert.equal(prod.status, 403);
    const own = await api(svc.url, 'GET', '/v1/audit?stack=dev-1', { token: limited });
    assert.equal(own.status, 200);
    assert.ok(own.json.total > 0);
    assert.ok(own.json.entries.every((e: { stack?: string }) => e.stack === 'dev-1'));
    const purge = await api(svc.url, 'POST', '/v1/admin/purge', {
      token: limited,
      body: { olderThanDays: 1 },
    });
    assert.equal(purge.status, 403, 'a stack-limited token purged every stack');
    const ok = await api(svc.url, 'POST', '/v1/admin/purge', {
      token: svc.operate,
      body: { olderThanDays: 1 },
    });
    assert.equal(ok.status, 200);
  });

  it('webhooks: each finished job is POSTed, signed, and retried until accepted', async () => {
    const got: { headers: IncomingMessage['headers']; body: string }[] = [];
    let failures = 2;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        got.push({ headers: req.headers, body });
        res.statusCode = failures-- > 0 ? 503 : 204;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    try {
      svc = await startTestService(engine, {
        extra: { webhooks: { urls: [url], secret: 'a-long-shared-secret', backoffMs: 20 } },
      });
      const id = (await post('/v1/stacks/dev/up', { spec: VALID_SPEC })).json.jobId;
      await waitForJob(svc, id);
      await svc.close();
      svc = undefined;
      assert.equal(got.length, 3, 'two failures, then delivered');
      const last = got.at(-1)!;
      assert.equal(JSON.parse(last.body).job.id, id);
      assert.equal(JSON.parse(last.body).job.status, 'succeeded');
      const sig = String(last.headers['x-udpmesh-signature']);
      const t = Number(/t=(\d+)/.exec(sig)![1]);
      assert.equal(sig, signPayload('a-long-shared-secret', last.body, t));
      assert.equal(new Set(got.map((g) => g.headers['x-udpmesh-delivery'])).size, 1, 'one delivery id');
    } finally {
      server.close();
    }
  });

  it('refusals are audited; the audit log filters by actor, action, result and time, with a cursor and a total', async () => {
    svc = await startTestService(engine);
    await api(svc.url, 'GET', '/v1/jobs');
    await post('/v1/stacks/dev/up', { spec: VALID_SPEC }, {}, svc.read);
    for (let i = 0; i < 3; i++)
      await waitForJob(svc, (await post(`/v1/stacks/s${i}/up`, { spec: VALID_SPEC })).json.jobId);
    const refused = await api(svc.url, 'GET', '/v1/audit?result=refused_unauthenticated', {
      token: svc.operate,
    });
    assert.equal(refused.json.total, 1);
    const forbidden = await api(svc.url, 'GET', '/v1/audit?result=refused_forbidden', { token: svc.operate });
    assert.match(forbidden.json.entries[0].actor, /^dashboard#/);
    const page1 = await api(svc.url, 'GET', '/v1/audit?action=job.up&limit=2', { token: svc.operate });
    assert.equal(page1.json.entries.length, 2);
    assert.equal(page1.json.total, 6);
    const page2 = await api(
      svc.url,
      'GET',
      `/v1/audit?action=job.up&limit=2&before=${page1.json.nextBefore}`,
      {
        token: svc.operate,
      },
    );
    assert.ok(page2.json.entries.every((e: { id: number }) => e.id < page1.json.nextBefore));
    const future = await api(
      svc.url,
      'GET',
      `/v1/audit?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`,
      {
        token: svc.operate,
      },
    );
    assert.equal(future.json.total, 0);
    const jobs1 = await api(svc.url, 'GET', '/v1/jobs?limit=2', { token: svc.read });
    assert.equal(jobs1.json.total, 3);
    const jobs2 = await api(svc.url, 'GET', `/v1/jobs?limit=2&cursor=${jobs1.json.nextCursor}`, {
      token: svc.read,
    });
    assert.deepEqual(
      jobs2.json.jobs.map((j: { stack: string }) => j.stack),
      ['s0'],
    );
    assert.equal(jobs2.json.nextCursor, undefined);
    const byActor = await api(svc.url, 'GET', `/v1/audit?actor=${encodeURIComponent('anonymous')}`, {
      token: svc.operate,
    });
    assert.equal(byActor.json.total, 1);
  });

  it('readyz, metrics, queue position, per-token rate limit', async () => {
    svc = await startTestService(engine, { maxConcurrent: 1, extra: { perTokenPerMinute: 8 } });
    assert.equal((await api(svc.url, 'GET', '/readyz')).json.ready, true);
    engine.script('a', { hold: true });
    await post('/v1/stacks/a/up', { spec: VALID_SPEC });
    await engine.started('a');
    const queued = await post('/v1/stacks/b/up', { spec: VALID_SPEC });
    assert.equal(queued.json.job.queuePosition, 1);
    const metrics = (await api(svc.url, 'GET', '/metrics')).text;
    assert.match(metrics, /udpmesh_automation_queue_length 1/);
    assert.match(metrics, /udpmesh_automation_jobs\{status="running",operation="up"\} 1/);
    let limited;
    for (let i = 0; i < 10 && !limited; i++) {
      const r = await api(svc.url, 'GET', '/v1/jobs', { token: svc.operate });
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, 'the token was rate limited');
    assert.equal(limited.json.error.code, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) > 0);
    engine.notReady = new Error('no cli') as never;
    const ready = await api(svc.url, 'GET', '/readyz');
    assert.equal(ready.status, 503);
    assert.equal(ready.json.checks.engine.ok, false);
  });

  it('stale-lock clear (audited, refused while a job holds it), purge, job log as text', async () => {
    svc = await startTestService(engine);
    svc.db.prepare("INSERT INTO stack_locks VALUES ('dev', 'gone-job', 'otherhost:1', '2020-01-01')").run();
    const busy = await post('/v1/stacks/dev/up', { spec: VALID_SPEC });
    assert.equal(busy.status, 202, 'a lock whose job is unknown is taken over');
    await waitForJob(svc, busy.json.jobId);
    svc.db.prepare("INSERT INTO stack_locks VALUES ('x', 'gone-job', 'otherhost:1', '2020-01-01')").run();
    const clear = await post('/v1/stacks/x/lock/clear', { reason: 'crash of node 3' });
    assert.equal(clear.status, 200, clear.text);
    assert.equal(clear.json.cleared, true);
    const audit = await api(svc.url, 'GET', '/v1/audit?action=stack.lock.clear', { token: svc.operate });
    assert.equal(audit.json.entries[0].detail, 'crash of node 3');
    const log = await api(svc.url, 'GET', `/v1/jobs/${busy.json.jobId}/log`, { token: svc.read });
    assert.match(log.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(log.text, /create\s+aws:ec2\/vpc:Vpc\s+udpmesh-aws-vpc/);
    assert.match(log.text, /succeeded: 3 created, 1 unchanged/);
    svc.db.prepare("UPDATE jobs SET created_at = '2020-01-01T00:00:00.000Z'").run();
    const purge = await post('/v1/admin/purge', { olderThanDays: 30 });
    assert.equal(purge.json.jobs, 1);
    assert.ok(purge.json.events > 0);
    assert.equal((await api(svc.url, 'GET', `/v1/jobs/${busy.json.jobId}`, { token: svc.read })).status, 404);
  });

  it('preview events carry the changed property names and how each changes, never values', () => {
    const e = fromEngineEvent({
      sequence: 1,
      timestamp: 1,
      resourcePreEvent: {
        planning: true,
        metadata: {
          op: 'replace',
          urn: URN,
          type: 'aws:eks/cluster:Cluster',
          provider: '',
          diffs: ['version', 'vpcConfig'],
          detailedDiff: {
            version: { diffKind: 'update', inputDiff: true },
            vpcConfig: { diffKind: 'update-replace', inputDiff: true },
          },
          old: {
            type: 'x',
            urn: URN,
            custom: true,
            id: '1',
            parent: '',
            protect: false,
            inputs: { version: '1.32' },
            outputs: {},
          },
        },
      },
    } as unknown as EngineEvent);
    assert.deepEqual(e, {
      type: 'resource-pre',
      op: 'replace',
      urn: URN,
      resourceType: 'aws:eks/cluster:Cluster',
      planning: true,
      diffs: ['version', 'vpcConfig'],
      detailedDiff: { version: 'update', vpcConfig: 'update-replace' },
    });
  });
});
