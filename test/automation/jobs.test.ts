// The HTTP job API for real (loopback server, real SQLite) over a scripted engine: 202 + job id,
// status, SSE (history, live, resume), failures with diagnostics, cancel, outputs, history, OpenAPI.
import assert from 'node:assert/strict';
import { EngineError, PulumiCliError } from '../../automation/errors.ts';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import {
  api,
  readEvents,
  readEventsUntil,
  startTestService,
  VALID_SPEC,
  waitForJob,
  type TestService,
} from './support/harness.ts';

describe('automation service: jobs over HTTP', () => {
  let engine: ScriptedEngine;
  let svc: TestService;

  beforeEach(async () => {
    engine = new ScriptedEngine();
    svc = await startTestService(engine);
  });
  afterEach(async () => {
    await svc.close({ jobTimeoutMs: 2000 });
  });

  it('up answers 202 with a job id, runs the job and records the result', async () => {
    const res = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC, message: 'first' },
    });
    assert.equal(res.status, 202);
    const id: string = res.json.jobId;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(res.headers.get('location'), `/v1/jobs/${id}`);
    assert.equal(res.json.job.stack, 'dev');
    assert.equal(res.json.job.operation, 'up');
    assert.equal(res.json.job.links.events, `/v1/jobs/${id}/events`);

    await waitForJob(svc, id);
    const status = await api(svc.url, 'GET', `/v1/jobs/${id}`, { token: svc.read });
    assert.equal(status.status, 200);
    assert.equal(status.json.status, 'succeeded');
    assert.equal(status.json.requestedBy.split('#')[0], 'portal');
    assert.equal(status.json.message, 'first');
    assert.deepEqual(status.json.result.changes, { create: 3, same: 1 });
    assert.deepEqual(status.json.result.outputs, { clusters: { value: ['aws'], secret: false } });
    assert.ok(status.json.startedAt && status.json.finishedAt);

    // The engine got the validated spec (defaults applied), not the raw body.
    assert.equal(engine.calls.length, 1);
    assert.deepEqual(engine.calls[0]!.spec!.clouds, ['aws', 'gcp', 'azure']);
    assert.equal(engine.calls[0]!.spec!.mesh, 'udpmesh');
    assert.equal(engine.calls[0]!.message, 'first');
  });

  it('streams the engine events and the final result as SSE with ids, to late subscribers too', async () => {
    const { json } = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    await waitForJob(svc, json.jobId);
    const stream = await readEvents(svc.url, json.jobId, svc.read);
    assert.equal(stream.status, 200);
    assert.match(stream.contentType ?? '', /^text\/event-stream/);
    const ids = stream.events.map((e) => Number(e.id));
    assert.deepEqual(
      ids,
      ids.map((_, i) => i + 1),
      'ids are 1..n in order',
    );
    const types = stream.events.map((e) => e.event);
    assert.deepEqual(types.slice(0, 2), ['status', 'status']);
    assert.deepEqual(
      stream.events.slice(0, 2).map((e) => e.parsed.data.status),
      ['queued', 'running'],
    );
    assert.equal(types.at(-1), 'result');
    const engineEvents = stream.events.filter((e) => e.event === 'engine').map((e) => e.parsed.data);
    assert.equal(engineEvents[0].type, 'prelude');
    assert.equal(engineEvents.at(-1).type, 'summary');
    assert.ok(engineEvents.some((e) => e.type === 'resource-outputs' && e.urn.endsWith('::udpmesh-aws')));
    const result = stream.events.at(-1)!.parsed.data;
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(result.result.changes, { create: 3, same: 1 });
    assert.equal(stream.events.length, svc.store.getJob(json.jobId)!.eventCount);
  });

  it('streams live events of a running job and resumes from Last-Event-ID without gaps or repeats', async () => {
    engine.script('live', { hold: true });
    const { json } = await api(svc.url, 'POST', '/v1/stacks/live/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    await engine.started('live');
    // Read until the diagnostic emitted before the hold point, then disconnect.
    const first = await readEventsUntil(svc.url, json.jobId, svc.read, (evs) =>
      evs.some((e) => e.event === 'engine' && e.parsed.data.type === 'diagnostic'),
    );
    assert.ok(first.length >= 3);
    assert.ok(!first.some((e) => e.event === 'result'));
    engine.release('live');
    await waitForJob(svc, json.jobId);
    const lastSeen = first.at(-1)!.id!;
    const rest = await readEvents(svc.url, json.jobId, svc.read, { lastEventId: lastSeen });
    assert.equal(Number(rest.events[0]!.id), Number(lastSeen) + 1);
    const all = await readEvents(svc.url, json.jobId, svc.read);
    assert.deepEqual(
      [...first, ...rest.events].map((e) => e.id),
      all.events.map((e) => e.id),
    );
    // ?after= works the same for clients that cannot set headers (EventSource after a reload).
    const viaQuery = await readEvents(svc.url, json.jobId, svc.read, { query: `?after=${lastSeen}` });
    assert.deepEqual(
      viaQuery.events.map((e) => e.id),
      rest.events.map((e) => e.id),
    );
    // Resuming after the result: the stream ends at once, empty.
    const past = await readEvents(svc.url, json.jobId, svc.read, { lastEventId: all.events.at(-1)!.id! });
    assert.equal(past.status, 200);
    assert.deepEqual(past.events, []);
  });

  it('a live subscriber receives events as they happen on one connection, ending with the result', async () => {
    engine.script('live2', { hold: true });
    const { json } = await api(svc.url, 'POST', '/v1/stacks/live2/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    await engine.started('live2');
    let releasedAt = -1;
    const events = await readEventsUntil(svc.url, json.jobId, svc.read, (evs) => {
      // The engine is held: only once this connection has seen the pre-hold events is it released,
      // so whatever follows on the same connection was delivered live.
      if (releasedAt < 0 && evs.some((e) => e.event === 'engine' && e.parsed.data.type === 'diagnostic')) {
        releasedAt = evs.length;
        engine.release('live2');
      }
      return evs.some((e) => e.event === 'result');
    });
    assert.ok(releasedAt > 0);
    const live = events.slice(releasedAt);
    assert.ok(
      live.some((e) => e.event === 'engine' && e.parsed.data.type === 'summary'),
      'summary arrived live',
    );
    assert.equal(events.at(-1)!.parsed.data.status, 'succeeded');
    assert.deepEqual(
      events.map((e) => Number(e.id)),
      events.map((_, i) => i + 1),
    );
  });

  it('a failing operation ends failed with the engine diagnostics', async () => {
    engine.script('bad', {
      after: [
        {
          type: 'diagnostic',
          severity: 'error',
          message: 'creating EKS cluster: AccessDeniedException: not authorized',
          urn: 'urn:pulumi:bad::udpmesh::aws:eks/cluster:Cluster::udpmesh-aws',
        },
        {
          type: 'resource-failed',
          op: 'create',
          urn: 'urn:pulumi:bad::udpmesh::aws:eks/cluster:Cluster::udpmesh-aws',
          resourceType: 'aws:eks/cluster:Cluster',
        },
      ],
      fail: new EngineError(
        'pulumi failed (exit 255): creating EKS cluster: AccessDeniedException: not authorized',
        [
          {
            severity: 'error',
            message: 'creating EKS cluster: AccessDeniedException: not authorized',
            urn: 'urn:pulumi:bad::udpmesh::aws:eks/cluster:Cluster::udpmesh-aws',
          },
        ],
      ),
    });
    const { json } = await api(svc.url, 'POST', '/v1/stacks/bad/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    const job = await waitForJob(svc, json.jobId);
    assert.equal(job.status, 'failed');
    const res = await api(svc.url, 'GET', `/v1/jobs/${json.jobId}`, { token: svc.read });
    assert.equal(res.json.error.code, 'engine_failure');
    assert.match(res.json.error.message, /AccessDenied/);
    assert.equal(res.json.error.details.diagnostics[0].severity, 'error');
    const stream = await readEvents(svc.url, json.jobId, svc.read);
    assert.ok(stream.events.some((e) => e.event === 'engine' && e.parsed.data.type === 'resource-failed'));
    assert.equal(stream.events.at(-1)!.parsed.data.status, 'failed');
    assert.equal(stream.events.at(-1)!.parsed.data.error.code, 'engine_failure');
  });

  it('a stack locked outside this service fails the job as stack_busy', async () => {
    engine.script('locked', { lockedElsewhere: true });
    const { json } = await api(svc.url, 'POST', '/v1/stacks/locked/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    const job = await waitForJob(svc, json.jobId);
    assert.equal(job.status, 'failed');
    assert.equal(job.error!.code, 'stack_busy');
  });

  it('a missing Pulumi CLI fails jobs with pulumi_cli_missing and reads with 503, with install instructions', async () => {
    const cliError = () =>
      new PulumiCliError('pulumi_cli_missing', 'Pulumi CLI not found (pulumi)', undefined, '3.150.0');
    engine.script('nocli', { fail: cliError() });
    const r = await api(svc.url, 'POST', '/v1/stacks/nocli/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    const job = await waitForJob(svc, r.json.jobId);
    assert.equal(job.status, 'failed');
    assert.equal(job.error!.code, 'pulumi_cli_missing');
    assert.match(job.error!.message, /get\.pulumi\.com/);
    engine.outputs = async () => {
      throw cliError();
    };
    const outputs = await api(svc.url, 'GET', '/v1/stacks/nocli/outputs', { token: svc.read });
    assert.equal(outputs.status, 503);
    assert.equal(outputs.json.error.code, 'pulumi_cli_missing');
    assert.equal(outputs.json.error.details.minimumVersion, '3.150.0');
  });

  it('cancel stops a running job: it ends cancelled, with the engine cancel event, and is audited', async () => {
    engine.script('c', { hold: true });
    const { json } = await api(svc.url, 'POST', '/v1/stacks/c/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    await engine.started('c');
    const cancel = await api(svc.url, 'POST', `/v1/jobs/${json.jobId}/cancel`, { token: svc.operate });
    assert.equal(cancel.status, 202);
    const job = await waitForJob(svc, json.jobId);
    assert.equal(job.status, 'cancelled');
    assert.equal(job.error!.code, 'cancelled');
    const stream = await readEvents(svc.url, json.jobId, svc.read);
    const kinds = stream.events.map((e) =>
      e.event === 'engine' ? e.parsed.data.type : `${e.event}:${e.parsed.data.status}`,
    );
    assert.ok(kinds.includes('status:cancelling'));
    assert.ok(kinds.includes('cancel'));
    assert.equal(kinds.at(-1), 'result:cancelled');
    // Cancelling again: the job has finished.
    const again = await api(svc.url, 'POST', `/v1/jobs/${json.jobId}/cancel`, { token: svc.operate });
    assert.equal(again.status, 409);
    assert.equal(again.json.error.code, 'job_finished');
    const audit = await api(svc.url, 'GET', '/v1/audit?stack=c', { token: svc.operate });
    const actions = audit.json.entries.map(
      (e: { action: string; result: string }) => `${e.action}:${e.result}`,
    );
    assert.deepEqual(actions, ['job.up:cancelled', 'job.cancel:requested', 'job.up:accepted']);
    assert.ok(
      audit.json.entries.every(
        (e: { actor: string; time: string }) => e.actor.startsWith('portal#') && e.time,
      ),
    );
  });

  it('cancel of an unknown job is 404', async () => {
    const res = await api(svc.url, 'POST', '/v1/jobs/00000000-0000-4000-8000-000000000000/cancel', {
      token: svc.operate,
    });
    assert.equal(res.status, 404);
    assert.equal(res.json.error.code, 'job_not_found');
    const get = await api(svc.url, 'GET', '/v1/jobs/00000000-0000-4000-8000-000000000000', {
      token: svc.read,
    });
    assert.equal(get.status, 404);
  });

  it('preview, refresh and destroy (with remove) reach the engine with their options', async () => {
    for (const [op, body] of [
      ['up', { spec: VALID_SPEC }],
      ['preview', { spec: { clouds: ['aws'], aws: { region: 'us-east-1' } } }],
      ['refresh', undefined],
      ['destroy', { remove: true }],
    ] as const) {
      const res = await api(svc.url, 'POST', `/v1/stacks/ops/${op}`, {
        token: svc.operate,
        ...(body ? { body } : {}),
      });
      assert.equal(res.status, 202, `${op}: ${res.text}`);
      const job = await waitForJob(svc, res.json.jobId);
      assert.equal(job.status, 'succeeded', `${op}: ${JSON.stringify(job.error)}`);
    }
    assert.deepEqual(
      engine.calls.map((c) => [c.op, c.remove ?? null]),
      [
        ['up', null],
        ['preview', null],
        ['refresh', null],
        ['destroy', true],
      ],
    );
    assert.deepEqual(engine.calls[1]!.spec!.clouds, ['aws']);
    assert.deepEqual(svc.store.listJobs({ stack: 'ops', limit: 1 })[0]!.options, { remove: true });
    // Destroy with remove deleted the stack: outputs are now 404.
    const outputs = await api(svc.url, 'GET', '/v1/stacks/ops/outputs', { token: svc.read });
    assert.equal(outputs.status, 404);
    assert.equal(outputs.json.error.code, 'stack_not_found');
  });

  it('refresh of a stack that does not exist ends failed with stack_not_found', async () => {
    const res = await api(svc.url, 'POST', '/v1/stacks/ghost/refresh', { token: svc.operate, body: {} });
    const job = await waitForJob(svc, res.json.jobId);
    assert.equal(job.status, 'failed');
    assert.equal(job.error!.code, 'stack_not_found');
  });

  it('outputs, stack list, stack history and job history', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await api(svc.url, 'POST', '/v1/stacks/prod/up', {
        token: svc.operate,
        // The first up stores the spec; the next applies the stored one.
        body: i === 0 ? { spec: VALID_SPEC, message: `deploy ${i}` } : { message: `deploy ${i}` },
      });
      await waitForJob(svc, r.json.jobId);
    }
    const r2 = await api(svc.url, 'POST', '/v1/stacks/dev/preview', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    await waitForJob(svc, r2.json.jobId);

    const outputs = await api(svc.url, 'GET', '/v1/stacks/prod/outputs', { token: svc.read });
    assert.equal(outputs.status, 200);
    assert.deepEqual(outputs.json, {
      stack: 'prod',
      outputs: { clusters: { value: ['aws'], secret: false } },
    });
    const stacks = await api(svc.url, 'GET', '/v1/stacks', { token: svc.read });
    assert.deepEqual(
      stacks.json.stacks.map((s: { name: string }) => s.name),
      ['prod'],
    );
    const history = await api(svc.url, 'GET', '/v1/stacks/prod/history?pageSize=10', { token: svc.read });
    assert.deepEqual(
      history.json.updates.map((u: { version: number; message: string }) => [u.version, u.message]),
      [
        [2, 'deploy 1'],
        [1, 'deploy 0'],
      ],
    );

    const jobs = await api(svc.url, 'GET', '/v1/jobs', { token: svc.read });
    assert.deepEqual(
      jobs.json.jobs.map((j: { stack: string; operation: string }) => `${j.stack}:${j.operation}`),
      ['dev:preview', 'prod:up', 'prod:up'],
    );
    const prodJobs = await api(svc.url, 'GET', '/v1/jobs?stack=prod&status=succeeded&limit=1', {
      token: svc.read,
    });
    assert.equal(prodJobs.json.jobs.length, 1);
    assert.equal(prodJobs.json.jobs[0].message, 'deploy 1');
    const none = await api(svc.url, 'GET', '/v1/jobs?status=failed', { token: svc.read });
    assert.deepEqual(none.json.jobs, []);
  });

  it('serves an OpenAPI 3.1 document with every route and the infra spec schema, without auth', async () => {
    const res = await api(svc.url, 'GET', '/openapi.json');
    assert.equal(res.status, 200);
    const doc = res.json;
    assert.equal(doc.openapi, '3.1.0');
    for (const p of [
      '/v1/stacks/{stack}/up',
      '/v1/stacks/{stack}/preview',
      '/v1/stacks/{stack}/refresh',
      '/v1/stacks/{stack}/destroy',
      '/v1/stacks/{stack}/outputs',
      '/v1/stacks/{stack}/history',
      '/v1/stacks',
      '/v1/jobs',
      '/v1/jobs/{id}',
      '/v1/jobs/{id}/events',
      '/v1/jobs/{id}/cancel',
      '/v1/audit',
    ]) {
      assert.ok(doc.paths[p], `missing ${p}`);
    }
    assert.deepEqual((await api(svc.url, 'GET', '/.well-known/openapi.json')).json, doc);
    const spec = doc.components.schemas.StackConfig;
    assert.equal(spec.additionalProperties, false);
    assert.ok(spec.properties.clouds && spec.properties.replicator && spec.properties.etcd);
    assert.equal(
      doc.paths['/v1/stacks/{stack}/up'].post.responses['409'].description.includes('runningJobId'),
      true,
    );
    // Every $ref resolves.
    const refs = JSON.stringify(doc).match(/"\$ref":"#\/components\/schemas\/[A-Za-z]+"/g) ?? [];
    for (const r of refs) assert.ok(doc.components.schemas[r.split('/').pop()!.replace('"', '')], r);
  });
});

describe('automation service: event stream connections', () => {
  it('sends keep-alive comments while a job is quiet, and a disconnect unsubscribes', async () => {
    const engine = new ScriptedEngine();
    const svc = await startTestService(engine, { heartbeatMs: 20 });
    try {
      engine.script('quiet', { hold: true });
      const { json } = await api(svc.url, 'POST', '/v1/stacks/quiet/up', {
        token: svc.operate,
        body: { spec: VALID_SPEC },
      });
      await engine.started('quiet');
      const controller = new AbortController();
      const res = await fetch(`${svc.url}/v1/jobs/${json.jobId}/events`, {
        headers: { authorization: `Bearer ${svc.read}` },
        signal: controller.signal,
      });
      assert.equal(res.headers.get('cache-control'), 'no-cache, no-transform');
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let raw = '';
      while (!raw.includes(': keep-alive\n\n')) {
        const { value, done } = await reader.read();
        assert.ok(!done, 'stream stays open while the job runs');
        raw += decoder.decode(value, { stream: true });
      }
      assert.equal(svc.runner.subscriberCount(json.jobId), 1);
      controller.abort();
      // The server notices the closed connection and drops the subscription (no leak).
      while (svc.runner.subscriberCount(json.jobId) > 0) await new Promise((r) => setTimeout(r, 5));
      engine.release('quiet');
      assert.equal((await waitForJob(svc, json.jobId)).status, 'succeeded');
    } finally {
      await svc.close({ jobTimeoutMs: 2000 });
    }
  });
});
