// Session identity in every cloud (delivery.sessionIdentity: socket): a session-keyed backend in each
// cloud checks that every client session arrives from one source of its own, exactly once and in order,
// not only at the origin. Before identity existed, the remote clouds got every session of every origin
// from one shared socket per backend (sourceCount 1), so a stateful backend could not tell them apart.
import assert from 'node:assert/strict';
import { useMeshSuite } from '../../harness/meshSuite.ts';
import { sumOf, tryScrape } from '../../harness/metrics.ts';
import { assertExactlyOnceInOrder, awaitDelivery, awaitQuiescence } from '../../harness/scenario.ts';

const MODE = (process.env.UDPMESH_TEST_SESSION_IDENTITY ?? 'socket') as 'socket' | 'none';

describe(`integration: session identity at every backend (sessionIdentity ${MODE})`, function () {
  this.timeout(90_000);
  const suite = useMeshSuite();

  it('oneway ingress in gcp, 40 sessions: each cloud sees one stable source per session, in order', async () => {
    const mesh = await suite.startMesh({
      configOverrides: { ingress: { mode: 'oneway' }, delivery: { sessionIdentity: MODE } },
    });
    const ingress = mesh.node('gcp');
    const run = await suite.startLoad({
      host: '127.0.0.1',
      port: ingress.ingressPort,
      sessions: 40,
      perSession: 100,
      rate: 4000,
    });
    await run.done;
    await awaitDelivery(mesh, run, ['aws', 'gcp', 'azure'], 30_000);
    await awaitQuiescence(mesh, 15_000);
    const diag = await mesh.diagnostics();
    for (const cloud of ['aws', 'gcp', 'azure']) {
      const log = await mesh.node(cloud).backend.snapshot();
      assertExactlyOnceInOrder(`${cloud} backend`, log.report(run.expected), diag);
      const multi: number[] = run.sessionIds.filter((s) => log.sourcesOf(s) !== 1);
      assert.deepEqual(multi, [], `${cloud}: sessions that arrived from more than one source`);
      assert.equal(log.sourceCount, run.sessionIds.length, `${cloud}: one source of its own per session`);
    }
    const m = await tryScrape(mesh.node('aws').proc.metricsUrl);
    assert.equal(sumOf(m ?? [], 'udpmesh_delivery_sessions_active'), 40, 'aws holds 40 delivery sessions');
  });
});
