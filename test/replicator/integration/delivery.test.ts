// 200 sessions x 500 datagrams into one ingress over plain loopback: every cloud's backend receives
// every datagram exactly once and in order per session; every echo reply reaches its client.
import assert from 'node:assert/strict';
import { useMeshSuite } from '../../harness/meshSuite.ts';
import { sumOf, tryScrape } from '../../harness/metrics.ts';
import { formatReport } from '../../harness/deliveryCheck.ts';
import type { RecordingLog } from '../../harness/recordingLog.ts';
import {
  assertExactlyOnceInOrder,
  awaitDelivery,
  awaitQuiescence,
  awaitReplies,
  summary,
  STANDARD_LOAD,
} from '../../harness/scenario.ts';

describe('integration: replication over loopback (real etcd, three replicator processes)', function () {
  this.timeout(90_000);
  const suite = useMeshSuite();

  it('200 sessions x 500 datagrams into aws: every backend gets each exactly once, in order; every echo returns', async () => {
    const mesh = await suite.startMesh();
    const ingress = mesh.node('aws');
    const run = await suite.startLoad({ host: '127.0.0.1', port: ingress.ingressPort, ...STANDARD_LOAD });
    await run.done;
    await awaitDelivery(mesh, run, ['aws', 'gcp', 'azure'], 30_000);
    await awaitReplies(mesh, run, 15_000);
    await awaitQuiescence(mesh, 15_000);
    const diag = await mesh.diagnostics();
    const logs = new Map<string, RecordingLog>();
    for (const cloud of ['aws', 'gcp', 'azure']) {
      const log = await mesh.node(cloud).backend.snapshot();
      logs.set(cloud, log);
      assertExactlyOnceInOrder(`${cloud} backend`, log.report(run.expected), diag);
      assert.equal(
        log.invalid,
        0,
        `${cloud} backend got altered payloads: ${log.invalidExamples.join('; ')}`,
      );
    }
    const replies = run.replyReport();
    assert.equal(replies.missing, 0, formatReport('echo replies', replies));
    assert.equal(replies.duplicates, 0, formatReport('echo replies', replies));
    assert.equal(replies.unexpected, 0, formatReport('echo replies', replies));
    // At the ingress each client session has its own upstream socket to the backend.
    const awsBackend = logs.get('aws')!;
    const multi = run.sessionIds.filter((s) => awsBackend.sourcesOf(s) !== 1);
    assert.deepEqual(
      multi,
      [],
      `sessions that reached the aws backend from more than one source: ${multi.slice(0, 10).join(',')}`,
    );
    assert.equal(
      awsBackend.sourceCount,
      STANDARD_LOAD.sessions,
      'one upstream socket per client session at the ingress',
    );
    // The counters agree with what the backends saw.
    const s = await tryScrape(ingress.proc.metricsUrl);
    assert.ok(s, 'aws metrics answer');
    assert.equal(sumOf(s, 'udpmesh_ingress_datagrams_total'), run.total);
    for (const cloud of ['aws', 'gcp', 'azure']) {
      const m = await tryScrape(mesh.node(cloud).proc.metricsUrl);
      assert.equal(
        sumOf(m ?? [], 'udpmesh_delivered_datagrams_total'),
        run.total,
        `${cloud} udpmesh_delivered_datagrams_total`,
      );
    }
    console.log(
      `      sent ${run.total} in ${((run.finishedAt - run.startedAt) / 1000).toFixed(1)} s\n      ${await summary(mesh)}`,
    );
  });
});
