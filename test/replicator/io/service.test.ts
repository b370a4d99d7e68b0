// The replicator on each socket implementation: real processes (two clouds, real etcd) serve and replicate
// a client's datagrams, and /status and /metrics say which I/O mode runs, with the achieved kernel buffer
// sizes. `io: batched` without a loadable addon is refused with a clear reason instead of running on dgram.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAddon } from '../../../replicator/io/native.ts';
import type { ReplicatorSnapshot } from '../../../replicator/observability/stats.ts';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { freePorts } from '../../harness/freePort.ts';
import { startMesh, type Mesh } from '../../harness/mesh.ts';
import { ReplicatorLauncher } from '../../harness/replicatorLauncher.ts';
import { waitFor } from '../../harness/wait.ts';
import { scrape, sumOf, UdpClient } from '../behaviour/support/probe.ts';

describe('io: the replicator on each I/O mode', function () {
  this.timeout(60_000);
  const etcd = useEtcdCluster({ size: 1 });
  let mesh: Mesh | undefined;
  const clients: UdpClient[] = [];
  afterEach(async function () {
    this.timeout(30_000);
    if (this.currentTest?.state === 'failed' && mesh) console.log(await mesh.diagnostics(40));
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await mesh?.stop();
    mesh = undefined;
  });

  for (const mode of ['dgram', 'batched'] as const) {
    it(`io: ${mode} serves, replicates and reports its mode and buffer sizes`, async function () {
      if (mode === 'batched' && !loadAddon().addon) {
        if (process.env.CI === 'true') throw new Error('the addon must be built in CI');
        this.skip();
      }
      mesh = await startMesh({ etcd: etcd.cluster, clouds: ['aws', 'gcp'], configOverrides: { io: mode } });
      const aws = mesh.node('aws');
      const gcp = mesh.node('gcp');
      const c = await UdpClient.open(1);
      clients.push(c);
      c.send(aws.ingressPort, 0, 50);
      await waitFor(
        async () =>
          c.replies.length >= 50 &&
          ((await gcp.backend.snapshot()).seqsBySession().get(1)?.length ?? 0) >= 50,
        { timeoutMs: 20_000, what: '50 echoes at the client and 50 replicated deliveries in gcp' },
      );
      const status = (await (await fetch(`${aws.proc.httpBase}/status`)).json()) as ReplicatorSnapshot;
      assert.equal(status.io.mode, mode);
      assert.ok(status.io.reason.length > 0);
      assert.ok(status.io.receivedDatagrams >= 50, `received ${status.io.receivedDatagrams}`);
      assert.ok(status.io.sentDatagrams >= 50, `sent ${status.io.sentDatagrams}`);
      const repl = status.io.buffers.find((b) => b.socket === 'replication');
      assert.ok(repl && repl.receive > 0 && repl.send > 0, JSON.stringify(status.io.buffers));
      assert.ok(status.io.buffers.some((b) => b.socket === `ingress:${aws.ingressPort}` && b.receive > 0));
      const samples = await scrape(aws.proc);
      assert.equal(sumOf(samples, 'udpmesh_io_mode', { mode }), 1);
      assert.ok(sumOf(samples, 'udpmesh_io_syscalls_total', { op: 'recv' }) > 0);
      assert.ok(
        sumOf(samples, 'udpmesh_socket_buffer_bytes', { socket: 'replication', direction: 'receive' }) > 0,
      );
      if (mode === 'batched') {
        // A burst is read in fewer syscalls than datagrams.
        assert.ok(status.io.receiveSyscalls <= status.io.receivedDatagrams);
      }
    });
  }

  it('io: auto without a loadable addon runs on dgram and says why (log and /status)', async () => {
    const bogus = join(tmpdir(), `udpmesh-bogus-addon-auto-${process.pid}.node`);
    writeFileSync(bogus, 'not an addon');
    const launcher = new ReplicatorLauncher();
    try {
      const [ingress, repl, metrics] = await freePorts(3);
      const p = launcher.create(
        'aws',
        {
          cluster: 'aws',
          io: 'auto',
          ingress: { addresses: ['127.0.0.1'], ports: [ingress] },
          replication: { address: '127.0.0.1', port: repl },
          delivery: { backends: ['127.0.0.1:9'] },
          metrics: { address: '127.0.0.1', port: metrics },
        },
        { UDPMESH_ADDON: bogus },
      );
      p.start();
      await p.waitReady(30_000);
      const status = (await (await fetch(`${p.httpBase}/status`)).json()) as ReplicatorSnapshot;
      assert.equal(status.io.mode, 'dgram');
      assert.match(status.io.reason, /io: auto fell back to dgram: .*does not load/);
      assert.match(p.logText(), /"level":(40|"warn").*io: auto fell back to dgram/);
    } finally {
      await launcher.stopAll();
    }
  });

  it('io: batched without a loadable addon is refused at start with the reason', async () => {
    const bogus = join(tmpdir(), `udpmesh-bogus-addon-${process.pid}.node`);
    writeFileSync(bogus, 'not an addon');
    const launcher = new ReplicatorLauncher();
    try {
      const p = launcher.create(
        'aws',
        {
          cluster: 'aws',
          io: 'batched',
          ingress: { addresses: ['127.0.0.1'], ports: [1] },
          // Loopback: protocol v2 requires a key elsewhere (D7), which would refuse the start first.
          replication: { address: '127.0.0.1' },
          delivery: { backends: ['127.0.0.1:9'] },
          metrics: { address: '127.0.0.1', port: 1 },
        },
        { UDPMESH_ADDON: bogus },
      );
      const exited = new Promise<number | null>((resolve) => p.onExit((info) => resolve(info.code)));
      p.start();
      const code = await exited;
      assert.notEqual(code, 0);
      assert.match(p.logText(), /io: batched is configured but unavailable: .*does not load/);
    } finally {
      await launcher.stopAll();
    }
  });
});
