// Issue 10's confirmed defects that live in the pure modules, each reproduced on a fake clock. Every
// test here failed on protocol v1 (the failure is quoted above it) and passes on v2 (docs/protocol.md).
import assert from 'node:assert/strict';
import { InboundStream } from '../../../replicator/delivery/inboundStream.ts';
import { SessionTable, type TableEntry } from '../../../replicator/ingress/sessionTable.ts';
import { validateConfig } from '../../../replicator/config/load.ts';
import {
  decodeFrame,
  encodeAck,
  encodeData,
  encodePong,
  FrameType,
  type Frame,
  type FrameHeader,
} from '../../../replicator/protocol/frame.ts';
import { makeKeyRing, signFrame } from '../../../replicator/protocol/frameAuth.ts';
import { protocolParams, type ProtocolParams } from '../../../replicator/protocol/params.ts';
import { PeerLink, type PeerEndpoint } from '../../../replicator/replication/peerLink.ts';

const SENDER = 'aws/r-0';
const EPOCH = 7;
const PEER: PeerEndpoint = { id: 'gcp/r-0', cluster: 'gcp', address: '10.0.0.2', port: 7946 };
const PEER_EPOCH = 3;
let packets = 0;
/** Header of a frame from the peer back to the origin. */
const back = (): FrameHeader => ({
  sender: PEER.id,
  receiver: SENDER,
  senderEpoch: PEER_EPOCH,
  receiverEpoch: EPOCH,
  packet: packets++,
});
const toPeer = (packet = 0): FrameHeader => ({
  sender: SENDER,
  receiver: PEER.id,
  senderEpoch: EPOCH,
  receiverEpoch: PEER_EPOCH,
  packet,
});

const payload = (n: number, size = 100): Buffer => {
  const b = Buffer.alloc(size);
  b.writeUInt32BE(n, 0);
  return b;
};

/** One origin link and one receiver stream joined by a network the test controls, on a fake clock. */
function pair(o: { maxFrameBytes?: number; params?: Partial<ProtocolParams> } = {}) {
  const p = { ...protocolParams, ...o.params } as ProtocolParams;
  const clock = { now: 1000 };
  let up = true;
  let dropData: (f: Frame) => boolean = () => false;
  const toRx: Buffer[] = [];
  const toTx: Buffer[] = [];
  const link = new PeerLink(
    PEER,
    {
      sender: SENDER,
      epoch: EPOCH,
      maxBytes: 1 << 24,
      maxFrameBytes: o.maxFrameBytes ?? 1472,
      params: p,
      peerEpoch: PEER_EPOCH,
    },
    { send: (buf) => void (up && toRx.push(buf)) },
    clock.now,
  );
  const delivered: Array<[number, number]> = [];
  const rx = new InboundStream(
    SENDER,
    EPOCH,
    0,
    { windowSize: p.windowDatagrams, reorderLimit: 8192 },
    (s, q) => void delivered.push([s, q]),
    clock.now,
  );
  const ackNow = (): void => {
    const st = rx.ackState(p.maxAckRanges, clock.now);
    if (up) toTx.push(encodeAck(back(), st.largestPacket, 0, st.base, st.ranges));
    rx.unacked = 0;
    rx.ackUrgent = false;
  };
  /** Runs the network and both ends' timers for `ms` (1 ms steps, 5 ms one-way delay batched per step). */
  const run = (ms: number): void => {
    for (let t = 0; t < ms; t++) {
      clock.now++;
      for (const buf of toRx.splice(0)) {
        const r = decodeFrame(buf);
        assert.ok(r.ok);
        const f = r.frame;
        if (dropData(f)) continue;
        if (f.type === FrameType.Ping) toTx.push(encodePong(back(), f.timestamp));
        else if (f.type === FrameType.Data) {
          rx.notePacket(f.packet, clock.now);
          rx.applyLowWater(f.lowWater, clock.now);
          for (const rec of f.records) rx.receive(rec, clock.now);
          if (rx.ackUrgent || rx.unacked >= p.ackEveryDatagrams) ackNow();
        }
      }
      for (const buf of toTx.splice(0)) {
        const r = decodeFrame(buf);
        assert.ok(r.ok);
        if (r.frame.type === FrameType.Ack) link.onAck(r.frame, clock.now);
        else if (r.frame.type === FrameType.Pong) link.onPong(r.frame.timestamp, clock.now);
      }
      if (t % 2 === 0) {
        link.tick(clock.now);
        if (rx.unacked > 0) ackNow();
      }
    }
  };
  return {
    link,
    rx,
    delivered,
    clock,
    run,
    setUp: (v: boolean) => void (up = v),
    setDrop: (fn: (f: Frame) => boolean) => void (dropData = fn),
  };
}

describe('issue 10 defects in the pure protocol modules', () => {
  // v1: AssertionError: Expected values to be strictly deep-equal: [4294967295, 0] vs [4294967295, 4294967296]
  it('D1: a session crossing seq 2^32 keeps its sequence on the wire and is delivered, not dropped as late', () => {
    const recs = [
      { streamSeq: 0, session: 1, seq: 2 ** 32 - 1, payload: payload(0) },
      { streamSeq: 1, session: 1, seq: 2 ** 32, payload: payload(1) },
      { streamSeq: 2, session: 1, seq: 2 ** 32 + 1, payload: payload(2) },
    ];
    const r = decodeFrame(encodeData(toPeer(), 0, recs));
    assert.ok(r.ok && r.frame.type === FrameType.Data);
    assert.deepEqual(
      r.frame.records.map((x) => x.seq),
      recs.map((x) => x.seq),
    );
    const out: number[] = [];
    const rx = new InboundStream(
      SENDER,
      EPOCH,
      0,
      { windowSize: 1024, reorderLimit: 64 },
      (_s, q) => void out.push(q),
      0,
    );
    // A receiver that joins mid-session (restart) sees the session first just below the boundary.
    for (const rec of r.frame.records) rx.receive(rec, 0);
    assert.deepEqual(out, [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1]);
    assert.equal(rx.counters.late, 0);
    // And through the sender's retransmit ring (found by the simulator: it kept seqs in a Uint32Array).
    const w = pair();
    for (const rec of recs) w.link.enqueue(rec.session, rec.seq, rec.payload);
    w.link.flush(w.clock.now);
    w.run(50);
    assert.deepEqual(
      w.delivered.map(([, q]) => q),
      [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1],
    );
  });

  // v1: AssertionError: delivered 9 of 10 (the gap was skipped at the receiver while the origin held it)
  it('D2: a partition longer than peer-down and gap timeouts, with loss at its start, loses nothing', () => {
    const w = pair({ maxFrameBytes: 512 });
    // Position 2 is lost just before the partition; 3..9 arrive.
    w.setDrop((f) => f.type === FrameType.Data && f.records.some((r) => r.streamSeq === 2));
    for (let i = 0; i < 10; i++) w.link.enqueue(1, i, payload(i, 300));
    w.link.flush(w.clock.now);
    w.run(5);
    w.setDrop(() => false);
    w.setUp(false); // partition: nothing either way, for longer than every timeout
    w.run(3 * protocolParams.peerDownAfterMs);
    assert.equal(w.link.state, 'down');
    w.setUp(true);
    w.run(3000);
    assert.equal(w.delivered.length, 10, `delivered ${w.delivered.length} of 10`);
    assert.deepEqual(
      w.delivered.map(([, q]) => q),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(w.link.lag, 0);
  });

  // v1: AssertionError: receiver keeps 66667 gap records while traffic flows
  it('D6: the receiver keeps nothing per loss event while traffic flows', () => {
    const rx = new InboundStream(SENDER, EPOCH, 0, { windowSize: 65536, reorderLimit: 8192 }, () => {}, 0);
    let now = 0;
    // Every third position is lost and resent 30 positions later; the origin never goes quiet.
    for (let p = 0; p < 200_000; p++) {
      now += 0.01;
      if (p % 3 !== 0) rx.receive({ streamSeq: p, session: p % 50, seq: p, payload: payload(p) }, now);
      const resend = p - 30;
      if (resend >= 0 && resend % 3 === 0)
        rx.receive({ streamSeq: resend, session: resend % 50, seq: resend, payload: payload(resend) }, now);
    }
    const internal = rx as unknown as { gaps?: unknown[]; gapHead?: number };
    const gapRecords = (internal.gaps?.length ?? 0) - (internal.gapHead ?? 0);
    assert.ok(gapRecords < 1000, `receiver keeps ${gapRecords} gap records while traffic flows`);
    assert.ok(rx.heldEntries <= 8192 + 50, `receiver holds ${rx.heldEntries} entries`);
  });

  // v1: AssertionError: srtt 231.5 ms after 30 ACKs on a 10 ms path
  it('D9: with more than 32 holes every ACK still gives a valid RTT sample (or none)', () => {
    const p = { ...protocolParams } as ProtocolParams;
    const clock = { now: 1000 };
    const sentFrames: Buffer[] = [];
    const link = new PeerLink(
      PEER,
      {
        sender: SENDER,
        epoch: EPOCH,
        maxBytes: 1 << 24,
        maxFrameBytes: 1472,
        params: p,
        peerEpoch: PEER_EPOCH,
      },
      { send: (b) => void sentFrames.push(b) },
      clock.now,
    );
    const rx = new InboundStream(
      SENDER,
      EPOCH,
      0,
      { windowSize: p.windowDatagrams, reorderLimit: 8192 },
      () => {},
      clock.now,
    );
    for (let i = 0; i < 400; i++) link.enqueue(i, 0, payload(i, 20));
    link.flush(clock.now);
    // Every fifth position is lost: 80 holes, more than an ACK can describe.
    const arrive = (): void => {
      for (const b of sentFrames.splice(0)) {
        const r = decodeFrame(b);
        if (!r.ok || r.frame.type !== FrameType.Data) continue;
        rx.notePacket(r.frame.packet, clock.now);
        for (const rec of r.frame.records) if (rec.streamSeq % 5 !== 1) rx.receive(rec, clock.now);
      }
    };
    clock.now += 5;
    arrive();
    for (let k = 0; k < 30; k++) {
      clock.now += 5; // 10 ms round trip
      const st = rx.ackState(p.maxAckRanges, clock.now);
      const r = decodeFrame(encodeAck(back(), st.largestPacket, 0, st.base, st.ranges));
      assert.ok(r.ok && r.frame.type === FrameType.Ack);
      link.onAck(r.frame, clock.now);
      clock.now += 5;
      arrive(); // retransmissions keep dropping the same positions
    }
    assert.ok(link.rtt.srttMs < 20, `srtt ${link.rtt.srttMs.toFixed(1)} ms after 30 ACKs on a 10 ms path`);
  });

  // v1: AssertionError: a replayed ACK brought a dead peer back up
  it('D8: a replayed ACK does not revive a peer that went silent', () => {
    const w = pair();
    w.link.enqueue(1, 0, payload(0));
    w.link.flush(w.clock.now);
    w.run(10);
    const s = w.rx.ackState(32, w.clock.now);
    const captured = encodeAck(back(), s.largestPacket, 0, s.base, s.ranges);
    w.setUp(false);
    w.run(protocolParams.peerDownAfterMs + 100);
    assert.equal(w.link.state, 'down');
    const r = decodeFrame(captured);
    assert.ok(r.ok && r.frame.type === FrameType.Ack);
    w.link.onAck(r.frame, w.clock.now);
    assert.equal(w.link.state, 'down', 'a replayed ACK brought a dead peer back up');
  });

  // v1: AssertionError: signed frame of 1489 bytes exceeds maxFrameBytes 1472
  it('D11: signed frames stay within maxFrameBytes, and the default fits a 1400-byte VPN path', () => {
    const sent: Buffer[] = [];
    const ring = makeKeyRing([Buffer.alloc(32, 7)]);
    const link = new PeerLink(
      PEER,
      {
        sender: SENDER,
        epoch: EPOCH,
        maxBytes: 1 << 24,
        maxFrameBytes: 1472,
        params: protocolParams,
        peerEpoch: PEER_EPOCH,
      },
      { send: (b) => void sent.push(signFrame(b, ring)) },
      0,
    );
    for (let i = 0; i < 200; i++) link.enqueue(1, i, payload(i, 90 + (i % 7)));
    link.enqueue(1, 200, payload(200, 1472 - 20 - 8 - 21 - 14 - 17 - 20)); // fills the frame to the byte
    link.flush(0);
    for (const b of sent)
      assert.ok(b.length <= 1472, `signed frame of ${b.length} bytes exceeds maxFrameBytes 1472`);
    const cfg = validateConfig({ cluster: 'aws', delivery: { backends: ['127.0.0.1:9'] } }, 'test');
    assert.ok(
      cfg.replication.maxFrameBytes + 40 + 8 <= 1400,
      `default maxFrameBytes ${cfg.replication.maxFrameBytes} + IPv6/UDP headers exceeds a 1400-byte path`,
    );
    // A payload bound that cannot travel in one frame is refused at load, with the fix.
    assert.throws(
      () =>
        validateConfig(
          { cluster: 'aws', ingress: { maxPayloadBytes: 1400 }, delivery: { backends: ['127.0.0.1:9'] } },
          'test',
        ),
      /lower maxPayloadBytes to 1158/,
    );
  });

  // v1: AssertionError: a new client is locked out after 1,000 spoofed two-datagram sources
  it('D10: spoofed sources sending two datagrams each do not lock out new clients', () => {
    interface E extends TableEntry {
      n: number;
    }
    const t = new SessionTable<E>(1000, 60_000, () => {});
    const mk = (key: string): E => ({
      key,
      lastSeen: 0,
      refreshedAt: 0,
      datagrams: 1,
      established: false,
      n: 0,
    });
    let now = 0;
    for (let i = 0; i < 1000; i++) {
      const e = mk(`spoof-${i}`);
      t.add(e, now);
      t.touch(e, ++now); // the second datagram, as easy to spoof as the first
    }
    assert.ok(
      t.add(mk('real-client'), now + 1),
      'a new client is locked out after 1,000 spoofed two-datagram sources',
    );
  });
});
