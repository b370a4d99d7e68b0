// Two-segment session table: capacity eviction takes probation sessions first (a flood of new keys never
// evicts established ones while probation entries exist), idle sweep expires exactly the idle entries,
// promotion only by a reply (issue 10 D10: a second datagram is as easy to spoof as the first), LRU order
// in probation, and a model-based property over random operations.
//
// Longer on-demand fuzz:  FUZZ_RUNS=100000 npx mocha test/replicator/unit/sessionTable.test.ts
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SessionTable, type EvictReason, type TableEntry } from '../../../replicator/ingress/sessionTable.ts';
import { fuzz, fuzzTimeout } from './fuzzRuns.ts';

interface Entry extends TableEntry {
  readonly key: string;
  n: number;
}

const entry = (key: string, established = false): Entry => ({
  key,
  lastSeen: 0,
  refreshedAt: 0,
  datagrams: 1,
  established,
  n: 0,
});

function table(
  max: number,
  idleMs: number,
): { t: SessionTable<Entry>; evicted: Array<[string, EvictReason]> } {
  const evicted: Array<[string, EvictReason]> = [];
  const t = new SessionTable<Entry>(max, idleMs, (e, reason) => evicted.push([e.key, reason]));
  return { t, evicted };
}

describe('ingress/sessionTable', function () {
  this.timeout(fuzzTimeout(60_000));

  it('a second datagram does not promote a session (spoofable); a reply does', () => {
    const { t } = table(10, 1000);
    const a = entry('a');
    const b = entry('b');
    t.add(a, 0);
    t.add(b, 0);
    assert.equal(t.establishedCount, 0);
    t.touch(a, 1);
    assert.equal(a.established, false);
    assert.equal(a.datagrams, 2);
    t.promote(a, 1);
    assert.equal(a.established, true);
    t.promote(b, 2);
    assert.equal(b.established, true);
    assert.equal(t.establishedCount, 2);
    t.promote(b, 3); // idempotent
    assert.equal(t.establishedCount, 2);
    assert.equal(t.size, 2);
    assert.deepEqual(
      [...t.entries()].map((e) => e.key),
      ['a', 'b'],
    );
  });

  it('adding a present key throws; delete reports "closed" once', () => {
    const { t, evicted } = table(10, 1000);
    const a = entry('a');
    t.add(a, 0);
    assert.throws(() => t.add(entry('a'), 1), /already present/);
    t.delete(a);
    t.delete(a);
    assert.deepEqual(evicted, [['a', 'closed']]);
    assert.equal(t.get('a'), undefined);
  });

  it('a flood of new keys never evicts established sessions while probation entries exist', () => {
    const { t, evicted } = table(100, 60_000);
    const est: Entry[] = [];
    for (let i = 0; i < 50; i++) {
      const e = entry(`est-${i}`);
      t.add(e, i);
      t.promote(e, i); // its backend replied
      est.push(e);
    }
    for (let i = 0; i < 10_000; i++) assert.equal(t.add(entry(`flood-${i}`), 100 + i), true);
    assert.equal(t.size, 100);
    assert.equal(t.establishedCount, 50);
    for (const e of est) assert.equal(t.get(e.key), e);
    assert.equal(evicted.length, 10_000 - 50);
    assert.ok(evicted.every(([k, r]) => k.startsWith('flood-') && r === 'capacity'));
    // Oldest probation first: the survivors are the newest 50 flood keys.
    assert.deepEqual(
      evicted.slice(0, 3).map(([k]) => k),
      ['flood-0', 'flood-1', 'flood-2'],
    );
    assert.ok(t.get('flood-9999') && t.get('flood-9950') && !t.get('flood-9949'));
  });

  it('when only established sessions remain, a newcomer is refused and nothing is evicted', () => {
    const { t, evicted } = table(3, 800);
    for (const k of ['a', 'b', 'c']) assert.equal(t.add(entry(k, true), 0), true);
    assert.equal(t.add(entry('d'), 600), false);
    assert.equal(t.add(entry('e', true), 600), false);
    assert.deepEqual(evicted, []);
    assert.equal(t.get('d'), undefined);
    assert.equal(t.size, 3);
    // Idle expiry frees room again.
    assert.equal(t.sweep(800), 3);
    assert.equal(t.add(entry('d'), 800), true);
  });

  it('capacity eviction takes the least recently active probation entry (activity within one refresh interval does not reorder)', () => {
    const { t, evicted } = table(2, 60_000); // refresh interval 7.5 s
    const a = entry('a');
    t.add(a, 0);
    t.add(entry('b'), 1);
    t.touch(a, 2);
    assert.equal(a.established, false);
    assert.equal(t.add(entry('c'), 3), true);
    assert.deepEqual(evicted, [['a', 'capacity']]);
    // c is active again after a refresh interval: b (idle since 1) goes first.
    t.touch(t.get('c')!, 8000);
    assert.equal(t.add(entry('d'), 8001), true);
    assert.deepEqual(evicted, [
      ['a', 'capacity'],
      ['b', 'capacity'],
    ]);
  });

  it('idle sweep expires exactly the entries idle for idleMs or more, in both segments', () => {
    const { t, evicted } = table(100, 1000);
    const a = entry('a');
    const b = entry('b', true);
    const c = entry('c');
    const d = entry('d', true);
    t.add(a, 0);
    t.add(b, 0);
    t.add(c, 0);
    t.add(d, 0);
    t.touch(c, 600); // seen at 600 (still probation)
    t.touch(d, 700);
    assert.equal(t.sweep(999), 0);
    assert.equal(t.sweep(1000), 2);
    assert.deepEqual(evicted.sort(), [
      ['a', 'idle'],
      ['b', 'idle'],
    ]);
    assert.equal(t.size, 2);
    assert.equal(t.sweep(1699), 1); // c idle since 600 (refreshed on promote): expired at 1600
    assert.equal(t.get('c'), undefined);
    assert.equal(t.sweep(1700), 1);
    assert.equal(t.size, 0);
  });

  it('an entry seen again without moving (lazy refresh) still expires exactly idleMs after it was last seen', () => {
    // Regression: the sweep used to re-queue such an entry as if seen at sweep time, so it outlived its
    // idle timeout by up to another idleMs (and kept its slot, which newcomers cannot take).
    const { t, evicted } = table(10, 800); // refresh granularity 100 ms
    const a = entry('a', true);
    t.add(a, 0);
    t.touch(a, 50); // within 100 ms of its last refresh: not moved
    assert.equal(t.sweep(820), 0); // idle for 770 ms only
    assert.equal(t.sweep(849), 0);
    assert.equal(t.sweep(850), 1);
    assert.deepEqual(evicted, [['a', 'idle']]);
  });

  it('a session promoted by a reply is not idle right after the reply', () => {
    const { t } = table(10, 800);
    const a = entry('a');
    t.add(a, 0);
    t.promote(a, 700); // the backend answered at 700
    assert.equal(t.sweep(800), 0);
    assert.equal(t.get('a'), a);
    assert.equal(t.sweep(1500), 1);
  });

  it('clear() closes every entry', () => {
    const { t, evicted } = table(10, 1000);
    for (const k of ['a', 'b', 'c']) t.add(entry(k, k === 'b'), 0);
    t.clear();
    assert.equal(t.size, 0);
    assert.deepEqual(evicted.map(([k, r]) => `${k}:${r}`).sort(), ['a:closed', 'b:closed', 'c:closed']);
  });

  type Op =
    | { kind: 'add'; established: boolean }
    | { kind: 'touch'; pick: number }
    | { kind: 'promote'; pick: number }
    | { kind: 'delete'; pick: number }
    | { kind: 'sweep' }
    | { kind: 'wait'; ms: number };

  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('add' as const), established: fc.boolean() }) },
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('touch' as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('promote' as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'sweep' as const }) },
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 400 }) }),
    },
  );

  it('property: random adds, touches, promotions, deletes and sweeps against a model', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 1500 }),
        fc.array(op, { maxLength: 300 }),
        (max, idleMs, ops) => {
          const { t, evicted } = table(max, idleMs);
          // Model: key -> {lastSeen, established, addedAt order}.
          const live = new Map<string, Entry>();
          const probationOrder: string[] = [];
          let now = 0;
          let next = 0;
          const pick = (i: number): Entry | undefined => {
            const keys = [...live.keys()];
            return keys.length > 0 ? live.get(keys[i % keys.length]) : undefined;
          };
          for (const o of ops) {
            evicted.length = 0;
            switch (o.kind) {
              case 'add': {
                const e = entry(`k${next++}`, o.established);
                const hadProbation = probationOrder.length > 0;
                const oldestProbation = probationOrder[0];
                const full = live.size >= max;
                const added = t.add(e, now);
                assert.equal(added, !full || hadProbation, 'refused only when full of established sessions');
                if (!added) {
                  assert.equal(evicted.length, 0);
                  assert.equal(t.get(e.key), undefined);
                  break;
                }
                if (full) {
                  assert.equal(evicted.length, 1);
                  const [victim, reason] = evicted[0];
                  assert.equal(reason, 'capacity');
                  // Probation goes first, oldest first; established only when no probation entry exists.
                  assert.equal(victim, oldestProbation);
                  live.delete(victim);
                  const i = probationOrder.indexOf(victim);
                  if (i >= 0) probationOrder.splice(i, 1);
                } else assert.equal(evicted.length, 0);
                live.set(e.key, e);
                if (!e.established) probationOrder.push(e.key);
                break;
              }
              case 'touch':
              case 'promote': {
                const e = pick(o.pick);
                if (!e) break;
                const was = e.established;
                const refreshedBefore = e.refreshedAt;
                if (o.kind === 'touch') t.touch(e, now);
                else t.promote(e, now);
                if (o.kind === 'touch') {
                  // Only a reply promotes; activity moves a probation entry to the recent end, at most
                  // once per refresh interval.
                  assert.equal(e.established, was, 'a datagram from the client never promotes');
                  assert.equal(e.lastSeen, now);
                  const moved = now - refreshedBefore >= Math.max(1, Math.floor(idleMs / 8));
                  assert.equal(e.refreshedAt, moved ? now : refreshedBefore);
                  if (!was && moved) {
                    probationOrder.splice(probationOrder.indexOf(e.key), 1);
                    probationOrder.push(e.key);
                  }
                  break;
                }
                // The reply that promotes a session is activity too (the entry is queued as just seen).
                if (!was) assert.equal(e.lastSeen, now);
                assert.equal(e.established, true, 'a reply promotes');
                if (!was) probationOrder.splice(probationOrder.indexOf(e.key), 1);
                break;
              }
              case 'delete': {
                const e = pick(o.pick);
                if (!e) break;
                t.delete(e);
                assert.deepEqual(evicted, [[e.key, 'closed']]);
                live.delete(e.key);
                const i = probationOrder.indexOf(e.key);
                if (i >= 0) probationOrder.splice(i, 1);
                break;
              }
              case 'sweep': {
                const idle = [...live.values()].filter((e) => now - e.lastSeen >= idleMs).map((e) => e.key);
                assert.equal(t.sweep(now), idle.length);
                assert.deepEqual(evicted.map(([k]) => k).sort(), idle.sort());
                assert.ok(evicted.every(([, r]) => r === 'idle'));
                for (const k of idle) {
                  live.delete(k);
                  const i = probationOrder.indexOf(k);
                  if (i >= 0) probationOrder.splice(i, 1);
                }
                break;
              }
              case 'wait':
                now += o.ms;
                break;
            }
            assert.equal(t.size, live.size);
            assert.ok(t.size <= max);
            assert.equal(t.establishedCount, [...live.values()].filter((e) => e.established).length);
            for (const [k, e] of live) assert.equal(t.get(k), e);
          }
        },
      ),
      fuzz(300),
    );
  });
});
