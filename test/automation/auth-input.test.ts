// Authentication (bearer tokens, roles, hashed storage) and bad input: each bad request gets a
// clear 4xx and changes nothing (no job, no audit entry, no engine call).
import assert from 'node:assert/strict';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import { api, startTestService, VALID_SPEC, type TestService } from './support/harness.ts';

describe('automation service: authentication', () => {
  let engine: ScriptedEngine;
  let svc: TestService;
  beforeEach(async () => {
    engine = new ScriptedEngine();
    svc = await startTestService(engine);
  });
  afterEach(() => svc.close({ jobTimeoutMs: 2000 }));

  it('rejects requests without a token, with a malformed or unknown token, or a revoked one (401)', async () => {
    const revoked = svc.tokens.create('old', 'operate');
    svc.tokens.revoke(revoked.info.id);
    const forged = svc.operate.slice(0, -4) + 'AAAA';
    for (const headers of [
      {} as Record<string, string>,
      { authorization: 'Bearer' },
      { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
      { authorization: 'Bearer udpm_0123456789abcdef_' + 'A'.repeat(43) },
      { authorization: `Bearer ${forged}` },
      { authorization: `Bearer ${revoked.token}` },
    ]) {
      for (const [method, url, body] of [
        ['GET', '/v1/jobs', undefined],
        ['GET', '/v1/stacks', undefined],
        ['POST', '/v1/stacks/dev/up', { spec: VALID_SPEC }],
      ] as const) {
        const res = await api(svc.url, method, url, { headers, ...(body ? { body } : {}) });
        assert.equal(res.status, 401, `${method} ${url} with ${JSON.stringify(headers)}`);
        assert.equal(res.json.error.code, 'unauthorized');
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
      }
    }
    assert.equal(engine.calls.length, 0);
    assert.deepEqual(svc.store.listJobs(), []);
  });

  it('a read token reads but cannot operate or cancel (403); an operate token does both', async () => {
    const denied = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.read,
      body: { spec: VALID_SPEC },
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.json.error.code, 'forbidden');
    assert.equal(engine.calls.length, 0);
    assert.equal((await api(svc.url, 'GET', '/v1/audit', { token: svc.read })).status, 403);

    engine.script('dev', { hold: true });
    const ok = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC },
    });
    assert.equal(ok.status, 202);
    await engine.started('dev');
    assert.equal((await api(svc.url, 'GET', `/v1/jobs/${ok.json.jobId}`, { token: svc.read })).status, 200);
    const cancelDenied = await api(svc.url, 'POST', `/v1/jobs/${ok.json.jobId}/cancel`, { token: svc.read });
    assert.equal(cancelDenied.status, 403);
    assert.ok(engine.isHeld('dev'), 'a denied cancel does not cancel');
    engine.release('dev');
  });

  it('stores only a hash of each token', async () => {
    const { token, info } = svc.tokens.create('ci', 'read');
    const secret = token.split('_').pop()!;
    const dump = JSON.stringify(svc.db.prepare('SELECT * FROM tokens').all());
    assert.ok(dump.includes(info.id));
    assert.ok(!dump.includes(secret), 'the token secret is not stored');
    assert.ok(!dump.includes(svc.operate.split('_').pop()!));
    assert.equal(svc.tokens.verify(token)?.name, 'ci');
    assert.equal(svc.tokens.verify(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')), undefined);
  });
});

describe('automation service: bad requests', () => {
  let engine: ScriptedEngine;
  let svc: TestService;
  beforeEach(async () => {
    engine = new ScriptedEngine();
    svc = await startTestService(engine, { bodyLimit: 16 * 1024 });
  });
  afterEach(() => svc.close({ jobTimeoutMs: 2000 }));

  function assertNothingChanged() {
    assert.equal(engine.calls.length, 0, 'engine not called');
    assert.deepEqual(svc.store.listJobs(), [], 'no job');
    assert.deepEqual(svc.store.listAudit(), [], 'no audit entry');
  }

  it('malformed JSON is 400 malformed_json', async () => {
    for (const rawBody of ['{"spec": ', '{spec: 1}', "{'a':1}", '']) {
      const res = await api(svc.url, 'POST', '/v1/stacks/dev/up', { token: svc.operate, rawBody });
      assert.equal(res.status, 400, rawBody);
      assert.equal(res.json.error.code, 'malformed_json');
    }
    assertNothingChanged();
  });

  it('prototype-poisoning JSON is rejected', async () => {
    const res = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      rawBody: '{"spec":{"clouds":["aws"]},"__proto__":{"admin":true}}',
    });
    assert.equal(res.status, 400);
    assertNothingChanged();
  });

  it('unknown fields, at the top or inside the spec, are 400 naming the field', async () => {
    const top = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: VALID_SPEC, force: true },
    });
    assert.equal(top.status, 400);
    assert.equal(top.json.error.code, 'invalid_request');
    assert.match(top.json.error.message, /force/);
    const inner = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: { ...VALID_SPEC, aws: { regoin: 'eu-west-1' } } },
    });
    assert.equal(inner.status, 400);
    assert.equal(inner.json.error.code, 'invalid_spec');
    assert.deepEqual(
      inner.json.error.details.issues.map((i: { key: string }) => i.key),
      ['aws'],
    );
    assert.match(inner.json.error.details.issues[0].message, /regoin/);
    const destroy = await api(svc.url, 'POST', '/v1/stacks/dev/destroy', {
      token: svc.operate,
      body: { remove: 'yes' },
    });
    assert.equal(destroy.status, 400);
    const cancel = await api(svc.url, 'POST', '/v1/jobs/00000000-0000-4000-8000-000000000000/cancel', {
      token: svc.operate,
      body: { why: 1 },
    });
    assert.equal(cancel.status, 400);
    assertNothingChanged();
  });

  it('an invalid spec is 400 invalid_spec with every issue keyed', async () => {
    const missing = await api(svc.url, 'POST', '/v1/stacks/dev/up', { token: svc.operate, body: {} });
    assert.equal(missing.status, 400);
    assert.match(missing.json.error.message, /spec/);
    const res = await api(svc.url, 'POST', '/v1/stacks/dev/preview', {
      token: svc.operate,
      body: {
        spec: {
          clouds: ['aws', 'gcp', 'azure'],
          gcp: { vpcCidr: '10.10.0.0/16' },
          replicator: { replicas: 0 },
        },
      },
    });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, 'invalid_spec');
    assert.deepEqual(
      res.json.error.details.issues.map((i: { key: string }) => i.key),
      ['replicator.replicas'],
    );
    const overlap = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: { clouds: ['aws', 'gcp', 'azure'], gcp: { vpcCidr: '10.10.0.0/16' } } },
    });
    assert.equal(overlap.status, 400);
    assert.ok(
      overlap.json.error.details.issues.some(
        (i: { key: string; message: string }) => i.key === 'gcp.vpcCidr' && /overlaps/.test(i.message),
      ),
    );
    for (const spec of [null, 'clouds: [aws]', [], { clouds: [] }]) {
      const r = await api(svc.url, 'POST', '/v1/stacks/dev/up', { token: svc.operate, body: { spec } });
      assert.equal(r.status, 400, JSON.stringify(spec));
    }
    assertNothingChanged();
  });

  it('oversized bodies are 413, non-JSON bodies 415', async () => {
    const big = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      body: { spec: { ...VALID_SPEC, mesh: 'x'.repeat(20 * 1024) } },
    });
    assert.equal(big.status, 413);
    assert.equal(big.json.error.code, 'body_too_large');
    const text = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      rawBody: 'clouds=aws',
      contentType: 'text/plain',
    });
    assert.equal(text.status, 415);
    const form = await api(svc.url, 'POST', '/v1/stacks/dev/up', {
      token: svc.operate,
      rawBody: 'a=1',
      contentType: 'application/x-www-form-urlencoded',
    });
    assert.equal(form.status, 415);
    assertNothingChanged();
  });

  it('stack names with path characters or outside the alphabet are 400 invalid_stack_name', async () => {
    // `..` and `%2E%2E` are dot segments: the client's URL parser removes them, so they never reach
    // a stack route; the server sees /v1/up and answers 404. Still nothing may change.
    for (const name of ['..', '%2E%2E']) {
      const res = await api(svc.url, 'POST', `/v1/stacks/${name}/up`, {
        token: svc.operate,
        body: { spec: VALID_SPEC },
      });
      assert.equal(res.status, 404, `${name}: ${res.status} ${res.text}`);
    }
    for (const name of [
      'a%2Fb',
      '..%2F..%2Fetc',
      '%2E%2E%2Fx',
      'a%5Cb',
      '.hidden',
      '-x',
      'a%20b',
      'a%00b',
      'x'.repeat(65),
      'dev..prod',
      '%C3%A9t%C3%A9',
    ]) {
      const res = await api(svc.url, 'POST', `/v1/stacks/${name}/up`, {
        token: svc.operate,
        body: { spec: VALID_SPEC },
      });
      assert.equal(res.status, 400, `${name}: ${res.status} ${res.text}`);
      assert.equal(res.json.error.code, 'invalid_stack_name', name);
      const get = await api(svc.url, 'GET', `/v1/stacks/${name}/outputs`, { token: svc.read });
      assert.equal(get.status, 400, name);
    }
    const q = await api(svc.url, 'GET', '/v1/jobs?stack=../x', { token: svc.read });
    assert.equal(q.status, 400);
    assertNothingChanged();
  });

  it('bad ids, unknown query parameters and unknown routes are 4xx', async () => {
    assert.equal(
      (await api(svc.url, 'GET', '/v1/jobs/not-a-job', { token: svc.read })).json.error.code,
      'invalid_job_id',
    );
    assert.equal((await api(svc.url, 'GET', '/v1/jobs?limit=100000', { token: svc.read })).status, 400);
    assert.equal((await api(svc.url, 'GET', '/v1/jobs?stauts=failed', { token: svc.read })).status, 400);
    assert.equal((await api(svc.url, 'GET', '/v1/jobs?status=weird', { token: svc.read })).status, 400);
    assert.equal(
      (
        await api(svc.url, 'POST', '/v1/stacks/dev/up?force=1', {
          token: svc.operate,
          body: { spec: VALID_SPEC },
        })
      ).status,
      400,
    );
    assert.equal(
      (await api(svc.url, 'POST', '/v1/stacks/dev/launch', { token: svc.operate, body: {} })).status,
      404,
    );
    const ev = await api(svc.url, 'GET', '/v1/jobs/00000000-0000-4000-8000-000000000000/events', {
      token: svc.read,
      headers: { 'last-event-id': 'abc' },
    });
    assert.equal(ev.status, 400);
    assertNothingChanged();
  });
});
