// Per-peer sender: batching inside the frame budget and the peer's window, ACK/SACK processing, loss
// detection and probe timeouts, the retransmit ring's byte bound, down/up, and — together with
// InboundStream — a simulated lossy, duplicating, reordering link on a fake clock where every datagram
// must arrive exactly once and in order.
//
// Longer on-demand fuzz:  FUZZ_RUNS=2000 npx mocha test/replicator/unit/peerLink.test.ts
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InboundStream } from '../../../replicator/delivery/inboundStream.ts';
import {
  FrameType,
  RECORD_HEADER_BYTES,
  decodeFrame,
  encodeAck,
  encodePong,
  type AckFrame,
  type DataFrame,
  type Frame,
  type FrameHeader,
} from '../../../replicator/protocol/frame.ts';
import { protocolParams, type ProtocolParams } from '../../../replicator/protocol/params.ts';
import { PeerLink, type PeerEndpoint } from '../../../replicator/replication/peerLink.ts';
import { fuzz, fuzzTimeout } from './fuzzRuns.ts';
import { mulberry32 } from '../../harness/prng.ts';

const EPOCH = 7;
const SENDER = 'aws/r-0';
const PEER: PeerEndpoint = { id: 'gcp/r-0', cluster: 'gcp', address: '10.0.0.2', port: 7946 };
const FRAME = 1472;
const PEER_EPOCH = 3;
let backPackets = 0;
/** Header of a frame from the peer back to the origin. */
const back = (epoch = EPOCH): FrameHeader => ({
  sender: PEER.id,
  receiver: SENDER,
  senderEpoch: PEER_EPOCH,
  receiverEpoch: epoch,
  packet: backPackets++,
});

function params(overrides: Partial<Record<keyof ProtocolParams, number>> = {}): ProtocolParams {
  return { ...protocolParams, ...overrides } as ProtocolParams;
}

interface Sent {
  at: number;
  frame: Frame;
  bytes: number;
}

function link(opts: { maxBytes?: number; params?: ProtocolParams; now?: number } = {}): {
  l: PeerLink;
  sent: Sent[];
  clock: { now: number };
} {
  const sent: Sent[] = [];
  const clock = { now: opts.now ?? 1000 };
  const l = new PeerLink(
    PEER,
    {
      sender: SENDER,
      epoch: EPOCH,
      maxBytes: opts.maxBytes ?? 1 << 20,
      maxFrameBytes: FRAME,
      params: opts.params ?? params(),
      peerEpoch: PEER_EPOCH,
    },
    {
      send(buf, port, address) {
        assert.equal(port, PEER.port);
        assert.equal(address, PEER.address);
        assert.ok(buf.length <= FRAME || decodeFrame(buf).ok, 'frames stay within the frame budget');
        const r = decodeFrame(buf);
        assert.ok(r.ok, `sent an undecodable frame: ${r.ok ? '' : r.reason}`);
        sent.push({ at: clock.now, frame: r.frame, bytes: buf.length });
      },
    },
    clock.now,
  );
  return { l, sent, clock };
}

const dataFrames = (sent: Sent[]): DataFrame[] =>
  sent.flatMap((s) => (s.frame.type === FrameType.Data ? [s.frame] : []));
const positions = (sent: Sent[]): number[] =>
  dataFrames(sent).flatMap((f) => f.records.map((r) => r.streamSeq));
const pings = (sent: Sent[]): number[] =>
  sent.flatMap((s) => (s.frame.type === FrameType.Ping ? [s.frame.timestamp] : []));

/** An ACK naming `largestPacket` (the packet number of a DATA frame the origin sent) as the largest received. */
function ack(
  base: number,
  largestPacket: number,
  ranges: Array<[number, number]> = [],
  epoch = EPOCH,
): AckFrame {
  return { type: FrameType.Ack, ...back(epoch), largestPacket, ackDelayUs: 0, base, ranges };
}

/** Packet number of the last DATA frame that carried `pos`. */
function packetOf(sent: Sent[], pos: number): number {
  const f = dataFrames(sent).filter((d) => d.records.some((r) => r.streamSeq === pos));
  assert.ok(f.length > 0, `position ${pos} was never sent`);
  return f[f.length - 1].packet;
}

function payload(n: number, size = 100): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32BE(n, 0);
  return b;
}

/** A seeded PRNG so a failing simulation replays from its fast-check seed. */
const prng = mulberry32;

describe('replication/peerLink', function () {
  this.timeout(fuzzTimeout(60_000));

  describe('sending', () => {
    it('flush batches never-sent positions into DATA frames within maxFrameBytes, carrying the low-water mark', () => {
      const { l, sent } = link();
      for (let i = 0; i < 100; i++) l.enqueue(1 + (i % 3), Math.floor(i / 3), payload(i, 200));
      assert.equal(l.lag, 100);
      assert.equal(l.bytes, 100 * (200 + RECORD_HEADER_BYTES));
      l.flush(1000);
      const frames = dataFrames(sent);
      assert.ok(frames.length > 1);
      assert.ok(sent.every((s) => s.bytes <= FRAME));
      assert.deepEqual(positions(sent), [...Array(100).keys()]);
      assert.ok(
        frames.every(
          (f) =>
            f.lowWater === 0 &&
            f.senderEpoch === EPOCH &&
            f.sender === SENDER &&
            f.receiver === PEER.id &&
            f.receiverEpoch === PEER_EPOCH,
        ),
      );
      // Every frame has its own packet number.
      assert.deepEqual(
        frames.map((f) => f.packet),
        [...frames.keys()],
      );
      const r = frames[0].records[4];
      assert.deepEqual([r.session, r.seq, r.payload.readUInt32BE(0)], [2, 1, 4]);
      assert.equal(l.counters.replicated, 100);
      assert.equal(l.counters.framesSent, frames.length);
      assert.equal(l.sendPos, 100);
      // Nothing new: nothing sent.
      l.flush(1001);
      assert.equal(dataFrames(sent).length, frames.length);
    });

    it('never sends beyond low + windowDatagrams; acknowledgements open the window', () => {
      const { l, sent } = link({ params: params({ windowDatagrams: 64 }) });
      for (let i = 0; i < 200; i++) l.enqueue(1, i, payload(i, 10));
      l.flush(1000);
      assert.equal(Math.max(...positions(sent)), 63);
      l.onAck(ack(40, packetOf(sent, 39)), 1010);
      l.flush(1010);
      assert.equal(Math.max(...positions(sent)), 40 + 63);
    });

    it('pings every pingIntervalMs and accepts only a PONG echoing one of its pings', () => {
      const { l, sent } = link({ now: 0 });
      l.tick(1000);
      l.tick(1100);
      l.tick(1250);
      assert.deepEqual(pings(sent), [1000, 1250]);
      l.onPong(999, 1300); // forged/replayed: no RTT sample
      assert.equal(l.rtt.samples, 0);
      l.onPong(1000, 1300);
      assert.equal(l.rtt.samples, 1);
      assert.equal(l.rtt.latestMs, 300);
      l.onPong(1000, 1310); // already answered
      assert.equal(l.rtt.samples, 1);
    });
  });

  describe('acknowledgements', () => {
    it('a cumulative ACK releases positions and their bytes; an RTT sample comes from the largest packet', () => {
      const { l } = link();
      for (let i = 0; i < 10; i++) l.enqueue(1, i, payload(i, 50));
      l.flush(1000);
      l.onAck(ack(6, 0), 1030);
      assert.equal(l.low, 6);
      assert.equal(l.lag, 4);
      assert.equal(l.bytes, 4 * (50 + RECORD_HEADER_BYTES));
      assert.equal(l.rtt.samples, 1);
      assert.equal(l.rtt.latestMs, 30);
      assert.equal(l.counters.acksReceived, 1);
      // An ACK for another epoch is not ours.
      l.onAck(ack(10, 0, [], EPOCH + 1), 1040);
      assert.equal(l.low, 6);
      assert.equal(l.counters.acksReceived, 1);
      // A cumulative ACK beyond what was sent cannot release unsent positions.
      l.enqueue(1, 10, payload(10, 50));
      l.onAck(ack(11, 0), 1050);
      assert.equal(l.low, 10);
      // An ACK naming a packet never sent is forged or corrupt: ignored whole.
      l.enqueue(1, 11, payload(11, 50));
      l.flush(1060);
      assert.equal(l.onAck(ack(12, 99), 1070), false);
      assert.equal(l.low, 10);
    });

    it('selectively acknowledged positions are never resent; a missing one is, once a frame sent 3 frames later is acknowledged', () => {
      const { l, sent } = link();
      for (let i = 0; i < 10; i++) {
        l.enqueue(1, i, payload(i, 10));
        l.flush(1000); // one frame per position: frame number == position
      }
      assert.equal(dataFrames(sent).length, 10);
      sent.length = 0;
      // Receiver has 0,1 and 3..9: 2 is lost (frames 5..9, sent 3+ frames after frame 2, were acknowledged).
      l.onAck(ack(2, 9, [[3, 9]]), 1020);
      assert.deepEqual(positions(sent), [2]);
      assert.equal(l.counters.retransmits, 1);
      assert.equal(l.low, 2);
      // The same ACK again (duplicate) does not resend 2 again: nothing newly acknowledged.
      sent.length = 0;
      l.onAck(ack(2, 9, [[3, 9]]), 1021);
      assert.deepEqual(positions(sent), []);
      l.onAck(ack(10, 9), 1040);
      assert.equal(l.lag, 0);
      assert.equal(l.bytes, 0);
    });

    it('does not declare loss when fewer than packetThreshold later frames were acknowledged (reordering)', () => {
      const { l, sent } = link();
      for (let i = 0; i < 4; i++) {
        l.enqueue(1, i, payload(i, 10));
        l.flush(1000);
      }
      sent.length = 0;
      l.onAck(ack(0, 2, [[1, 2]]), 1001); // 0 missing, frames 1 and 2 acked, right after sending
      assert.deepEqual(positions(sent), []);
      l.onAck(ack(0, 3, [[1, 3]]), 1002); // frame 3 is 3 frames after frame 0: now 0 is lost
      assert.deepEqual(positions(sent), [0]);
    });

    it('one batched frame overtaking another does not make the records of the first "lost"', () => {
      // Regression: the packet threshold used to count positions, so a frame of many records arriving
      // just before its predecessor made every record of the predecessor "lost" at once (a spurious
      // retransmission of whole frames on any path that reorders).
      const { l, sent } = link();
      for (let i = 0; i < 40; i++) l.enqueue(1, i, payload(i, 10));
      l.flush(1000); // one frame, 0..39
      for (let i = 40; i < 80; i++) l.enqueue(1, i, payload(i, 10));
      l.flush(1002); // a second frame, 40..79
      assert.equal(dataFrames(sent).length, 2);
      sent.length = 0;
      l.onAck(ack(0, 1, [[40, 79]]), 1010); // the second frame arrived first
      assert.deepEqual(positions(sent), []);
      assert.equal(l.counters.retransmits, 0);
      l.onAck(ack(80, 1), 1011);
      assert.equal(l.lag, 0);
    });

    it('time threshold: an unacknowledged position sent more than 9/8 RTT before an acknowledged one is lost', () => {
      const { l, sent } = link();
      l.enqueue(1, 0, payload(0, 10));
      l.flush(1000);
      l.enqueue(1, 1, payload(1, 10));
      l.flush(1050);
      l.onAck(ack(0, 1, [[1, 1]]), 1060); // RTT sample 10 ms: 1000 < 1050 - 11.25
      assert.deepEqual(positions(sent).slice(2), [0]);
    });

    it('a probe timeout resends only the oldest frame worth of unacknowledged data, and backs off', () => {
      const { l, sent } = link();
      for (let i = 0; i < 200; i++) l.enqueue(1, i, payload(i, 400));
      l.tick(1000);
      const firstBatch = positions(sent).length;
      assert.equal(firstBatch, 200);
      sent.length = 0;
      const pto = l.ptoMs();
      let t = 1000;
      while (positions(sent).length === 0 && t < 10_000) l.tick((t += 2));
      assert.ok(t - 1000 >= pto && t - 1000 <= pto + 2, `first probe after ${t - 1000} ms, pto ${pto}`);
      const probe = positions(sent);
      assert.deepEqual(probe, [0, 1, 2]); // 3 x 420 bytes fit a 1472-byte frame (trailer included)
      assert.ok(l.ptoMs() > pto, 'backed off');
      assert.equal(l.counters.retransmits, 3);
    });
  });

  describe('retransmit ring bound', () => {
    it('bytes never exceed maxBytes: the oldest unacknowledged datagrams are dropped and counted', () => {
      const max = 64 * 1024;
      const { l, sent } = link({ maxBytes: max });
      let sackedDropped = 0;
      for (let i = 0; i < 2000; i++) {
        l.enqueue(1, i, payload(i, 100 + (i % 200)));
        assert.ok(l.bytes <= max, `bytes ${l.bytes} > ${max}`);
        if (i === 500) {
          // Everything below low was dropped unacknowledged so far.
          assert.equal(l.counters.backlogDropped, l.low);
          l.flush(1000);
          // SACKed positions that are dropped later were received: they are not counted as dropped.
          l.onAck(ack(l.low, packetOf(sent, l.low + 50), [[l.low + 20, l.low + 50]]), 1010);
          sackedDropped = 31;
        }
      }
      assert.ok(l.low > 600);
      assert.equal(l.counters.backlogDropped, l.low - sackedDropped);
      assert.equal(l.next, 2000);
      // The next DATA frame tells the peer to skip what was dropped.
      sent.length = 0;
      l.flush(1020);
      assert.ok(dataFrames(sent).every((f) => f.lowWater === l.low));
    });

    it('a single datagram larger than maxBytes is still kept (never an empty ring for a pending send)', () => {
      const { l } = link({ maxBytes: 100 });
      l.enqueue(1, 0, payload(0, 500));
      assert.equal(l.lag, 1);
      l.enqueue(1, 1, payload(1, 500));
      assert.equal(l.lag, 1);
      assert.equal(l.low, 1);
      assert.equal(l.counters.backlogDropped, 1);
    });

    it('the ring grows past its initial capacity without losing or reordering anything', () => {
      const { l, sent } = link({ maxBytes: 1 << 30 });
      for (let i = 0; i < 5000; i++) l.enqueue(i % 7, i, payload(i, 4));
      l.onAck(ack(0, 0), 999);
      l.flush(1000);
      const frames = dataFrames(sent).flatMap((f) => f.records);
      assert.deepEqual(
        frames.map((r) => r.payload.readUInt32BE(0)),
        [...Array(5000).keys()],
      );
      assert.equal(l.close(), 5000);
      assert.equal(l.counters.backlogDropped, 5000);
      assert.equal(l.bytes, 0);
    });
  });

  describe('down and up', () => {
    it('a silent peer is marked down: only pings are sent; a PONG brings it back and the backlog is resent', () => {
      const { l, sent } = link({ now: 0 });
      for (let i = 0; i < 10; i++) l.enqueue(1, i, payload(i, 10));
      l.tick(2);
      l.onAck(ack(5, packetOf(sent, 4)), 10);
      let t = 10;
      while (l.state === 'up') l.tick((t += 2));
      assert.ok(t - 10 >= protocolParams.peerDownAfterMs);
      sent.length = 0;
      for (let i = 10; i < 20; i++) l.enqueue(1, i, payload(i, 10));
      for (let k = 0; k < 1000; k++) l.tick((t += 2));
      assert.deepEqual(positions(sent), [], 'no DATA to a down peer');
      const ps = pings(sent);
      assert.ok(ps.length >= 7);
      sent.length = 0;
      l.onPong(ps[ps.length - 1], t + 5);
      assert.equal(l.state, 'up');
      assert.deepEqual(
        positions(sent),
        [...Array(15).keys()].map((i) => i + 5),
      );
      assert.ok(dataFrames(sent).every((f) => f.lowWater === 5));
      // First sends are counted once; the resent backlog counts as retransmissions.
      assert.equal(l.counters.replicated, 20);
      assert.ok(l.counters.retransmits >= 5);
    });
  });

  describe('loss detection with retransmitted positions', () => {
    it('an ACK for a retransmitted position does not make everything sent before the retransmission "lost"', () => {
      // 0..6 go out in 7 frames; a probe timeout resends 0 in an 8th. Then 0 is acknowledged: which copy
      // arrived is unknown (most likely the original, delayed), so 0's resend frame and time must not serve
      // as the reference that declares 1..6 — sent before that resend and still in flight — lost.
      const { l, sent } = link();
      for (let i = 0; i <= 6; i++) l.enqueue(1, i, payload(i, 1000)); // one record per frame
      l.flush(1000);
      assert.equal(dataFrames(sent).length, 7);
      let t = 1000;
      while (l.counters.retransmits === 0) l.tick((t += 2));
      assert.deepEqual(positions(sent).slice(7), [0], 'the probe resends the oldest frame only');
      sent.length = 0;
      // The original copy of 0 (packet 0) arrived, late: the ACK says so by its packet number.
      l.onAck(ack(1, 0), t + 1);
      assert.deepEqual(positions(sent), [], 'no cascade of spurious retransmissions');
      // The packet number proves the resend was spurious (the original arrived): the reordering window
      // widens, so 5 acknowledged (packet 5) does not yet declare 1 and 2 lost (v1 could not tell).
      assert.equal(l.spuriousRetransmits, 1);
      assert.equal(l.reorderFrames, 2 * protocolParams.packetThreshold);
      l.onAck(ack(1, 5, [[5, 5]]), t + 2);
      assert.deepEqual(positions(sent), []);
      // Packet 6 is 6 packets after packet 0 only; 1 and 2 follow by the probe timeout, one frame at a time.
      const before = l.counters.retransmits;
      for (let k = 0; k < 500 && l.counters.retransmits === before; k++) l.tick((t += 2));
      assert.deepEqual(positions(sent), [1]);
    });

    it('after a peer comes back, losses among the resent backlog are detected from ACKs, not only by probes', () => {
      const { l, sent } = link({ now: 0 });
      for (let i = 0; i < 10; i++) l.enqueue(1, i, payload(i, 1000)); // one record per frame
      l.flush(0);
      let t = 0;
      while (l.state === 'up') l.tick((t += 2));
      const ps = pings(sent);
      sent.length = 0;
      l.onPong(ps[ps.length - 1], (t += 5));
      assert.equal(l.state, 'up');
      assert.deepEqual(positions(sent), [...Array(10).keys()]);
      const last = packetOf(sent, 9);
      sent.length = 0;
      // The peer got everything but 0: the frames resent 3+ frames after 0's were acknowledged.
      l.onAck(ack(0, last, [[1, 9]]), t + 10);
      assert.deepEqual(positions(sent), [0]);
    });
  });

  // ---- peerLink + inboundStream over a simulated network ----------------------------------------------

  interface SimOptions {
    seed: number;
    lossAB: number;
    lossBA: number;
    dup: number;
    minDelay: number;
    jitter: number;
    sessions: number;
    perSession: number;
    maxBytes: number;
    /** [from, to) of fake time during which the link is blackholed both ways. */
    outage?: [number, number];
    windowDatagrams?: number;
  }

  interface SimResult {
    link: PeerLink;
    rx: InboundStream;
    delivered: Array<[number, number, number]>;
    maxBytesSeen: number;
    dataWhileDown: number;
    resentAfterUp: boolean;
    total: number;
    now: number;
  }

  /** Runs until everything is acknowledged (or the fake-time budget ends). */
  function simulate(o: SimOptions): SimResult {
    const rnd = prng(o.seed);
    const p = params({ windowDatagrams: o.windowDatagrams ?? 1024 });
    let now = 1000;
    type InFlight = { at: number; order: number; buf: Buffer; to: 'rx' | 'tx' };
    let flight: InFlight[] = [];
    let order = 0;
    const blackholed = (): boolean => o.outage !== undefined && now >= o.outage[0] && now < o.outage[1];
    const transmit = (buf: Buffer, to: 'rx' | 'tx'): void => {
      if (blackholed() || rnd() < (to === 'rx' ? o.lossAB : o.lossBA)) return;
      const copies = rnd() < o.dup ? 2 : 1;
      for (let c = 0; c < copies; c++)
        flight.push({ at: now + o.minDelay + rnd() * o.jitter, order: order++, buf: Buffer.from(buf), to });
    };
    let dataWhileDown = 0;
    let resentAfterUp = false;
    let wasDown = false;
    const link = new PeerLink(
      PEER,
      {
        sender: SENDER,
        epoch: EPOCH,
        maxBytes: o.maxBytes,
        maxFrameBytes: FRAME,
        params: p,
        peerEpoch: PEER_EPOCH,
      },
      {
        send(buf) {
          const f = decodeFrame(buf);
          assert.ok(f.ok);
          if (f.frame.type === FrameType.Data) {
            if (link.state === 'down') dataWhileDown++;
            if (wasDown && f.frame.records.length > 0) resentAfterUp = true;
          }
          transmit(buf, 'rx');
        },
      },
      now,
    );
    const delivered: Array<[number, number, number]> = [];
    const rx = new InboundStream(
      SENDER,
      EPOCH,
      0,
      { windowSize: p.windowDatagrams, reorderLimit: 8192 },
      (s, q, pl) => {
        delivered.push([s, q, pl.readUInt32BE(0)]);
      },
      now,
    );
    let lastAckAt = now;
    const sendAck = (): void => {
      const st = rx.ackState(p.maxAckRanges, now);
      transmit(encodeAck(back(), st.largestPacket, st.ackDelayUs, st.base, st.ranges), 'tx');
      rx.unacked = 0;
      rx.ackUrgent = false;
      lastAckAt = now;
    };
    const onRx = (buf: Buffer): void => {
      const r = decodeFrame(buf);
      assert.ok(r.ok);
      const f = r.frame;
      if (f.type === FrameType.Ping) {
        rx.applyLowWater(f.lowWater, now, f.discard === true);
        transmit(encodePong(back(), f.timestamp), 'tx');
      } else if (f.type === FrameType.Data) {
        assert.equal(f.senderEpoch, EPOCH);
        assert.equal(f.receiverEpoch, PEER_EPOCH);
        rx.notePacket(f.packet, now);
        rx.applyLowWater(f.lowWater, now, f.discard === true);
        for (const rec of f.records) rx.receive(rec, now);
        if (rx.ackUrgent || rx.unacked >= p.ackEveryDatagrams) sendAck();
      }
    };
    const onTx = (buf: Buffer): void => {
      const r = decodeFrame(buf);
      assert.ok(r.ok);
      if (r.frame.type === FrameType.Ack) link.onAck(r.frame, now);
      else if (r.frame.type === FrameType.Pong) link.onPong(r.frame.timestamp, now);
    };

    const total = o.sessions * o.perSession;
    const nextSeq = new Array<number>(o.sessions).fill(0);
    let produced = 0;
    let maxBytesSeen = 0;
    const deadline = now + 600_000;
    while (now < deadline) {
      now += p.timerGranularityMs;
      // The origin produces a few datagrams per tick, round-robin-ish over its sessions.
      for (let k = 0; k < 3 && produced < total; k++) {
        let s = Math.floor(rnd() * o.sessions);
        while (nextSeq[s] >= o.perSession) s = (s + 1) % o.sessions;
        // Sessions are numbered from 1, as the ingress does (session 0 carries control records).
        link.enqueue(s + 1, nextSeq[s]++, payload(produced++, 20 + Math.floor(rnd() * 300)));
        maxBytesSeen = Math.max(maxBytesSeen, link.bytes);
      }
      // Deliver what has arrived, in arrival order (jitter reorders).
      const due = flight.filter((f) => f.at <= now).sort((a, b) => a.at - b.at || a.order - b.order);
      flight = flight.filter((f) => f.at > now);
      for (const f of due) (f.to === 'rx' ? onRx : onTx)(f.buf);
      if (link.state === 'down') wasDown = true;
      link.tick(now);
      if (rx.unacked > 0 && now - lastAckAt >= p.ackDelayMs) sendAck();
      if (
        produced === total &&
        link.lag === 0 &&
        rx.window.base === total &&
        (!o.outage || now > o.outage[1])
      )
        break;
    }
    return { link, rx, delivered, maxBytesSeen, dataWhileDown, resentAfterUp, total, now };
  }

  /** Exactly once and in order per session, for everything not dropped by the sender's bounded backlog. */
  function assertDelivery(r: SimResult, o: SimOptions): void {
    const bySession = new Map<number, number>();
    const seen = new Set<number>();
    for (const [s, q, id] of r.delivered) {
      assert.ok(!seen.has(id), `datagram ${id} delivered twice`);
      seen.add(id);
      assert.ok(q > (bySession.get(s) ?? -1), `session ${s}: seq ${q} after ${bySession.get(s)}`);
      bySession.set(s, q);
    }
    // The sender cannot know whether a datagram it dropped unacknowledged had arrived (its ACK may have
    // been lost), so the receiver skips at most what the sender dropped, and delivers everything else.
    const dropped = r.link.counters.backlogDropped;
    const skipped = r.rx.counters.senderSkipped;
    assert.ok(skipped <= dropped, `receiver skipped ${skipped} > sender dropped ${dropped}`);
    assert.equal(
      r.delivered.length,
      r.total - skipped,
      `delivered ${r.delivered.length} of ${r.total}, ${skipped} skipped`,
    );
    if (dropped === 0)
      assert.deepEqual(
        [...seen].sort((a, b) => a - b),
        [...Array(r.total).keys()],
      );
    assert.equal(r.rx.counters.late, 0);
    assert.equal(r.rx.counters.beyondWindow, 0, 'the sender stays inside the receive window');
    assert.equal(r.link.lag, 0, 'everything acknowledged');
    assert.ok(r.maxBytesSeen <= o.maxBytes);
  }

  describe('with InboundStream over a simulated lossy link (fake time)', () => {
    it('a clean link delivers everything once, in order, without retransmissions', () => {
      const o: SimOptions = {
        seed: 1,
        lossAB: 0,
        lossBA: 0,
        dup: 0,
        minDelay: 5,
        jitter: 0,
        sessions: 5,
        perSession: 200,
        maxBytes: 1 << 24,
      };
      const r = simulate(o);
      assertDelivery(r, o);
      assert.equal(r.link.counters.retransmits, 0);
      assert.equal(r.rx.counters.duplicates, 0);
    });

    it('a long clean path (300 ms RTT) does not cause a retransmission storm', () => {
      const o: SimOptions = {
        seed: 3,
        lossAB: 0,
        lossBA: 0,
        dup: 0,
        minDelay: 150,
        jitter: 5,
        sessions: 4,
        perSession: 1000,
        maxBytes: 1 << 24,
      };
      const r = simulate(o);
      assertDelivery(r, o);
      // Probe timeouts may fire before the first RTT sample, but each resends one frame's worth only.
      assert.ok(
        r.link.counters.retransmits <= r.total * 0.02,
        `${r.link.counters.retransmits} retransmits for ${r.total} datagrams`,
      );
    });

    it('heavy reordering without loss (jitter 4x the send interval) causes few spurious retransmissions', () => {
      const o: SimOptions = {
        seed: 5,
        lossAB: 0,
        lossBA: 0,
        dup: 0,
        minDelay: 5,
        jitter: 8,
        sessions: 4,
        perSession: 1000,
        maxBytes: 1 << 24,
      };
      const r = simulate(o);
      assertDelivery(r, o);
      assert.ok(
        r.link.counters.retransmits <= r.total * 0.05,
        `${r.link.counters.retransmits} retransmits for ${r.total} datagrams`,
      );
    });

    it('20% loss both ways, duplicates and reordering: exactly once, in order, with retransmissions', () => {
      const o: SimOptions = {
        seed: 42,
        lossAB: 0.2,
        lossBA: 0.2,
        dup: 0.1,
        minDelay: 5,
        jitter: 20,
        sessions: 8,
        perSession: 250,
        maxBytes: 1 << 24,
      };
      const r = simulate(o);
      assertDelivery(r, o);
      assert.ok(r.link.counters.retransmits > 0);
      assert.ok(r.rx.counters.duplicates > 0);
    });

    it('property: random loss, duplication, jitter and workloads', () => {
      fc.assert(
        fc.property(
          fc.record({
            seed: fc.integer(),
            lossAB: fc.constantFrom(0, 0.01, 0.1, 0.3),
            lossBA: fc.constantFrom(0, 0.1, 0.3),
            dup: fc.constantFrom(0, 0.05, 0.3),
            minDelay: fc.integer({ min: 0, max: 30 }),
            jitter: fc.integer({ min: 0, max: 60 }),
            sessions: fc.integer({ min: 1, max: 10 }),
            perSession: fc.integer({ min: 1, max: 120 }),
            maxBytes: fc.constant(1 << 24),
            windowDatagrams: fc.constantFrom(64, 256, 1024),
          }),
          (o) => {
            const r = simulate(o);
            assertDelivery(r, o);
            if (o.lossAB > 0 && r.total > 50)
              assert.ok(r.link.counters.retransmits > 0 || r.rx.counters.received === r.total);
          },
        ),
        fuzz(25, 0.02),
      );
    });

    it('after an outage, losses among the resent backlog are recovered promptly (not one probe at a time)', () => {
      // Production ends before the outage: after the peer returns, every unacknowledged position is a
      // retransmission, so loss detection must still work for retransmitted positions.
      const o: SimOptions = {
        seed: 11,
        lossAB: 0.1,
        lossBA: 0.1,
        dup: 0,
        minDelay: 10,
        jitter: 5,
        sessions: 4,
        perSession: 300, // 1200 datagrams, 3 per 2 ms tick: production ends at ~1.8 s
        maxBytes: 1 << 24,
        outage: [1700, 5000],
      };
      const r = simulate(o);
      assertDelivery(r, o);
      // The peer is noticed by its next PONG (pings every 250 ms), then the backlog and its losses follow.
      assert.ok(r.now - 5000 <= 800, `recovered ${r.now - 5000} ms after the outage ended`);
    });

    it('an outage marks the peer down, bounds the backlog (drops counted), and the backlog is resent after a PONG', () => {
      const o: SimOptions = {
        seed: 7,
        lossAB: 0.05,
        lossBA: 0.05,
        dup: 0.02,
        minDelay: 5,
        jitter: 10,
        sessions: 4,
        perSession: 3000, // 3 per 2 ms tick: 4 s of production, the outage in the middle
        maxBytes: 256 * 1024,
        outage: [1500, 4500],
      };
      const r = simulate(o);
      assert.ok(r.link.counters.backlogDropped > 0, 'the bounded backlog overflowed during the outage');
      assert.equal(r.dataWhileDown, 0, 'no DATA frames to a down peer');
      assert.ok(r.resentAfterUp, 'the backlog was resent once the peer answered');
      assert.equal(r.link.state, 'up');
      assertDelivery(r, o);
      assert.ok(r.link.counters.retransmits > 0);
    });
  });
});

describe('PeerLink: restarted peers and paced resends', () => {
  it('resends what a restarted peer had selectively acknowledged but not delivered', () => {
    const { l, sent, clock } = link();
    l.observePeerEpoch(3, clock.now);
    for (let k = 0; k < 10; k++) l.enqueue(1, k, Buffer.from(`d${k}`));
    l.flush(clock.now);
    // The old incarnation held 5..9 in its reorder buffer (SACKed) while 0..4 were missing.
    l.onAck(ack(0, 0, [[5, 9]]), clock.now);
    sent.length = 0;
    clock.now += 1;
    assert.equal(l.observePeerEpoch(3, clock.now), false, 'the same epoch is no restart');
    assert.equal(l.observePeerEpoch(4, clock.now), true, 'a higher epoch is a restart');
    l.flush(clock.now);
    assert.deepEqual(
      positions(sent).sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      'every position not cumulatively acknowledged goes out again, SACKed ones included',
    );
    assert.equal(l.observePeerEpoch(2, clock.now), false, 'an older epoch (a straggler) changes nothing');
  });

  it('paces the backlog resent to a peer that came back', () => {
    const p = params({
      resendDatagramsPerSecond: 10_000,
      resendBurst: 100,
      peerDownAfterMs: 100,
      pingIntervalMs: 10,
    });
    const { l, sent, clock } = link({ params: p, maxBytes: 64 << 20 });
    for (let k = 0; k < 3000; k++) l.enqueue(1, k, Buffer.alloc(20));
    l.flush(clock.now);
    clock.now += 200;
    l.tick(clock.now);
    assert.equal(l.state, 'down');
    sent.length = 0;
    const lastPing = pings(sent).at(-1) ?? clock.now;
    clock.now += 1;
    l.onPong(lastPing, clock.now); // back: 3000 unacknowledged positions to resend
    assert.equal(l.state, 'up');
    assert.ok(
      positions(sent).length <= 100,
      `the first burst is bounded by resendBurst (${positions(sent).length})`,
    );
    for (let t = 0; t < 100; t++) {
      clock.now += 1;
      l.tick(clock.now);
    }
    // 100 ms at 10,000/s is ~1,000 more on top of the burst: far from all 3,000 at once.
    const n = positions(sent).length;
    // Probe timeouts may add a frame or two of their own (unpaced by design: one frame each).
    assert.ok(n >= 900 && n <= 1500, `paced to the configured rate (${n} resent in ~100 ms)`);
    for (let t = 0; t < 400; t++) {
      clock.now += 1;
      l.tick(clock.now);
      const ping = pings(sent).at(-1);
      if (ping !== undefined) l.onPong(ping, clock.now); // the peer stays alive (no ACKs: nothing is released)
    }
    assert.equal(new Set(positions(sent)).size, 3000, 'eventually all of the backlog is resent');
  });
});
