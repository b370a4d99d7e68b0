// One operation per stack (409 with the running job's id), parallel stacks up to the limit
// (the rest queue), and durability: jobs, events and audit survive a restart; a job that was
// running when the service stopped is marked interrupted.
import assert from 'node:assert/strict';
import path from 'node:path';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import {
  api,
  readEvents,
  startTestService,
  tempDir,
  VALID_SPEC,
  waitForJob,
  type TestService,
} from './support/harness.ts';

describe('automation service: concurrency', () => {
  let engine: ScriptedEngine;
  let svc: TestService;
  afterEach(() => svc.close({ jobTimeoutMs: 2000 }));

  it('a second operation on a busy stack gets 409 with the running job id; after it ends, the stack is free', async () => {
    engine = new ScriptedEngine();
    svc = await startTestService(engine);
    engine.script('dev', { hold: true });
    const first = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    assert.equal(first.status, 202);
    for (const [op, body] of [
      ['up', { spec: VALID_SPEC }],
      ['preview', { spec: VALID_SPEC }],
      ['destroy', {}],
      ['refresh', {}],
    ] as const) {
      const second = await api(svc.url, 'POST', `/v1/stacks/dev/${op}`, { token: svc.operate, body });
      assert.equal(second.status, 409, op);
      assert.equal(second.json.error.code, 'stack_busy');
      assert.equal(second.json.error.details.runningJobId, first.json.jobId);
    }
    assert.equal(svc.store.listJobs({ stack: 'dev' }).length, 1, 'rejected submissions create no job');
    const audit = svc.store.listAudit({ stack: 'dev' });
    assert.equal(audit.filter((a) => a.result === 'rejected_busy').length, 4);
    engine.release('dev');
    await waitForJob(svc, first.json.jobId);
    const third = await api(svc.url, 'POST', '/v1/stacks/dev/preview', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    assert.equal(third.status, 202);
    await waitForJob(svc, third.json.jobId);
    assert.deepEqual(
      engine.calls.map((c) => c.op),
      ['up', 'preview'],
    );
  });

  it('different stacks run concurrently', async () => {
    engine = new ScriptedEngine();
    svc = await startTestService(engine, { maxConcurrent: 4 });
    const ids: string[] = [];
    for (const stack of ['a', 'b', 'c']) {
      engine.script(stack, { hold: true });
      const r = await api(svc.url, 'POST', `/v1/stacks/${stack}/up`, {
        token: svc.operate,
        body: { spec: VALID_SPEC },
      });
      assert.equal(r.status, 202);
      ids.push(r.json.jobId);
    }
    await Promise.all(['a', 'b', 'c'].map((s) => engine.started(s)));
    assert.equal(engine.running, 3, 'all three are inside the engine at once');
    for (const id of ids) assert.equal(svc.store.getJob(id)!.status, 'running');
    for (const s of ['c', 'a', 'b']) engine.release(s);
    for (const id of ids) assert.equal((await waitForJob(svc, id)).status, 'succeeded');
  });

  it('beyond the limit, jobs wait queued and start as slots free up; a queued job can be cancelled', async () => {
    engine = new ScriptedEngine();
    svc = await startTestService(engine, { maxConcurrent: 2 });
    const ids: Record<string, string> = {};
    for (const stack of ['s1', 's2', 's3', 's4']) {
      engine.script(stack, { hold: true });
      const r = await api(svc.url, 'POST', `/v1/stacks/${stack}/up`, {
        token: svc.operate,
        body: { spec: VALID_SPEC },
      });
      assert.equal(r.status, 202);
      ids[stack] = r.json.jobId;
    }
    await engine.started('s1');
    await engine.started('s2');
    assert.equal(engine.running, 2);
    const s3 = await api(svc.url, 'GET', `/v1/jobs/${ids.s3}`, { token: svc.read });
    assert.equal(s3.json.status, 'queued');
    assert.equal(s3.json.startedAt, undefined);
    // A queued stack is still busy for new submissions.
    const dup = await api(svc.url, 'POST', '/v1/stacks/s3/refresh', { token: svc.operate, body: {} });
    assert.equal(dup.status, 409);
    assert.equal(dup.json.error.details.runningJobId, ids.s3);
    // Cancel s4 while queued: it ends at once and never reaches the engine.
    const cancel = await api(svc.url, 'POST', `/v1/jobs/${ids.s4}/cancel`, { token: svc.operate });
    assert.equal(cancel.status, 202);
    assert.equal(cancel.json.job.status, 'cancelled');
    engine.release('s1');
    await engine.started('s3');
    assert.equal(engine.running, 2);
    engine.release('s2');
    engine.release('s3');
    for (const s of ['s1', 's2', 's3']) assert.equal((await waitForJob(svc, ids[s]!)).status, 'succeeded');
    assert.equal(engine.maxRunning, 2, 'never more than the limit');
    assert.deepEqual(engine.calls.map((c) => c.stack).sort(), ['s1', 's2', 's3']);
    const s4 = await readEvents(svc.url, ids.s4!, svc.read);
    assert.deepEqual(
      s4.events.map((e) => `${e.event}:${e.parsed.data.status}`),
      ['status:queued', 'result:cancelled'],
    );
  });
});

describe('automation service: restart', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  it('jobs, events, audit and tokens survive a crash; running and queued jobs become interrupted', async () => {
    const dbFile = path.join(tmp.dir, 'automation.db');
    const engine1 = new ScriptedEngine();
    const svc1 = await startTestService(engine1, { dbFile, maxConcurrent: 1 });
    const done = await api(svc1.url, 'POST', '/v1/stacks/done/up', {
      token: svc1.operate,
      body: { spec: VALID_SPEC },
    });
    await waitForJob(svc1, done.json.jobId);
    const doneEvents = (await readEvents(svc1.url, done.json.jobId, svc1.read)).events;
    engine1.script('inflight', { hold: true });
    const inflight = await api(svc1.url, 'POST', '/v1/stacks/inflight/up', {
      token: svc1.operate,
      body: { spec: VALID_SPEC },
    });
    await engine1.started('inflight');
    const queued = await api(svc1.url, 'POST', '/v1/stacks/waiting/refresh', {
      token: svc1.operate,
      body: {},
    });
    assert.equal(svc1.store.getJob(queued.json.jobId)!.status, 'queued');
    // Crash: the process goes away without finishing its jobs (no graceful shutdown).
    await svc1.app.close();
    svc1.db.close();

    const engine2 = new ScriptedEngine();
    const svc2 = await startTestService(engine2, { dbFile, createTokens: false });
    try {
      assert.deepEqual(svc2.recovered.sort(), [inflight.json.jobId, queued.json.jobId].sort());
      // Tokens from before the restart still work.
      const token = svc1.operate;
      const a = await api(svc2.url, 'GET', `/v1/jobs/${done.json.jobId}`, { token });
      assert.equal(a.json.status, 'succeeded');
      assert.deepEqual(
        (await readEvents(svc2.url, done.json.jobId, token)).events.map((e) => e.data),
        doneEvents.map((e) => e.data),
      );
      for (const id of [inflight.json.jobId, queued.json.jobId]) {
        const j = await api(svc2.url, 'GET', `/v1/jobs/${id}`, { token });
        assert.equal(j.json.status, 'interrupted');
        assert.equal(j.json.error.code, 'interrupted');
        assert.ok(j.json.finishedAt);
        const ev = await readEvents(svc2.url, id, token);
        assert.deepEqual(ev.events.at(-1)!.parsed.data.status, 'interrupted');
      }
      const audit = await api(svc2.url, 'GET', '/v1/audit', { token });
      const lines = audit.json.entries.map(
        (e: { actor: string; stack: string; result: string }) =>
          `${e.actor.split('#')[0]} ${e.stack} ${e.result}`,
      );
      for (const l of [
        'portal done accepted',
        'portal done succeeded',
        'portal inflight accepted',
        'system inflight interrupted',
        'system waiting interrupted',
      ]) {
        assert.ok(lines.includes(l), `audit has "${l}": ${lines.join(' | ')}`);
      }
      // The interrupted stack is free again.
      // Its spec was stored when it was accepted: up applies it.
      const again = await api(svc2.url, 'POST', '/v1/stacks/inflight/up', { token, body: {} });
      assert.equal(again.status, 202);
      assert.equal((await waitForJob(svc2, again.json.jobId)).status, 'succeeded');
    } finally {
      await svc2.close({ jobTimeoutMs: 2000 });
    }
    // A second restart recovers nothing more.
    const svc3 = await startTestService(new ScriptedEngine(), { dbFile, createTokens: false });
    assert.deepEqual(svc3.recovered, []);
    await svc3.close();
  });

  it('a graceful stop signals running jobs, which end interrupted', async () => {
    const dbFile = path.join(tmp.dir, 'automation.db');
    const engine = new ScriptedEngine();
    const svc = await startTestService(engine, { dbFile });
    engine.script('dev', { hold: true });
    const r = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    await engine.started('dev');
    const id = r.json.jobId;
    await svc.close({ jobTimeoutMs: 5000 });
    const svc2 = await startTestService(new ScriptedEngine(), { dbFile, createTokens: false });
    try {
      assert.deepEqual(svc2.recovered, [], 'nothing left to recover after a graceful stop');
      const job = svc2.store.getJob(id)!;
      assert.equal(job.status, 'interrupted');
      const events = svc2.store
        .events(id)
        .map((e) => (e.type === 'engine' ? (e.data as { type: string }).type : e.type));
      assert.ok(events.includes('cancel'), 'the engine was asked to stop');
    } finally {
      await svc2.close();
    }
  });
});
