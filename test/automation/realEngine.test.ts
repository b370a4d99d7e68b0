// The real engine: PulumiEngine + the Pulumi CLI against a local file backend (the equivalent of
// `pulumi login file://<tmp>`), running a cloud-free fixture program through the same per-stack
// work-dir machinery as the infra program. Runs wherever `pulumi` is on PATH; skipped, with the
// reason printed, elsewhere.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PulumiEngine } from '../../automation/pulumiEngine.ts';
import { StackBusyError, StackNotFoundError } from '../../automation/errors.ts';
import type { StackEvent } from '../../automation/events.ts';
import { validateSpec } from '../../automation/spec.ts';
import { api, readEvents, startTestService, tempDir, waitForJob } from './support/harness.ts';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'project');

describe('automation library: real Pulumi engine (file backend)', function () {
  this.timeout(180_000);
  let tmp: ReturnType<typeof tempDir>;
  let engine: PulumiEngine;
  const stack = `it-${process.pid}`;

  before(function () {
    const probe = spawnSync('pulumi', ['version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      const reason = probe.error ? (probe.error as NodeJS.ErrnoException).code : `exit ${probe.status}`;
      console.log(
        `      skipped: the Pulumi CLI is not on PATH (${reason}); install it to run the real-engine tests`,
      );
      this.skip();
    }
    tmp = tempDir('udpmesh-real-');
    engine = new PulumiEngine({
      stateDir: path.join(tmp.dir, 'state'),
      projectDir: FIXTURE,
      backendUrl: `file://${path.join(tmp.dir, 'backend')}`,
      pulumiHome: path.join(tmp.dir, 'pulumi-home'),
      envVars: { PULUMI_CONFIG_PASSPHRASE: 'udpmesh-test-passphrase' },
    });
  });
  after(() => tmp?.cleanup());

  it('up creates the stack, streams events and returns outputs with secrets hidden', async () => {
    const events: StackEvent[] = [];
    const r = await engine.up(stack, validateSpec({ clouds: ['aws', 'gcp', 'azure'] }), {
      onEvent: (e) => events.push(e),
      message: 'it',
    });
    assert.equal(r.operation, 'up');
    assert.deepEqual(r.outputs!.clouds, { value: ['aws', 'gcp', 'azure'], secret: false });
    assert.deepEqual(r.outputs!.apiToken, { value: '[secret]', secret: true });
    assert.equal(events[0]!.type, 'prelude');
    assert.ok(events.some((e) => e.type === 'summary'));
    assert.ok(!JSON.stringify(events).includes('9f8e7d6c5b4a'));
  });

  it('a second operation on the same stack while one runs is StackBusyError', async () => {
    const first = engine.preview(stack, validateSpec({ clouds: ['aws'] }));
    await assert.rejects(engine.refresh(stack), StackBusyError);
    await first;
  });

  it('outputs, history and list stacks', async () => {
    const outputs = await engine.outputs(stack);
    assert.deepEqual(outputs.mesh, { value: 'udpmesh', secret: false });
    assert.equal(outputs.apiToken!.value, '[secret]');
    const history = await engine.history(stack);
    assert.equal(history[0]!.kind, 'update');
    assert.equal(history[0]!.result, 'succeeded');
    assert.equal(history[0]!.message, 'it');
    assert.ok((await engine.listStacks()).some((s) => s.name === stack));
  });

  it('the service drives the real engine: 202, SSE events, succeeded', async () => {
    const svc = await startTestService(engine);
    try {
      const r = await api(svc.url, 'POST', `/v1/stacks/${stack}/up`, {
        token: svc.operate,
        body: { spec: { clouds: ['aws'] } },
      });
      assert.equal(r.status, 202);
      const job = await waitForJob(svc, r.json.jobId);
      assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
      const stream = await readEvents(svc.url, r.json.jobId, svc.read);
      assert.ok(stream.events.some((e) => e.event === 'engine' && e.parsed.data.type === 'summary'));
      assert.ok(!stream.raw.includes('9f8e7d6c5b4a'));
    } finally {
      await svc.close();
    }
  });

  it('destroy with remove deletes the stack', async () => {
    await engine.destroy(stack, { remove: true });
    assert.ok(!(await engine.listStacks()).some((s) => s.name === stack));
    await assert.rejects(engine.outputs(stack), StackNotFoundError);
  });
});
