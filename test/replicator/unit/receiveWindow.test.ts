// Receive/anti-replay window against a reference model (a Set of received positions plus the settled
// prefix): verdicts, base = lowest unsettled position, highest, ranges(), skipTo counts (including jumps
// larger than the window), skipGap, Beyond for positions >= base+size, and positions above 2^32.
//
// Longer on-demand fuzz:  FUZZ_RUNS=100000 npx mocha test/replicator/unit/receiveWindow.test.ts
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReceiveWindow, WindowVerdict } from '../../../replicator/protocol/receiveWindow.ts';
import { fuzz, fuzzTimeout } from './fuzzRuns.ts';

/** The obvious, slow implementation. */
class Model {
  received = new Set<number>();
  highest: number;
  constructor(
    readonly size: number,
    public base: number,
  ) {
    this.highest = base - 1;
  }
  verdict(pos: number): WindowVerdict {
    if (pos < this.base || this.received.has(pos)) return WindowVerdict.Duplicate;
    if (pos >= this.base + this.size) return WindowVerdict.Beyond;
    return WindowVerdict.New;
  }
  private advance(): void {
    while (this.received.has(this.base)) this.received.delete(this.base++);
  }
  mark(pos: number): number {
    const b0 = this.base;
    this.received.add(pos);
    this.highest = Math.max(this.highest, pos);
    this.advance();
    return this.base - b0;
  }
  skipTo(pos: number): number {
    if (pos <= this.base) return 0;
    let receivedBelow = 0;
    for (const p of [...this.received]) {
      if (p < pos) {
        receivedBelow++;
        this.received.delete(p);
      }
    }
    const skipped = pos - this.base - receivedBelow;
    this.base = pos;
    this.advance();
    this.highest = Math.max(this.highest, this.base - 1);
    return skipped;
  }
  skipGap(): number {
    if (this.highest < this.base) return 0;
    let p = this.base;
    while (!this.received.has(p)) p++;
    return this.skipTo(p);
  }
  ranges(max: number): Array<[number, number]> {
    const sorted = [...this.received].sort((a, b) => a - b);
    const out: Array<[number, number]> = [];
    for (const p of sorted) {
      const last = out[out.length - 1];
      if (last && last[1] === p - 1) last[1] = p;
      else out.push([p, p]);
    }
    return out.slice(0, max);
  }
  nextReceived(): number {
    const sorted = [...this.received].sort((a, b) => a - b);
    return sorted.length > 0 ? sorted[0] : -1;
  }
}

type Op =
  | { kind: 'mark'; off: number }
  | { kind: 'probe'; off: number }
  | { kind: 'skipTo'; off: number }
  | { kind: 'skipGap' };

function opArb(size: number): fc.Arbitrary<Op> {
  return fc.oneof(
    {
      weight: 12,
      arbitrary: fc.record({
        kind: fc.constant('mark' as const),
        off: fc.integer({ min: -3, max: size + 3 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('probe' as const),
        off: fc.integer({ min: -size, max: 2 * size }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('skipTo' as const),
        off: fc.oneof(fc.integer({ min: -2, max: size }), fc.integer({ min: size - 2, max: 4 * size })),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'skipGap' as const }) },
  );
}

const scenario = fc.constantFrom(32, 64, 128).chain((size) =>
  fc.record({
    size: fc.constant(size),
    start: fc.oneof(
      fc.constant(0),
      fc.integer({ min: 0, max: 1000 }),
      // Around 2^32 and near the top of the u48 range: the ring index must stay exact.
      fc.integer({ min: 2 ** 32 - 200, max: 2 ** 32 + 200 }),
      fc.constant(2 ** 48 - 1_000_000),
    ),
    ops: fc.array(opArb(size), { minLength: 1, maxLength: 300 }),
  }),
);

function assertSame(w: ReceiveWindow, m: Model, ctx: string): void {
  assert.equal(w.base, m.base, `base ${ctx}`);
  assert.equal(w.highest, m.highest, `highest ${ctx}`);
  assert.deepEqual(w.ranges(1000), m.ranges(1000), `ranges ${ctx}`);
  assert.deepEqual(w.ranges(2), m.ranges(2), `ranges(2) ${ctx}`);
  assert.equal(w.receivedAboveBase(), m.received.size, `receivedAboveBase ${ctx}`);
  assert.equal(w.nextReceived(), m.nextReceived(), `nextReceived ${ctx}`);
  // Base is the lowest unsettled position: never itself received, and everything below it is settled.
  assert.equal(w.check(w.base), WindowVerdict.New, `base is unreceived ${ctx}`);
  assert.equal(w.check(w.base - 1), WindowVerdict.Duplicate, `below base is settled ${ctx}`);
  assert.equal(w.check(w.base + w.size), WindowVerdict.Beyond, `window end ${ctx}`);
}

describe('protocol/receiveWindow', function () {
  this.timeout(fuzzTimeout(60_000));

  it('rejects sizes that are not powers of two >= 32', () => {
    for (const bad of [0, 1, 16, 31, 48, 100]) assert.throws(() => new ReceiveWindow(bad), RangeError);
    assert.doesNotThrow(() => new ReceiveWindow(32));
  });

  it('starts empty at its start position', () => {
    const w = new ReceiveWindow(64, 10);
    assert.equal(w.base, 10);
    assert.equal(w.highest, 9);
    assert.equal(w.check(9), WindowVerdict.Duplicate);
    assert.equal(w.check(10), WindowVerdict.New);
    assert.equal(w.check(73), WindowVerdict.New);
    assert.equal(w.check(74), WindowVerdict.Beyond);
    assert.deepEqual(w.ranges(8), []);
    assert.equal(w.nextReceived(), -1);
    assert.equal(w.skipGap(), 0);
  });

  it('in-order marks slide base; out-of-order marks wait in the bitmap', () => {
    const w = new ReceiveWindow(32);
    assert.equal(w.mark(0), 1);
    assert.equal(w.mark(2), 0);
    assert.equal(w.mark(3), 0);
    assert.equal(w.mark(6), 0);
    assert.deepEqual(w.ranges(8), [
      [2, 3],
      [6, 6],
    ]);
    assert.deepEqual(w.ranges(1), [[2, 3]]);
    assert.equal(w.check(2), WindowVerdict.Duplicate);
    assert.equal(w.mark(1), 3); // 1,2,3
    assert.equal(w.base, 4);
    assert.equal(w.skipGap(), 2); // 4,5 skipped, 6 received -> base 7
    assert.equal(w.base, 7);
    assert.equal(w.highest, 6);
  });

  it('skipTo across more than the window counts every unreceived position once', () => {
    const w = new ReceiveWindow(32, 100);
    w.mark(101);
    w.mark(120);
    w.mark(131); // base+31: last slot
    assert.equal(w.check(132), WindowVerdict.Beyond);
    assert.equal(w.skipTo(100 + 32 * 10), 32 * 10 - 3);
    assert.equal(w.base, 420);
    assert.equal(w.highest, 419);
    assert.deepEqual(w.ranges(8), []);
    // The ring is clean after the jump: every slot reads New again.
    for (let p = 420; p < 452; p++) assert.equal(w.check(p), WindowVerdict.New);
  });

  it('positions beyond the window are not recorded and come back New once the window moves', () => {
    const w = new ReceiveWindow(32);
    assert.equal(w.check(32), WindowVerdict.Beyond);
    w.mark(0);
    assert.equal(w.check(32), WindowVerdict.New);
  });

  it('matches the reference model over random marks, probes, skipTo and skipGap', () => {
    fc.assert(
      fc.property(scenario, ({ size, start, ops }) => {
        const w = new ReceiveWindow(size, start);
        const m = new Model(size, start);
        ops.forEach((op, k) => {
          const ctx = `after op ${k} ${JSON.stringify(op)}`;
          switch (op.kind) {
            case 'probe':
            case 'mark': {
              const pos = Math.max(0, m.base + op.off);
              const v = w.check(pos);
              assert.equal(v, m.verdict(pos), `verdict ${ctx}`);
              if (op.kind === 'mark' && v === WindowVerdict.New)
                assert.equal(w.mark(pos), m.mark(pos), `advance ${ctx}`);
              break;
            }
            case 'skipTo': {
              const pos = Math.max(0, m.base + op.off);
              assert.equal(w.skipTo(pos), m.skipTo(pos), `skipped ${ctx}`);
              break;
            }
            case 'skipGap':
              assert.equal(w.skipGap(), m.skipGap(), `gap ${ctx}`);
              break;
          }
          assertSame(w, m, ctx);
        });
      }),
      fuzz(300),
    );
  });

  it('duplicates are detected exactly: every position marked once reads Duplicate forever after', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 64),
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 600 }),
        (size, positions) => {
          const w = new ReceiveWindow(size);
          const seen = new Set<number>();
          for (const p of positions) {
            const v = w.check(p);
            if (seen.has(p)) assert.equal(v, WindowVerdict.Duplicate, `replay of ${p}`);
            else if (p >= w.base + size) assert.equal(v, WindowVerdict.Beyond);
            else {
              assert.equal(v, WindowVerdict.New, `first arrival of ${p}`);
              w.mark(p);
              seen.add(p);
            }
          }
          // Settling everything still reports every replay as a duplicate.
          w.skipTo(10_000);
          for (const p of seen) assert.equal(w.check(p), WindowVerdict.Duplicate);
        },
      ),
      fuzz(300),
    );
  });
});
