// Consistent hash ring and rendezvous hashing: balanced spread, minimal movement when a backend leaves or
// joins, determinism, and rendezvous stability.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HashRing, hashString, mix32, rendezvous } from '../../../replicator/delivery/hashRing.ts';
import { fuzz, fuzzTimeout } from './fuzzRuns.ts';

const KEYS = 30_000;
const id = (s: string): string => s;
const keys = Array.from({ length: KEYS }, (_, i) => mix32(i * 2654435761));

function counts(ring: HashRing<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) {
    const b = ring.pick(k)!;
    m.set(b, (m.get(b) ?? 0) + 1);
  }
  return m;
}

describe('delivery/hashRing', function () {
  this.timeout(fuzzTimeout(60_000));

  it('hashes are 32-bit unsigned and deterministic', () => {
    for (const s of ['', 'a', '10.0.0.1:5353', 'é☃']) {
      const h = hashString(s);
      assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff);
      assert.equal(h, hashString(s));
    }
    assert.notEqual(hashString('10.0.0.1:5353'), hashString('10.0.0.2:5353'));
    assert.equal(mix32(0), 0);
    assert.ok(mix32(1) > 0);
  });

  it('an empty ring picks nothing; a single member gets every key', () => {
    assert.equal(new HashRing<string>([], id).pick(42), undefined);
    const one = new HashRing(['only'], id);
    assert.ok(keys.slice(0, 1000).every((k) => one.pick(k) === 'only'));
  });

  it('spreads 30k keys over 3 backends with each getting 20-46%', () => {
    const backends = ['10.0.0.1:5353', '10.0.0.2:5353', '10.0.0.3:5353'];
    const c = counts(new HashRing(backends, id));
    assert.equal(c.size, 3);
    for (const b of backends) {
      const share = (c.get(b) ?? 0) / KEYS;
      assert.ok(share >= 0.2 && share <= 0.46, `${b} got ${(share * 100).toFixed(1)}%`);
    }
  });

  it('balance holds for arbitrary backend names (3 backends, 15-55% each: 64 virtual nodes per backend)', () => {
    // With 64 vnodes the share of one of 3 backends spreads roughly 0.20-0.49 over thousands of random
    // name sets (measured), so 20-46% holds for typical sets (above) but not for every set: the bound
    // here catches a broken hash (clustering, a backend with no keys) without being flaky.
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 3, maxLength: 3 }),
        (names) => {
          const c = counts(new HashRing(names, id));
          for (const n of names) {
            const share = (c.get(n) ?? 0) / KEYS;
            assert.ok(
              share >= 0.15 && share <= 0.55,
              `${JSON.stringify(n)} got ${(share * 100).toFixed(1)}% of ${JSON.stringify(names)}`,
            );
          }
        },
      ),
      fuzz(20, 0.01),
    );
  });

  it('removing a backend moves only its keys; adding one takes keys only for itself', () => {
    const all = ['a:1', 'b:1', 'c:1', 'd:1'];
    const full = new HashRing(all, id);
    const without = new HashRing(
      all.filter((b) => b !== 'c:1'),
      id,
    );
    let moved = 0;
    for (const k of keys) {
      const before = full.pick(k)!;
      const after = without.pick(k)!;
      if (before === 'c:1') {
        assert.notEqual(after, 'c:1');
        moved++;
      } else assert.equal(after, before, `key ${k} moved from ${before} to ${after}`);
    }
    assert.ok(moved > KEYS * 0.1, `only ${moved} keys were on c`);
  });

  it('membership order does not matter', () => {
    const r1 = new HashRing(['x:1', 'y:1', 'z:1'], id);
    const r2 = new HashRing(['z:1', 'x:1', 'y:1'], id);
    assert.ok(keys.slice(0, 5000).every((k) => r1.pick(k) === r2.pick(k)));
  });

  describe('rendezvous', () => {
    const replicas = ['gcp/r-0', 'gcp/r-1', 'gcp/r-2', 'gcp/r-3'];

    it('is stable per key and independent of candidate order', () => {
      for (const k of keys.slice(0, 2000)) {
        const a = rendezvous(replicas, id, k);
        assert.equal(rendezvous([...replicas].reverse(), id, k), a);
        assert.equal(rendezvous(replicas, id, k), a);
      }
      assert.equal(rendezvous([], id, 1), undefined);
    });

    it('a leaving replica moves only its keys, and the spread is reasonable', () => {
      const count = new Map<string, number>();
      for (const k of keys) {
        const a = rendezvous(replicas, id, k)!;
        count.set(a, (count.get(a) ?? 0) + 1);
        const b = rendezvous(
          replicas.filter((r) => r !== 'gcp/r-1'),
          id,
          k,
        )!;
        if (a !== 'gcp/r-1') assert.equal(b, a);
        else assert.notEqual(b, 'gcp/r-1');
      }
      for (const r of replicas) assert.ok((count.get(r) ?? 0) / KEYS > 0.15, `${r}: ${count.get(r)}`);
    });
  });
});
