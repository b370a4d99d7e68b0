// SIGKILL the etcd leader mid-stream: the data plane loses nothing (every backend exactly once, in
// order; every echo returns); the member is restarted afterwards and the replicators report etcd up.
import assert from 'node:assert/strict';
import { useEtcdCluster, type EtcdMember } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import { startMesh, type Mesh } from '../../harness/mesh.ts';
import { formatReport } from '../../harness/deliveryCheck.ts';
import { tryScrape, valueOf } from '../../harness/metrics.ts';
import {
  assertExactlyOnceInOrder,
  awaitDelivery,
  awaitQuiescence,
  awaitReplies,
  summary,
  finishTest,
  STANDARD_LOAD,
} from '../../harness/scenario.ts';
import { waitFor } from '../../harness/wait.ts';

describe('integration: the etcd leader is SIGKILLed mid-stream', function () {
  this.timeout(120_000);
  const etcd = useEtcdCluster();
  let mesh: Mesh | undefined;
  let run: LoadRun | undefined;
  let killed: EtcdMember | undefined;

  afterEach(async function () {
    this.timeout(40_000);
    await finishTest(this.currentTest?.state === 'failed', mesh, run);
    if (killed && !killed.running) await killed.restart();
    run = undefined;
    mesh = undefined;
    killed = undefined;
  });

  it('nothing is lost; the old leader restarts and the replicators see etcd up again', async () => {
    const cluster = etcd.cluster;
    mesh = await startMesh({ etcd: cluster });
    const ingress = mesh.node('aws');
    run = await startLoad({ host: '127.0.0.1', port: ingress.ingressPort, ...STANDARD_LOAD });

    await run.whenSent(Math.floor(run.total * 0.3));
    killed = await cluster.leader();
    await killed.kill('SIGKILL');
    const sentAtKill = run.sent;
    const newLeader = await cluster.leader(15_000);
    assert.notEqual(newLeader.name, killed.name);

    await run.whenSent(Math.floor(run.total * 0.6));
    await killed.restart();
    const sentAtRestart = run.sent;

    await run.done;
    await awaitDelivery(mesh, run, ['aws', 'gcp', 'azure'], 30_000);
    await awaitReplies(mesh, run, 15_000);
    await awaitQuiescence(mesh, 15_000);
    const diag = await mesh.diagnostics();
    for (const cloud of ['aws', 'gcp', 'azure']) {
      assertExactlyOnceInOrder(
        `${cloud} backend`,
        (await mesh.node(cloud).backend.snapshot()).report(run.expected),
        diag,
      );
    }
    const replies = run.replyReport();
    assert.equal(replies.missing, 0, formatReport('echo replies', replies));
    assert.equal(replies.duplicates, 0, formatReport('echo replies', replies));

    await cluster.waitHealthy(15_000);
    await waitFor(
      async () => {
        for (const n of mesh!.nodes) {
          const s = await tryScrape(n.proc.metricsUrl);
          if (!s || valueOf(s, 'udpmesh_etcd_up') !== 1 || (await n.proc.httpStatus('/readyz')) !== 200)
            return false;
        }
        return true;
      },
      {
        timeoutMs: 20_000,
        what: 'every replicator reports udpmesh_etcd_up 1 and /readyz 200',
        detail: () => mesh!.diagnostics(),
      },
    );
    console.log(
      `      etcd leader ${killed.name} killed at datagram ${sentAtKill}, new leader ${newLeader.name}, restarted at ${sentAtRestart}\n      ${await summary(mesh)}`,
    );
  });
});
