// Epoch fencing across restarts: each incarnation of a replicator gets a higher epoch (udpmesh_epoch, the
// etcd epoch key and its member record agree), and the other replicators deliver the sessions the new
// incarnation opens, exactly once and in order.
import assert from 'node:assert/strict';
import { parseMemberRecord } from '../../../replicator/coordination/keys.ts';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import { startMesh, type Mesh } from '../../harness/mesh.ts';
import { awaitReplies } from '../../harness/scenario.ts';
import { waitFor } from '../../harness/wait.ts';
import { assertRunExactlyOnce, awaitRun, etcdGetPrefix, scrape, valueOf } from './support/probe.ts';

const CLOUDS = ['aws', 'gcp', 'azure'];

describe('behaviour: epoch fencing across restarts', function () {
  this.timeout(45_000);
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

  /** gcp's epoch as udpmesh_epoch, udpmesh_info{epoch}, the etcd epoch key and its member record say; all must agree. */
  async function gcpEpoch(): Promise<number> {
    const m = mesh!;
    const s = await scrape(m.node('gcp').proc);
    const metric = valueOf(s, 'udpmesh_epoch');
    const info = s.find((x) => x.name === 'udpmesh_info')?.labels.epoch;
    const kv = await etcdGetPrefix(etcd.cluster.endpoints, `/udpmesh/${m.name}/`);
    const key = Number(kv.get(`/udpmesh/${m.name}/epochs/gcp/gcp-0`));
    const record = parseMemberRecord(kv.get(`/udpmesh/${m.name}/members/gcp/gcp-0`) ?? '')?.epoch;
    assert.ok(metric !== undefined && metric > 0, `udpmesh_epoch ${metric}`);
    assert.deepEqual(
      { info: Number(info), key, record },
      { info: metric, key: metric, record: metric },
      `gcp's epoch sources disagree (metric ${metric})`,
    );
    return metric;
  }

  async function loadIntoGcp(sessionBase: number): Promise<LoadRun> {
    const run = await startLoad({
      host: '127.0.0.1',
      port: mesh!.node('gcp').ingressPort,
      sessions: 20,
      perSession: 100,
      rate: 1500,
      sessionBase,
    });
    runs.push(run);
    await run.done;
    await awaitRun(mesh!, run.expected, CLOUDS, 20_000, `the run into gcp (sessions from ${sessionBase})`);
    await awaitReplies(mesh!, run, 10_000);
    await assertRunExactlyOnce(mesh!, run.expected, CLOUDS, `sessions from ${sessionBase}`);
    return run;
  }

  it('SIGKILL and SIGTERM restarts each raise the epoch; sessions of the new incarnation are delivered in order', async () => {
    mesh = await startMesh({ etcd: etcd.cluster });
    const gcp = mesh.node('gcp');
    const e1 = await gcpEpoch();
    await loadIntoGcp(1);

    const killed = await gcp.proc.kill('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    await gcp.proc.restart(30_000);
    await mesh.waitConnected();
    const e2 = await gcpEpoch();
    assert.ok(e2 > e1, `epoch after a SIGKILL restart ${e2} is not above ${e1}`);
    await loadIntoGcp(101);

    const stopped = await gcp.proc.stop(15_000);
    assert.deepEqual(stopped, { code: 0, signal: null }, 'graceful stop exits 0');
    // A graceful stop revokes the lease: the member record leaves at once.
    await waitFor(
      async () => !(await etcdGetPrefix(etcd.cluster.endpoints, `/udpmesh/${mesh!.name}/members/gcp/`)).size,
      {
        timeoutMs: 10_000,
        what: 'gcp member record removed after a graceful stop',
      },
    );
    await gcp.proc.restart(30_000);
    await mesh.waitConnected();
    const e3 = await gcpEpoch();
    assert.ok(e3 > e2, `epoch after a SIGTERM restart ${e3} is not above ${e2}`);
    await loadIntoGcp(201);
  });
});
