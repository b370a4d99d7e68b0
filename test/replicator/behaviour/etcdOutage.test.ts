// Every etcd member is SIGKILLed mid-stream: the replicators report udpmesh_etcd_up 0 and keep replicating
// with the membership they last saw (also for sessions opened during the outage); when etcd is back they
// report 1 again and their member records are in etcd again, with the same epochs.
import assert from 'node:assert/strict';
import { parseMemberRecord } from '../../../replicator/coordination/keys.ts';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import { startMesh, type Mesh } from '../../harness/mesh.ts';
import { awaitReplies } from '../../harness/scenario.ts';
import { waitFor } from '../../harness/wait.ts';
import { assertRunExactlyOnce, awaitRun, etcdGetPrefix, waitMetric } from './support/probe.ts';

const CLOUDS = ['aws', 'gcp', 'azure'];

describe('behaviour: etcd outage (all members down)', function () {
  this.timeout(45_000);
  const etcd = useEtcdCluster({ size: 3 });
  let mesh: Mesh | undefined;
  const runs: LoadRun[] = [];

  afterEach(async function () {
    this.timeout(40_000);
    if (this.currentTest?.state === 'failed' && mesh) console.log(await mesh.diagnostics(40));
    for (const r of runs.splice(0)) await r.close();
    await mesh?.stop();
    mesh = undefined;
    const down = etcd.cluster.members.filter((m) => !m.running);
    await Promise.all(down.map((m) => m.restart()));
  });

  it('the data plane keeps delivering on the last membership; etcd_up 0 then 1; member records come back', async () => {
    const cluster = etcd.cluster;
    mesh = await startMesh({
      etcd: cluster,
      configOverrides: { etcd: { endpoints: cluster.endpoints, leaseTtlSeconds: 3, dialTimeoutMs: 1000 } },
    });
    const membersPrefix = `/udpmesh/${mesh.name}/members/`;
    const before = await etcdGetPrefix(cluster.endpoints, membersPrefix);
    const epochs = new Map([...before].map(([k, v]) => [k, parseMemberRecord(v)?.epoch]));
    assert.equal(before.size, 3, `member records before the outage: ${[...before.keys()].join(', ')}`);

    const run = await startLoad({
      host: '127.0.0.1',
      port: mesh.node('aws').ingressPort,
      sessions: 20,
      perSession: 300,
      rate: 800,
    });
    runs.push(run);
    await run.whenSent(1500);
    await Promise.all(cluster.members.map((m) => m.kill('SIGKILL')));
    for (const c of CLOUDS)
      await waitMetric(
        mesh.node(c).proc,
        'udpmesh_etcd_up',
        undefined,
        (v) => v === 0,
        'reports udpmesh_etcd_up 0',
        15_000,
      );
    // New sessions into another ingress while etcd is down.
    const during = await startLoad({
      host: '127.0.0.1',
      port: mesh.node('gcp').ingressPort,
      sessions: 10,
      perSession: 100,
      rate: 800,
      sessionBase: 1001,
    });
    runs.push(during);
    await during.done;
    await awaitRun(mesh, during.expected, CLOUDS, 15_000, 'the run into gcp during the outage');
    assert.ok(
      cluster.members.every((m) => !m.running),
      'etcd stayed down while the outage run was delivered',
    );
    await run.done;
    await awaitRun(mesh, run.expected, CLOUDS, 15_000, 'the run into aws across the outage');

    await Promise.all(cluster.members.map((m) => m.restart()));
    await cluster.waitHealthy(15_000);
    for (const c of CLOUDS)
      await waitMetric(
        mesh.node(c).proc,
        'udpmesh_etcd_up',
        undefined,
        (v) => v === 1,
        'reports udpmesh_etcd_up 1 again',
        20_000,
      );
    let after = new Map<string, string>();
    await waitFor(
      async () => {
        after = await etcdGetPrefix(cluster.endpoints, membersPrefix);
        return after.size === 3;
      },
      {
        timeoutMs: 15_000,
        what: 'three member records in etcd again',
        detail: () => [...after.keys()].join(', '),
      },
    );
    for (const [key, value] of after) {
      const rec = parseMemberRecord(value);
      assert.ok(rec, `${key}: malformed member record ${value}`);
      assert.equal(rec.epoch, epochs.get(key), `${key}: the epoch changed across the outage`);
    }
    for (const c of CLOUDS) {
      const s = await mesh.scrape(c);
      assert.ok(s, `${c} answers`);
      assert.equal(mesh.node(c).proc.startCount, 1, `${c} was restarted`);
    }
    await awaitReplies(mesh, run, 10_000);
    await assertRunExactlyOnce(mesh, run.expected, CLOUDS, 'into aws across the outage');
    await assertRunExactlyOnce(mesh, during.expected, CLOUDS, 'into gcp during the outage');
  });
});
