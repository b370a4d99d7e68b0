// Secrets never leave the service: not in responses, event streams, the job store, or logs.
// The spec secret reaches the engine (which needs it) and is replaced by "[secret]" everywhere else.
import assert from 'node:assert/strict';
import { EngineError } from '../../automation/errors.ts';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import { api, readEvents, startTestService, waitForJob, type TestService } from './support/harness.ts';

const SPEC_SECRET = 'proj-s3cr3t-7f9c2a11';
const OUTPUT_SECRET = 'KUBE-TOKEN-eyJhbGciOiJSUzI1NiJ9';
const SPEC = {
  clouds: ['aws', 'gcp', 'azure'],
  aws: { region: 'us-east-1' },
  gcp: { project: SPEC_SECRET, region: 'us-central1' },
  azure: { location: 'eastus' },
};
const URN = 'urn:pulumi:dev::udpmesh::gcp:container/cluster:Cluster::udpmesh-gcp';

describe('automation service: secrets', () => {
  let engine: ScriptedEngine;
  let svc: TestService;
  const bodies: string[] = [];

  before(async () => {
    engine = new ScriptedEngine();
    // The infra schema decides which fields are secret; here gcp.project plays that role.
    svc = await startTestService(engine, { secretsOf: (spec) => [spec.gcp.project] });
    // An engine that leaks the secret everywhere it can: prelude config, diagnostics, stdout (as
    // JSON), error messages; plus a secret output as the Automation API returns it (in clear). Stack
    // outputs read later (GET outputs) are hidden by Pulumi's secret flag: a program must export
    // secrets as secrets (pulumi.secret / config.requireSecret), which Pulumi does for values
    // derived from secret config.
    engine.script('dev', {
      before: [
        { type: 'prelude', config: { 'udpmesh:gcp': JSON.stringify({ project: SPEC_SECRET }) } },
        { type: 'diagnostic', severity: 'info', message: `using project ${SPEC_SECRET}`, urn: URN },
        { type: 'stdout', message: JSON.stringify({ note: `"${SPEC_SECRET}"` }) },
      ],
      outputs: {
        kubeconfig: { value: `apiVersion: v1\nusers:\n- user:\n    token: ${OUTPUT_SECRET}\n`, secret: true },
        endpoint: { value: 'https://gke.example/udpmesh', secret: false },
      },
    });
    engine.script('bad', {
      fail: new EngineError(
        `pulumi failed: googleapi: project ${SPEC_SECRET} not found`,
        [{ severity: 'error', message: `project ${SPEC_SECRET} not found`, urn: URN }],
        `error: project ${SPEC_SECRET}`,
      ),
    });
  });
  after(() => svc.close({ jobTimeoutMs: 2000 }));

  it('runs jobs whose spec holds a secret; the engine receives it in clear', async () => {
    for (const stack of ['dev', 'bad']) {
      const r = await api(svc.url, 'POST', `/v1/stacks/${stack}/up`, {
        token: svc.operate,
        body: { spec: SPEC, message: 'deploy' },
      });
      assert.equal(r.status, 202);
      bodies.push(r.text);
      await waitForJob(svc, r.json.jobId);
      const status = await api(svc.url, 'GET', `/v1/jobs/${r.json.jobId}`, { token: svc.read });
      bodies.push(status.text);
      const stream = await readEvents(svc.url, r.json.jobId, svc.read);
      bodies.push(stream.raw);
    }
    assert.equal(engine.calls[0]!.spec!.gcp.project, SPEC_SECRET);
    for (const url of [
      '/v1/jobs',
      '/v1/audit',
      '/v1/stacks',
      '/v1/stacks/dev/outputs',
      '/v1/stacks/dev/history',
    ]) {
      const r = await api(svc.url, 'GET', url, { token: svc.operate });
      assert.equal(r.status, 200, url);
      bodies.push(r.text);
    }
  });

  it('no response body or event stream contains a secret, and redaction markers show where they were', () => {
    const all = bodies.join('\n');
    assert.ok(!all.includes(SPEC_SECRET), 'spec secret leaked');
    assert.ok(!all.includes(OUTPUT_SECRET), 'secret output leaked');
    assert.ok(all.includes('using project [secret]'), 'diagnostic redacted, not dropped');
    assert.ok(all.includes('https://gke.example/udpmesh'), 'non-secret outputs stay visible');
    assert.ok(all.includes('"kubeconfig":{"value":"[secret]","secret":true}'));
    assert.ok(all.includes('googleapi: project [secret] not found'));
  });

  it('neither the job store nor the logs contain a secret', () => {
    const dump = JSON.stringify([
      svc.db.prepare('SELECT * FROM jobs').all(),
      svc.db.prepare('SELECT * FROM job_events').all(),
      svc.db.prepare('SELECT * FROM audit').all(),
    ]);
    assert.ok(dump.includes('[secret]'));
    assert.ok(!dump.includes(SPEC_SECRET));
    assert.ok(!dump.includes(OUTPUT_SECRET));
    const logs = svc.logs.join('');
    assert.ok(logs.includes('job finished'), 'logs were captured');
    assert.ok(!logs.includes(SPEC_SECRET));
    assert.ok(!logs.includes(OUTPUT_SECRET));
    assert.ok(!logs.includes(svc.operate) && !logs.includes(svc.read), 'no bearer token in logs');
  });
});
