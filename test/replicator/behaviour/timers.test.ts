// Timers of a real replicator process (issue 10: one alarm at the next deadline, not a 2 ms poll). An
// idle replicator with its peers up wakes up for liveness probes and the sweep only: far fewer than the
// 500 wake-ups a second the v1 tick cost, counted by udpmesh_timer_wakeups_total at scrape time. Under
// load the alarm is not re-armed per datagram (udpmesh_timer_rearms_total), and the run is still
// delivered exactly once and in order everywhere (new data leaves at the end of its event-loop turn,
// never on a timer).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import { startMesh, type Mesh } from '../../harness/mesh.ts';
import { assertRunExactlyOnce, awaitRun, metric } from './support/probe.ts';

const CLOUDS = ['aws', 'gcp', 'azure'];

describe('behaviour: deadline-driven timers', function () {
  this.timeout(60_000);
  const etcd = useEtcdCluster({ size: 1 });
  let mesh: Mesh | undefined;
  const runs: LoadRun[] = [];

  afterEach(async function () {
    this.timeout(30_000);
    if (this.currentTest?.state === 'failed' && mesh) console.log(await mesh.diagnostics(40));
    for (const r of runs.splice(0)) await r.close();
    await mesh?.stop();
    mesh = undefined;
  });

  it('an idle replicator wakes up for probes, not 500 times a second; under load the alarm is not armed per datagram', async () => {
    mesh = await startMesh({ etcd: etcd.cluster });
    const aws = mesh.node('aws').proc;
    const alarm = () => metric(aws, 'udpmesh_timer_wakeups_total', { timer: 'alarm' });
    const w0 = await alarm();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const w1 = await alarm();
    const perSecond = ((w1 - w0) * 1000) / (performance.now() - t0);
    // Two peers pinged every 250 ms each: about 8 a second; the v1 tick was 500 a second.
    assert.ok(w1 > w0, 'the alarm fires (liveness probes)');
    assert.ok(perSecond < 50, `idle alarm wake-ups ${perSecond.toFixed(1)}/s`);

    const rearms0 = await metric(aws, 'udpmesh_timer_rearms_total');
    const ingress0 = await metric(aws, 'udpmesh_ingress_datagrams_total');
    const run = await startLoad({
      host: '127.0.0.1',
      port: mesh.node('aws').ingressPort,
      sessions: 20,
      perSession: 200,
      rate: 2000,
    });
    runs.push(run);
    await run.done;
    await awaitRun(mesh, run.expected, CLOUDS, 20_000, 'the run into aws');
    await assertRunExactlyOnce(mesh, run.expected, CLOUDS, 'the run into aws');
    const rearms = (await metric(aws, 'udpmesh_timer_rearms_total')) - rearms0;
    const ingress = (await metric(aws, 'udpmesh_ingress_datagrams_total')) - ingress0;
    assert.equal(ingress, run.total);
    assert.ok(rearms < ingress / 2, `${rearms} alarm re-arms for ${ingress} datagrams`);
  });
});
