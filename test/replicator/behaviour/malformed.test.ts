// Hostile or broken input: random bytes and truncated frames into a replication port are counted as
// malformed_frame while the process keeps delivering; client datagrams over ingress.maxPayloadBytes are
// dropped as oversize and never delivered truncated.
import assert from 'node:assert/strict';
import { encodeAck, encodeData, encodePing } from '../../../replicator/protocol/frame.ts';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import { startMesh, type Mesh, type MeshNode } from '../../harness/mesh.ts';
import { encodePayload } from '../../harness/payload.ts';
import { mulberry32 } from '../../harness/prng.ts';
import { awaitReplies } from '../../harness/scenario.ts';
import { waitFor } from '../../harness/wait.ts';
import {
  assertRunExactlyOnce,
  awaitRun,
  dropped,
  metric,
  scrape,
  UdpClient,
  waitMetric,
} from './support/probe.ts';

const CLOUDS = ['aws', 'gcp', 'azure'];

describe('behaviour: malformed and oversize input', function () {
  this.timeout(45_000);
  const etcd = useEtcdCluster({ size: 1 });
  let mesh: Mesh | undefined;
  const runs: LoadRun[] = [];
  const clients: UdpClient[] = [];

  afterEach(async function () {
    this.timeout(30_000);
    if (this.currentTest?.state === 'failed' && mesh) console.log(await mesh.diagnostics(40));
    for (const r of runs.splice(0)) await r.close();
    for (const c of clients.splice(0)) await c.close();
    await mesh?.stop();
    mesh = undefined;
  });

  it('random bytes and truncated frames into the replication port: malformed_frame grows, the process keeps delivering', async () => {
    mesh = await startMesh({ etcd: etcd.cluster });
    const gcp = mesh.node('gcp');
    const before = await scrape(gcp.proc);
    const rng = mulberry32(20261129);
    const junk: Buffer[] = [];
    // Random bytes of every length from 0 to 200, and a few large ones.
    for (let len = 0; len <= 200; len++)
      junk.push(Buffer.from(Array.from({ length: len }, () => Math.floor(rng() * 256))));
    for (let i = 0; i < 20; i++)
      junk.push(
        Buffer.from(Array.from({ length: 1000 + Math.floor(rng() * 400) }, () => Math.floor(rng() * 256))),
      );
    // Every proper prefix of a valid DATA, ACK and PING frame (the unkeyed mesh would accept the whole frames),
    // from a real member to gcp, so the prefixes pass the membership check and reach the decoder.
    const h = { sender: 'aws/aws-0', receiver: 'gcp/gcp-0', senderEpoch: 1, receiverEpoch: 1, packet: 3 };
    const records = [0, 1, 2].map((i) => ({
      streamSeq: i,
      session: 7,
      seq: i,
      payload: encodePayload(7, i, 40),
    }));
    const valid = [encodeData(h, 0, records), encodeAck(h, 9, 100, 5, [[7, 8]]), encodePing(h, 12345.5, 0)];
    let truncated = 0;
    for (const f of valid) {
      for (let len = 0; len < f.length; len++) {
        junk.push(f.subarray(0, len));
        truncated++;
      }
    }
    // Sent while a stream flows into aws, so replication to gcp is busy while the junk arrives.
    const run = await startLoad({
      host: '127.0.0.1',
      port: mesh.node('aws').ingressPort,
      sessions: 20,
      perSession: 100,
      rate: 1000,
    });
    runs.push(run);
    const sender = await UdpClient.open(1);
    clients.push(sender);
    await run.whenSent(500);
    for (let i = 0; i < junk.length; i++) {
      sender.sendRaw(gcp.replicationPort, junk[i]!);
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    // Every junk datagram is counted as a drop; the truncated frames (flags byte 0: unsigned) as malformed.
    const junkReasons = [
      'malformed_frame',
      'bad_mac',
      'unauthenticated',
      'unknown_sender',
      'misdirected',
      'looped',
      'stale_epoch',
      'replay',
    ];
    const base = junkReasons.reduce((a, r) => a + dropped(before, r), 0);
    await waitDrops(gcp, junkReasons, base + junk.length);
    await run.done;
    await awaitRun(mesh, run.expected, CLOUDS, 20_000);
    await awaitReplies(mesh, run, 10_000);
    await assertRunExactlyOnce(mesh, run.expected, CLOUDS);
    const after = await scrape(gcp.proc);
    const malformed = dropped(after, 'malformed_frame') - dropped(before, 'malformed_frame');
    assert.ok(
      malformed >= truncated,
      `malformed_frame grew by ${malformed}, expected at least the ${truncated} truncated frames`,
    );
    assert.equal(
      junkReasons.reduce((a, r) => a + dropped(after, r), 0) - base,
      junk.length,
      'each junk datagram counted once',
    );
    assert.ok(gcp.proc.running, 'gcp is still running');
    assert.equal(gcp.proc.startCount, 1, 'gcp was not restarted');
    // Still delivering afterwards.
    const run2 = await startLoad({
      host: '127.0.0.1',
      port: mesh.node('aws').ingressPort,
      sessions: 5,
      perSession: 20,
      rate: 1000,
      sessionBase: 501,
    });
    runs.push(run2);
    await run2.done;
    await awaitRun(mesh, run2.expected, CLOUDS, 15_000, 'the run after the junk');
  });

  it('client datagrams over ingress.maxPayloadBytes are dropped as oversize, never delivered truncated', async () => {
    const MAX = 600;
    mesh = await startMesh({ etcd: etcd.cluster, configOverrides: { ingress: { maxPayloadBytes: MAX } } });
    const aws = mesh.node('aws');
    const okClient = await UdpClient.open(1);
    const bigClient = await UdpClient.open(2);
    clients.push(okClient, bigClient);
    // Session 1: 20 datagrams of exactly MAX bytes. Session 2: seqs 0-19 of MAX+1 .. MAX+761 bytes, then seqs 20-24 of MAX.
    okClient.send(aws.ingressPort, 0, 20, MAX);
    const sizes = Array.from({ length: 20 }, (_, i) => MAX + 1 + i * 40);
    for (const [seq, size] of sizes.entries())
      bigClient.sendRaw(aws.ingressPort, encodePayload(2, seq, size));
    await waitMetric(
      aws.proc,
      'udpmesh_dropped_datagrams_total',
      { reason: 'oversize' },
      (v) => v >= sizes.length,
      `counts ${sizes.length} oversize drops`,
    );
    bigClient.send(aws.ingressPort, 20, 25, MAX);
    await awaitRun(
      mesh,
      { sessions: [1], perSession: 20 },
      CLOUDS,
      15_000,
      'session 1 (exactly maxPayloadBytes)',
    );
    await waitFor(
      async () => {
        for (const c of CLOUDS) if (!(await mesh!.node(c).backend.snapshot()).has(2, 24)) return false;
        return okClient.replies.length === 20 && bigClient.replies.length === 5;
      },
      { timeoutMs: 15_000, what: 'session 2 seq 24 reached every backend and all echoes came back' },
    );
    assert.equal(
      await metric(aws.proc, 'udpmesh_dropped_datagrams_total', { reason: 'oversize' }),
      sizes.length,
    );
    assert.equal(
      await metric(aws.proc, 'udpmesh_ingress_datagrams_total'),
      25,
      'only the datagrams within the limit were accepted',
    );
    await assertRunExactlyOnce(mesh, { sessions: [1], perSession: 20 }, CLOUDS, 'session 1');
    for (const cloud of CLOUDS) {
      const log = await mesh.node(cloud).backend.snapshot();
      assert.equal(
        log.invalid,
        0,
        `${cloud} backend got truncated or altered datagrams: ${log.invalidExamples.join('; ')}`,
      );
      assert.deepEqual(
        log.seqsBySession().get(2),
        [20, 21, 22, 23, 24],
        `${cloud} backend: session 2 must have only its datagrams within the limit`,
      );
    }
    assert.deepEqual(bigClient.replies, [20, 21, 22, 23, 24]);
  });
});

async function waitDrops(node: MeshNode, reasons: string[], atLeast: number): Promise<void> {
  let last = 0;
  await waitFor(
    async () => {
      const s = await scrape(node.proc);
      last = reasons.reduce((a, r) => a + dropped(s, r), 0);
      return last >= atLeast;
    },
    {
      timeoutMs: 15_000,
      what: `${node.cloud} counts ${atLeast} drops (${reasons.join(', ')})`,
      detail: () => `last: ${last}`,
    },
  );
}
