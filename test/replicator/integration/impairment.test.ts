// The same load with every link between replicators impaired in user space (10% loss, 5% duplication,
// 10% reordering by +30 ms, 20 ms jitter): nothing lost, nothing delivered twice, order kept.
// Client<->ingress and replicator<->backend stay plain loopback.
import assert from 'node:assert/strict';
import { useMeshSuite } from '../../harness/meshSuite.ts';
import { formatReport } from '../../harness/deliveryCheck.ts';
import {
  assertExactlyOnceInOrder,
  awaitDelivery,
  awaitQuiescence,
  awaitReplies,
  summary,
  STANDARD_LOAD,
} from '../../harness/scenario.ts';

const IMPAIRMENT = {
  loss: 0.1,
  duplicate: 0.05,
  reorder: 0.1,
  reorderDelayMs: 30,
  jitterMs: 20,
  baseDelayMs: 0,
};

describe('integration: replication over impaired links (loss, duplication, reordering, jitter)', function () {
  this.timeout(90_000);
  const suite = useMeshSuite();

  it('200 sessions x 500 datagrams: every backend gets each exactly once, in order; every echo returns', async () => {
    const mesh = await suite.startMesh({ impairment: IMPAIRMENT, seed: 20261129 });
    const ingress = mesh.node('aws');
    const run = await suite.startLoad({ host: '127.0.0.1', port: ingress.ingressPort, ...STANDARD_LOAD });
    await run.done;
    await awaitDelivery(mesh, run, ['aws', 'gcp', 'azure'], 40_000);
    await awaitReplies(mesh, run, 15_000);
    await awaitQuiescence(mesh, 20_000);
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
    // The links really were impaired (the proxies carried the replication traffic and damaged it).
    for (const cloud of ['gcp', 'azure']) {
      const c = mesh.node(cloud).proxy!.counters;
      assert.ok(
        c.received > 1000,
        `proxy in front of ${cloud} carried only ${c.received} datagrams: is replication bypassing it?`,
      );
      assert.ok(
        c.dropped > 0.05 * c.received && c.duplicated > 0 && c.reordered > 0,
        `proxy in front of ${cloud}: ${JSON.stringify(c)}`,
      );
    }
    console.log(
      `      sent ${run.total} in ${((run.finishedAt - run.startedAt) / 1000).toFixed(1)} s\n      ${await summary(mesh)}`,
    );
  });
});
