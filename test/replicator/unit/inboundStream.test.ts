// Per-origin receiver: dedupe, per-session order, reorder buffer, gap timeout, sender low-water skip.
// Model-based properties: an origin produces S sessions x N datagrams at consecutive stream positions; the
// network permutes, duplicates and drops them (dropped ones are "retransmitted" later, i.e. arrive late,
// unless lost for good, in which case the gap timeout or the sender's low-water mark must skip them).
//
// Longer on-demand fuzz:  FUZZ_RUNS=100000 npx mocha test/replicator/unit/inboundStream.test.ts
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InboundStream, type InboundOptions } from '../../../replicator/delivery/inboundStream.ts';
import { WindowVerdict } from '../../../replicator/protocol/receiveWindow.ts';
import type { DataRecord } from '../../../replicator/protocol/frame.ts';
import { fuzz, fuzzTimeout } from './fuzzRuns.ts';

interface Delivery {
  session: number;
  seq: number;
  payload: string;
}

function receiver(opts: Partial<InboundOptions> = {}, startPos = 0): { rx: InboundStream; out: Delivery[] } {
  const out: Delivery[] = [];
  const rx = new InboundStream(
    'aws/r-0',
    1,
    startPos,
    { windowSize: 1024, reorderLimit: 1024, ...opts },
    (session, seq, payload) => out.push({ session, seq, payload: payload.toString() }),
    0,
  );
  return { rx, out };
}

const rec = (streamSeq: number, session: number, seq: number): DataRecord => ({
  streamSeq,
  session,
  seq,
  payload: Buffer.from(`${session}:${seq}`),
});

const keys = (out: Delivery[]): string[] => out.map((d) => `${d.session}:${d.seq}`);

/** The origin's stream: position p carries session sessions[p] with its next per-session seq. */
function buildStream(sessionOf: number[]): DataRecord[] {
  const next = new Map<number, number>();
  return sessionOf.map((s, p) => {
    const seq = next.get(s) ?? 0;
    next.set(s, seq + 1);
    return rec(p, s, seq);
  });
}

/** Every delivery is a real record, no (session, seq) twice, and each session's seqs strictly increase. */
function assertSafe(out: Delivery[], stream: DataRecord[]): void {
  const bySession = new Map<number, number>();
  const seen = new Set<string>();
  const valid = new Set(stream.map((r) => `${r.session}:${r.seq}`));
  for (const d of out) {
    const k = `${d.session}:${d.seq}`;
    assert.ok(valid.has(k), `delivered ${k} which was never sent`);
    assert.equal(d.payload, k, 'payload belongs to its position');
    assert.ok(!seen.has(k), `${k} delivered twice`);
    seen.add(k);
    const last = bySession.get(d.session) ?? -1;
    assert.ok(d.seq > last, `session ${d.session}: seq ${d.seq} after ${last}`);
    bySession.set(d.session, d.seq);
  }
}

const skippedTotal = (rx: InboundStream): number => rx.counters.senderSkipped;

// ---- generators ----------------------------------------------------------------------------------------

interface Scenario {
  stream: DataRecord[];
  startPos: number;
  lost: Set<number>;
  /** Arrival order of positions (permuted, with duplicates). */
  arrivals: number[];
  /** After arrival k, the sender may advance its low-water mark (only over positions it can give up on). */
  lowWaterAt: Set<number>;
  delays: number[];
}

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    sessions: fc.integer({ min: 1, max: 5 }),
    perSession: fc.integer({ min: 1, max: 30 }),
    seed: fc.array(fc.nat(), { minLength: 150, maxLength: 150 }),
    lossPct: fc.constantFrom(0, 5, 20, 50),
    dupPct: fc.constantFrom(0, 10, 40),
    midStream: fc.boolean(),
    startFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    shuffleKeys: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 300, maxLength: 300 }),
    lowWaterPct: fc.constantFrom(0, 10),
  })
  .map(({ sessions, perSession, seed, lossPct, dupPct, midStream, startFrac, shuffleKeys, lowWaterPct }) => {
    // Interleave the sessions pseudo-randomly (seeded), S x N datagrams in all.
    const left = Array.from({ length: sessions }, () => perSession);
    const sessionOf: number[] = [];
    let k = 0;
    while (sessionOf.length < sessions * perSession) {
      let s = seed[k++ % seed.length] % sessions;
      while (left[s] === 0) s = (s + 1) % sessions;
      left[s]--;
      sessionOf.push(1000 + s * 7);
    }
    const stream = buildStream(sessionOf);
    const total = stream.length;
    const startPos = midStream ? Math.floor(startFrac * total) : 0;
    const rnd = (i: number): number => shuffleKeys[i % shuffleKeys.length];
    const lost = new Set<number>();
    for (let p = startPos; p < total; p++) if (rnd(p * 7 + 3) * 100 < lossPct) lost.add(p);
    // Arrivals: every non-lost position once, plus duplicates, in a random order. A "dropped and
    // retransmitted" datagram is simply one that arrives late in this order.
    const arrivals: Array<[number, number]> = [];
    for (let p = startPos; p < total; p++) {
      if (lost.has(p)) continue;
      arrivals.push([p + (rnd(p) - 0.5) * total * 0.6, p]);
      if (rnd(p * 13 + 1) * 100 < dupPct) arrivals.push([p + (rnd(p * 5 + 2) - 0.2) * total, p]);
    }
    arrivals.sort((a, b) => a[0] - b[0]);
    const lowWaterAt = new Set<number>();
    for (let i = 0; i < arrivals.length; i++) if (rnd(i * 11 + 7) * 100 < lowWaterPct) lowWaterAt.add(i);
    const delays = arrivals.map((_, i) => Math.floor(rnd(i * 17 + 5) * 5));
    return { stream, startPos, lost, arrivals: arrivals.map(([, p]) => p), lowWaterAt, delays };
  });

describe('delivery/inboundStream', function () {
  this.timeout(fuzzTimeout(60_000));

  describe('examples', () => {
    it('delivers in-order datagrams at once and holds a session successor until its predecessor arrives', () => {
      const { rx, out } = receiver();
      rx.receive(rec(0, 1, 0), 0);
      rx.receive(rec(2, 1, 2), 0); // waits for 1:1
      rx.receive(rec(3, 2, 0), 0); // another session's first datagram: waits for the prefix (below)
      assert.deepEqual(keys(out), ['1:0']);
      assert.equal(rx.pendingCount, 2);
      rx.receive(rec(1, 1, 1), 0);
      assert.deepEqual(keys(out), ['1:0', '1:1', '1:2', '2:0']);
      assert.equal(rx.pendingCount, 0);
      assert.equal(rx.window.base, 4);
      assert.equal(rx.sessionCount, 2);
    });

    it("a session's first datagram waits until its announcement (sent before it) has arrived", () => {
      // Before: a lost announcement (session 0 at position 0) let the session's first datagram through
      // at once, and the backend got it with an address-less PROXY header (identity_unknown).
      const { rx, out } = receiver();
      rx.receive(rec(1, 5, 0), 0); // the announcement at position 0 was lost
      assert.deepEqual(keys(out), [], "the session's first datagram overtook its announcement");
      rx.receive(rec(0, 0, 0), 0); // retransmitted
      assert.deepEqual(keys(out), ['0:0', '5:0']);
      rx.receive(rec(2, 5, 1), 0); // the session's next: at once
      assert.deepEqual(keys(out), ['0:0', '5:0', '5:1']);
    });

    it("a session's first datagram waits for the prefix also when later ones of it arrived first", () => {
      // Simulator seed 7027: a resent backlog brought seq 30.. of a session first (they waited, which made
      // a cursor with next 0), then seq 0 was taken for "the session's next" and delivered before the
      // announcement below it had arrived.
      const { rx, out } = receiver();
      rx.receive(rec(3, 5, 1), 0); // waits
      rx.receive(rec(2, 5, 0), 0); // the announcement at position 1 is still missing
      assert.deepEqual(keys(out), [], 'seq 0 was delivered before its announcement');
      rx.receive(rec(0, 9, 0), 0);
      rx.receive(rec(1, 0, 0), 0);
      assert.deepEqual(keys(out), ['9:0', '0:0', '5:0', '5:1']);
    });

    it('control records are applied on arrival in any order, never held and never late', () => {
      // Before: session 0 was one ordered session, so an older announcement (a moved backlog, a
      // retransmission) arriving after a newer one was counted late (a loss reason) and dropped.
      const { rx, out } = receiver();
      rx.receive(rec(0, 7, 0), 0);
      rx.receive(rec(2, 0, 9), 0); // newer announcement first (position 1 still missing)
      rx.receive(rec(3, 0, 4), 0); // an older one after it
      assert.deepEqual(keys(out), ['7:0', '0:9', '0:4']);
      assert.equal(rx.counters.late, 0);
      assert.equal(rx.pendingCount, 0);
      rx.receive(rec(1, 7, 1), 0);
      assert.equal(rx.window.base, 4);
      assert.equal(rx.counters.delivered, 4);
    });

    it('duplicates are counted, not delivered, and make the next ACK urgent', () => {
      const { rx, out } = receiver();
      rx.receive(rec(0, 1, 0), 0);
      rx.unacked = 0;
      rx.ackUrgent = false;
      rx.receive(rec(0, 1, 0), 1);
      assert.equal(rx.counters.duplicates, 1);
      assert.equal(rx.ackUrgent, true);
      assert.equal(out.length, 1);
      assert.equal(rx.unacked, 0);
    });

    it('a gap makes the ACK urgent and is never skipped by the receiver, however long the origin is silent (issue 10 D2)', () => {
      const { rx, out } = receiver();
      rx.receive(rec(0, 1, 0), 0);
      rx.ackUrgent = false;
      rx.notePacket(4, 10);
      rx.receive(rec(3, 1, 3), 10); // 1,2 missing
      assert.equal(rx.ackUrgent, true);
      assert.deepEqual(rx.ackState(8, 12), { base: 1, largestPacket: 4, ackDelayUs: 2000, ranges: [[3, 3]] });
      assert.deepEqual(keys(out), ['1:0']);
      // An hour of silence (a partition): the retransmissions still fill the gap, in order.
      rx.receive(rec(2, 1, 2), 3_600_000);
      rx.receive(rec(1, 1, 1), 3_600_001);
      assert.deepEqual(keys(out), ['1:0', '1:1', '1:2', '1:3']);
      assert.equal(rx.counters.duplicates, 0);
      assert.equal(rx.counters.senderSkipped, 0);
    });

    it('a discarding low-water mark (hand-over) drops what is held below it; a plain one delivers it', () => {
      const plainRx = receiver();
      const handed = receiver();
      for (const { rx } of [plainRx, handed]) {
        rx.receive(rec(0, 1, 0), 0);
        rx.receive(rec(2, 1, 2), 0); // held: 1:1 is missing
        rx.receive(rec(5, 2, 1), 0); // held: 2:0 is missing
      }
      plainRx.rx.applyLowWater(6, 1);
      assert.deepEqual(keys(plainRx.out), ['1:0', '1:2', '2:1']);
      assert.equal(plainRx.rx.counters.senderAbandoned, 0);
      handed.rx.applyLowWater(4, 1, true); // 1:2 was moved to another replica; 2:1 was not
      assert.deepEqual(keys(handed.out), ['1:0']);
      assert.equal(handed.rx.counters.senderAbandoned, 1);
      assert.equal(handed.rx.pendingCount, 1);
      handed.rx.applyLowWater(6, 2);
      assert.deepEqual(keys(handed.out), ['1:0', '2:1']);
      assert.equal(handed.rx.window.base, 6);
    });

    it('retire (a newer incarnation of the origin spoke) delivers everything held, in stream order', () => {
      const { rx, out } = receiver();
      rx.receive(rec(3, 1, 3), 0);
      rx.receive(rec(1, 2, 1), 0);
      rx.retire(1);
      assert.deepEqual(keys(out), ['2:1', '1:3']);
      assert.equal(rx.pendingCount, 0);
      assert.equal(rx.counters.senderSkipped, 2);
    });

    it('the sender low-water mark settles the prefix it gave up on (counted as senderSkipped)', () => {
      const { rx, out } = receiver();
      rx.receive(rec(5, 1, 2), 0);
      rx.receive(rec(6, 2, 1), 0);
      assert.equal(out.length, 0);
      rx.applyLowWater(3, 1); // 0,1,2 given up; 3,4 still coming
      assert.equal(rx.counters.senderSkipped, 3);
      assert.equal(out.length, 0);
      // Session 1 seq 1: its seq 0 (at or below position 2) was given up, so it goes at once, and the
      // waiting 1:2 follows; 2:1 still waits for position 4 (which may be its seq 0).
      rx.receive(rec(3, 1, 1), 2);
      assert.deepEqual(keys(out), ['1:1', '1:2']);
      rx.applyLowWater(5, 3); // 4 given up too: everything below 5 settled
      assert.deepEqual(keys(out), ['1:1', '1:2', '2:1']);
      assert.equal(rx.counters.senderSkipped, 4);
      rx.applyLowWater(2, 4); // stale low-water marks are ignored
      assert.equal(rx.counters.senderSkipped, 4);
    });

    it('a receiver started mid-stream delivers sessions it never saw from seq > 0, in order', () => {
      const { rx, out } = receiver({}, 100);
      rx.receive(rec(99, 1, 4), 0); // before our start: settled already
      assert.equal(rx.counters.duplicates, 1);
      rx.receive(rec(101, 1, 6), 0); // waits: position 100 unsettled
      rx.receive(rec(102, 2, 9), 0);
      assert.equal(out.length, 0);
      rx.receive(rec(100, 1, 5), 0);
      assert.deepEqual(keys(out), ['1:5', '1:6', '2:9']);
      rx.receive(rec(103, 2, 10), 0);
      assert.deepEqual(keys(out), ['1:5', '1:6', '2:9', '2:10']);
    });

    it('positions at or beyond base + window are counted and not recorded', () => {
      const { rx, out } = receiver({ windowSize: 32 });
      rx.receive(rec(32, 1, 0), 0);
      assert.equal(rx.counters.beyondWindow, 1);
      assert.equal(out.length, 0);
      rx.receive(rec(31, 1, 0), 0);
      assert.equal(rx.pendingCount, 1, 'recorded (a first datagram waits for the prefix)');
      rx.receive(rec(32, 2, 0), 0); // still beyond: base is 0
      assert.equal(rx.counters.beyondWindow, 2);
    });

    it('a full reorder buffer refuses datagrams that would wait (unrecorded, unacknowledged); resent, they are delivered', () => {
      const limit = 4;
      const { rx, out } = receiver({ reorderLimit: limit });
      // Positions 0..5 carry seq 0 of sessions 100..105; positions 10..15 their seq 1.
      for (let i = 0; i < 4; i++) rx.receive(rec(10 + i, 100 + i, 1), 0); // all wait for their seq 0
      assert.equal(rx.pendingCount, limit);
      rx.receive(rec(14, 104, 1), 1); // would wait too: refused
      rx.receive(rec(15, 105, 1), 1);
      assert.equal(rx.counters.reorderFull, 2);
      assert.equal(rx.pendingCount, limit);
      assert.equal(rx.window.check(14), WindowVerdict.New, 'not recorded: a resend is accepted later');
      assert.deepEqual(rx.ackState(8, 0).ranges, [[10, 13]], 'not acknowledged');
      // A new session's first datagram waits for the prefix (its announcement), so it is refused too.
      rx.receive(rec(20, 300, 0), 2);
      assert.equal(rx.counters.reorderFull, 3);
      // Deliverable datagrams are never refused: a session's next seq, the base.
      rx.receive(rec(0, 100, 0), 2); // the base: delivers 100:0 and releases 100:1
      assert.deepEqual(keys(out), ['100:0', '100:1']);
      assert.equal(rx.pendingCount, 3);
      // Room again: the sender's resend of 14 is held; then the gap fills and everything follows in order.
      rx.receive(rec(14, 104, 1), 3);
      assert.equal(rx.pendingCount, 4);
      for (const p of [1, 2, 3, 4, 5]) rx.receive(rec(p, 100 + p, 0), 4);
      rx.receive(rec(15, 105, 1), 5);
      assert.equal(rx.pendingCount, 0);
      assert.equal(out.length, 12);
      const sent = [...Array(6).keys()].flatMap((i) => [rec(i, 100 + i, 0), rec(10 + i, 100 + i, 1)]);
      assertSafe(out, sent);
      assert.equal(rx.counters.reorderFull, 3);
      assert.equal(rx.counters.duplicates, 0);
    });

    it('ackState reports base, the largest packet with its delay, and the received ranges above base', () => {
      const { rx } = receiver();
      assert.deepEqual(rx.ackState(8, 0), { base: 0, largestPacket: 0, ackDelayUs: 0, ranges: [] });
      for (const p of [0, 1, 3, 4, 7]) {
        rx.notePacket(10 - p, p); // packets arrive out of order: the largest is kept with its arrival time
        rx.receive(rec(p, p, 0), 0);
      }
      assert.deepEqual(rx.ackState(8, 5), {
        base: 2,
        largestPacket: 10,
        ackDelayUs: 5000,
        ranges: [
          [3, 4],
          [7, 7],
        ],
      });
      assert.deepEqual(rx.ackState(1, 0).ranges, [[3, 4]]);
    });

    it('sweepSessions forgets idle sessions but keeps ones with datagrams waiting', () => {
      const { rx } = receiver();
      rx.receive(rec(0, 1, 0), 0);
      rx.receive(rec(2, 2, 1), 0); // session 2 waits
      rx.sweepSessions(10_000, 1000);
      assert.equal(rx.sessionCount, 1);
      assert.equal(rx.pendingCount, 1);
    });
  });

  describe('model-based properties', () => {
    it('every non-lost datagram is delivered exactly once, in per-session order; counters add up', () => {
      fc.assert(
        fc.property(scenarioArb, ({ stream, startPos, lost, arrivals, lowWaterAt, delays }) => {
          const total = stream.length;
          const { rx, out } = receiver({ windowSize: 256, reorderLimit: 1024 }, startPos);
          const arrived = new Set<number>();
          let now = 0;
          let dups = 0;
          arrivals.forEach((p, i) => {
            now += delays[i];
            if (arrived.has(p)) dups++;
            arrived.add(p);
            rx.receive(stream[p], now);
            if (lowWaterAt.has(i)) {
              // The sender's low-water: below it every position was received or given up (lost).
              let lw = rx.window.base;
              while (lw < total && (arrived.has(lw) || lost.has(lw))) lw++;
              rx.applyLowWater(lw, now);
            }
          });
          // The receiver never settles a lost position on its own, however long it waits.
          assert.ok(lost.size === 0 || rx.window.base <= Math.min(...lost) || lowWaterAt.size > 0);
          rx.applyLowWater(total, now);

          assertSafe(out, stream);
          const expected = stream
            .filter((r) => r.streamSeq >= startPos && !lost.has(r.streamSeq))
            .map((r) => `${r.session}:${r.seq}`);
          assert.deepEqual(new Set(keys(out)), new Set(expected), 'every non-lost datagram delivered');
          assert.equal(out.length, expected.length);
          assert.equal(rx.counters.delivered, expected.length);
          assert.equal(rx.counters.received, expected.length);
          assert.equal(rx.counters.duplicates, dups);
          assert.equal(rx.counters.delivered + skippedTotal(rx), total - startPos);
          assert.equal(skippedTotal(rx), lost.size);
          assert.equal(rx.counters.reorderFull, 0);
          assert.equal(rx.counters.late, 0);
          assert.equal(rx.counters.beyondWindow, 0);
          assert.equal(rx.pendingCount, 0);
          assert.equal(rx.window.base, total);
          // Without losses every session is delivered completely and strictly in order from its seq 0.
          if (lost.size === 0 && startPos === 0) {
            for (const s of new Set(stream.map((r) => r.session))) {
              const seqs = out.filter((d) => d.session === s).map((d) => d.seq);
              assert.deepEqual(seqs, [...seqs.keys()]);
            }
          }
        }),
        fuzz(300),
      );
    });

    it('flow control: with a tiny reorder buffer, refused datagrams resent by the sender are all delivered exactly once', () => {
      fc.assert(
        fc.property(
          scenarioArb,
          fc.integer({ min: 1, max: 8 }),
          fc.integer({ min: 1, max: 5 }),
          ({ stream, startPos, lost, arrivals, delays }, reorderLimit, retryEvery) => {
            const total = stream.length;
            const { rx, out } = receiver({ windowSize: 256, reorderLimit }, startPos);
            let now = 0;
            let attempts = 0;
            const refused: number[] = [];
            // The network delivers p; if the receiver refuses it, the sender will resend it later.
            const send = (p: number): void => {
              const before = rx.counters.reorderFull;
              attempts++;
              rx.receive(stream[p], now);
              assert.ok(rx.pendingCount <= reorderLimit, `pendingCount ${rx.pendingCount} > ${reorderLimit}`);
              if (rx.counters.reorderFull > before) refused.push(p);
            };
            // The sender's low-water mark: everything below it was acknowledged (recorded) or given up (lost).
            const lowWater = (): number => {
              let lw = rx.window.base;
              while (lw < total && (rx.window.check(lw) === WindowVerdict.Duplicate || lost.has(lw))) lw++;
              return lw;
            };
            arrivals.forEach((p, i) => {
              now += delays[i];
              send(p);
              if (i % retryEvery === 0 && refused.length > 0) send(refused.shift()!);
            });
            // Retransmission rounds until nothing is refused any more; the sender's DATA frames carry its
            // low-water mark, which settles the positions it gave up on.
            for (let round = 0; refused.length > 0; round++) {
              assert.ok(round < 20 * total, 'refused datagrams are eventually accepted (no deadlock)');
              rx.applyLowWater(lowWater(), ++now);
              send(refused.shift()!);
            }
            rx.applyLowWater(total, ++now);

            assertSafe(out, stream);
            const expected = stream
              .filter((r) => r.streamSeq >= startPos && !lost.has(r.streamSeq))
              .map((r) => `${r.session}:${r.seq}`);
            assert.deepEqual(new Set(keys(out)), new Set(expected), 'every non-lost datagram delivered');
            assert.equal(out.length, expected.length);
            assert.equal(rx.counters.senderSkipped, lost.size);
            assert.equal(rx.counters.received + rx.counters.duplicates + rx.counters.reorderFull, attempts);
            assert.equal(rx.counters.late, 0);
            assert.equal(rx.pendingCount, 0);
          },
        ),
        fuzz(300),
      );
    });

    it('safety under hostile timing: tiny reorder buffer, small window, arbitrary (also discarding) low-water marks', () => {
      fc.assert(
        fc.property(
          scenarioArb,
          fc.constantFrom(32, 64),
          fc.integer({ min: 1, max: 8 }),
          fc.array(fc.nat(), { maxLength: 20 }),
          ({ stream, startPos, arrivals, delays }, windowSize, reorderLimit, lowWaters) => {
            const total = stream.length;
            const { rx, out } = receiver({ windowSize, reorderLimit }, startPos);
            let now = 0;
            arrivals.forEach((p, i) => {
              now += delays[i];
              rx.receive(stream[p], now);
              // A sender may give up on anything it still holds (backlog bound), even what is in flight,
              // or hand it over to another replica (discard).
              if (i < lowWaters.length && lowWaters[i] % 5 === 0)
                rx.applyLowWater(
                  startPos + (lowWaters[i] % (total - startPos + 1)),
                  now,
                  lowWaters[i] % 2 === 0,
                );
              assert.ok(
                rx.pendingCount <= reorderLimit,
                `pendingCount ${rx.pendingCount} > reorderLimit ${reorderLimit}`,
              );
              assertSafe(out, stream);
            });
            rx.applyLowWater(total, now);
            assertSafe(out, stream);
            assert.equal(rx.pendingCount, 0);
            assert.equal(rx.counters.late, 0);
            assert.equal(rx.counters.received, rx.counters.delivered + rx.counters.senderAbandoned);
            assert.equal(
              rx.counters.delivered + rx.counters.senderAbandoned + skippedTotal(rx),
              total - startPos,
              'each position settled exactly once',
            );
            assert.equal(
              rx.counters.received +
                rx.counters.duplicates +
                rx.counters.beyondWindow +
                rx.counters.reorderFull,
              arrivals.length,
            );
          },
        ),
        fuzz(300),
      );
    });
  });
});
