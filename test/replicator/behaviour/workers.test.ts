// Multi-core: aws runs `workers: 2` (members aws-0-w0 and aws-0-w1 sharing the ingress port with
// SO_REUSEPORT, replication ports port and port+1; the primary serves the aggregated metrics and /status).
// 64 client sockets spread over both workers; every datagram reaches every cluster exactly once, in order
// per session. A SIGKILLed worker is restarted by the primary and /readyz is 200 again.
import assert from 'node:assert/strict';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import type { Mesh } from '../../harness/mesh.ts';
import { awaitReplies } from '../../harness/scenario.ts';
import { waitFor } from '../../harness/wait.ts';
import { startNodeMesh } from './support/nodeMesh.ts';
import { assertRunExactlyOnce, awaitRun, metric, scrape } from './support/probe.ts';

const CLOUDS = ['aws', 'gcp', 'azure'];

interface WorkerStatus {
  index: number;
  pid: number;
  restarts: number;
  ready?: boolean;
  member?: string;
  epoch?: number;
  ingressDatagrams?: number;
}

describe('behaviour: multi-core workers', function () {
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

  async function workers(): Promise<WorkerStatus[]> {
    const res = await fetch(`${mesh!.node('aws').proc.httpBase}/status`, {
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as { workers: WorkerStatus[] };
    return body.workers.sort((a, b) => a.index - b.index);
  }

  async function load(sessionBase: number): Promise<LoadRun> {
    const run = await startLoad({
      host: '127.0.0.1',
      port: mesh!.node('aws').ingressPort,
      sessions: 64,
      perSession: 40,
      rate: 2000,
      sessionBase,
    });
    runs.push(run);
    await run.done;
    await awaitRun(mesh!, run.expected, CLOUDS, 20_000, `the run from session ${sessionBase}`);
    await awaitReplies(mesh!, run, 10_000);
    await assertRunExactlyOnce(mesh!, run.expected, CLOUDS, `sessions from ${sessionBase}`);
    return run;
  }

  it('both workers own sessions; exactly once and in order everywhere; a SIGKILLed worker is restarted', async () => {
    mesh = await startNodeMesh({ etcd: etcd.cluster }, [
      { cloud: 'aws', config: { workers: 2 } },
      { cloud: 'gcp' },
      { cloud: 'azure' },
    ]);
    const aws = mesh.node('aws');
    const members = ['aws/aws-0-w0', 'aws/aws-0-w1'];
    const info = (await scrape(aws.proc))
      .filter((s) => s.name === 'udpmesh_info')
      .map((s) => s.labels.member);
    assert.deepEqual(info.sort(), members, 'the primary shows both workers in udpmesh_info');
    // The peers know both workers as members, at replication ports port and port+1.
    const gcpPeers = (await scrape(mesh.node('gcp').proc)).filter(
      (s) => s.name === 'udpmesh_peer_up' && s.labels.cluster === 'aws',
    );
    assert.deepEqual(gcpPeers.map((s) => s.labels.peer).sort(), members);
    const gcpStatus = (await (await fetch(`${mesh.node('gcp').proc.httpBase}/status`)).json()) as {
      peers: Array<{ id: string; port: number }>;
    };
    const ports = gcpStatus.peers
      .filter((p) => p.id.startsWith('aws/'))
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((p) => p.port);
    assert.deepEqual(ports, [aws.replicationPort, aws.replicationPort + 1]);

    const run = await load(1);
    // Workers report to the primary every 500 ms: wait for the report that covers the whole run.
    let st: WorkerStatus[] = [];
    await waitFor(
      async () => {
        st = await workers();
        return st.reduce((a, w) => a + (w.ingressDatagrams ?? 0), 0) >= run.total;
      },
      {
        timeoutMs: 10_000,
        what: `the workers' status reports cover all ${run.total} datagrams`,
        detail: () => JSON.stringify(st),
      },
    );
    assert.equal(st.length, 2);
    for (const w of st)
      assert.ok(
        (w.ingressDatagrams ?? 0) > 0,
        `worker ${w.index} took no client datagrams: ${JSON.stringify(st)}`,
      );
    assert.equal(
      st.reduce((a, w) => a + (w.ingressDatagrams ?? 0), 0),
      run.total,
      'the workers together accepted every datagram once',
    );
    assert.equal(
      await metric(aws.proc, 'udpmesh_ingress_datagrams_total'),
      run.total,
      'the primary sums the workers',
    );

    // SIGKILL worker 1: the primary restarts it under the same member name with a new epoch.
    const victim = st[1]!;
    process.kill(victim.pid, 'SIGKILL');
    let saw503 = false;
    await waitFor(
      async () => {
        const ready = await aws.proc.httpStatus('/readyz');
        if (ready === 503) saw503 = true;
        const now = await workers();
        const w = now[1];
        return ready === 200 &&
          w !== undefined &&
          w.pid !== victim.pid &&
          w.restarts === 1 &&
          w.ready === true
          ? now
          : undefined;
      },
      {
        timeoutMs: 20_000,
        intervalMs: 50,
        what: 'worker 1 restarted and /readyz 200 again',
        detail: async () => JSON.stringify(await workers()),
      },
    );
    const after = await workers();
    assert.ok(
      (after[1]!.epoch ?? 0) > (victim.epoch ?? 0),
      `restarted worker epoch ${after[1]!.epoch} <= ${victim.epoch}`,
    );
    assert.equal(after[0]!.pid, st[0]!.pid, 'worker 0 was not touched');
    assert.ok(aws.proc.running, 'the primary survived');
    console.log(`      /readyz during the worker restart: ${saw503 ? 'saw 503' : 'never polled a 503'}`);
    await mesh.waitConnected();
    // New sessions after the restart are delivered everywhere exactly once, in order.
    await load(1001);
  });
});
