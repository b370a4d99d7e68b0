import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { decide, startImpairmentProxy, NO_IMPAIRMENT, type Impairment } from './impairmentProxy.ts';
import { mulberry32 } from './prng.ts';
import { waitFor } from './wait.ts';

function stats(imp: Partial<Impairment>, n: number, seed = 7) {
  const rng = mulberry32(seed);
  const full = { ...NO_IMPAIRMENT, ...imp };
  let dropped = 0;
  let duplicated = 0;
  let reordered = 0;
  let maxDelay = 0;
  let minDelay = Infinity;
  for (let i = 0; i < n; i++) {
    const d = decide(rng, full);
    if (d.delays.length === 0) dropped++;
    if (d.delays.length === 2) duplicated++;
    reordered += d.reordered;
    for (const x of d.delays) {
      maxDelay = Math.max(maxDelay, x);
      minDelay = Math.min(minDelay, x);
    }
  }
  return { dropped, duplicated, reordered, maxDelay, minDelay };
}

describe('harness: impairment proxy', () => {
  it('decisions follow the configured probabilities (100k samples)', () => {
    const n = 100_000;
    const s = stats(
      { loss: 0.1, duplicate: 0.05, reorder: 0.2, reorderDelayMs: 30, jitterMs: 20, baseDelayMs: 1 },
      n,
    );
    assert.ok(Math.abs(s.dropped / n - 0.1) < 0.005, `loss ${s.dropped / n}`);
    const kept = n - s.dropped;
    assert.ok(Math.abs(s.duplicated / kept - 0.05) < 0.005, `dup ${s.duplicated / kept}`);
    const copies = kept + s.duplicated;
    assert.ok(Math.abs(s.reordered / copies - 0.2) < 0.01, `reorder ${s.reordered / copies}`);
    assert.ok(s.minDelay >= 1 && s.maxDelay < 1 + 20 + 30, `delays ${s.minDelay}..${s.maxDelay}`);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const imp = { ...NO_IMPAIRMENT, loss: 0.3, jitterMs: 10 };
    const run = (seed: number) => {
      const rng = mulberry32(seed);
      return Array.from({ length: 200 }, () => decide(rng, imp).delays.join(','));
    };
    assert.deepEqual(run(5), run(5));
    assert.notDeepEqual(run(5), run(6));
  });

  it('without impairment forwards everything in order', async () => {
    const r = await throughProxy({}, 3000);
    assert.equal(r.received.length, 3000);
    assert.equal(r.inversions, 0);
    assert.equal(r.counters.dropped, 0);
    assert.equal(r.counters.forwarded, 3000);
  });

  it('over real sockets: loss, duplication and reordering show up at the receiver as counted', async function () {
    this.timeout(30_000);
    const n = 10_000;
    const r = await throughProxy(
      { loss: 0.1, duplicate: 0.1, reorder: 0.1, reorderDelayMs: 15, jitterMs: 5 },
      n,
    );
    const c = r.counters;
    assert.equal(c.received, n);
    assert.ok(Math.abs(c.dropped / n - 0.1) < 0.015, `dropped ${c.dropped}`);
    assert.ok(Math.abs(c.duplicated / (n - c.dropped) - 0.1) < 0.015, `duplicated ${c.duplicated}`);
    // What arrived is exactly what the proxy says it forwarded: kept + duplicates.
    assert.equal(c.forwarded, n - c.dropped + c.duplicated);
    assert.equal(r.received.length, c.forwarded);
    const distinct = new Set(r.received).size;
    assert.equal(distinct, n - c.dropped);
    assert.ok(r.inversions > 100, `expected reordering, saw ${r.inversions} inversions`);
  });

  it('with a source filter, impairs only the datagrams from those addresses', async () => {
    const sink = createSocket('udp4');
    const got = { a: 0, b: 0 };
    sink.on('message', (m) => (m[0] === 0x61 ? got.a++ : got.b++));
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    const proxy = await startImpairmentProxy({
      target: { host: '127.0.0.1', port: sink.address().port },
      impairment: { loss: 1 },
    });
    proxy.setSources(['127.0.0.2']);
    const a = createSocket('udp4');
    const b = createSocket('udp4');
    await new Promise<void>((r) => a.bind(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => b.bind(0, '127.0.0.2', () => r()));
    try {
      for (let i = 0; i < 100; i++) {
        a.send(Buffer.from('a'), proxy.port, '127.0.0.1');
        b.send(Buffer.from('b'), proxy.port, '127.0.0.1');
      }
      await waitFor(() => proxy.counters.received === 200 && got.a === 100, {
        timeoutMs: 5000,
        what: 'the unfiltered source forwarded',
        detail: () => `${JSON.stringify(proxy.counters)} ${JSON.stringify(got)}`,
      });
      assert.equal(got.b, 0, 'everything from the filtered source was lost');
      assert.equal(proxy.counters.dropped, 100);
      proxy.setSources(undefined);
      b.send(Buffer.from('b'), proxy.port, '127.0.0.1');
      await waitFor(() => proxy.counters.received === 201, { timeoutMs: 5000, what: 'one more' });
      assert.equal(proxy.counters.dropped, 101, 'without a filter every source is impaired');
    } finally {
      a.close();
      b.close();
      sink.close();
      await proxy.close();
    }
  });
});

async function throughProxy(imp: Partial<Impairment>, n: number) {
  const sink = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  const received: number[] = [];
  sink.on('message', (m) => received.push(m.readUInt32BE(0)));
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
  const proxy = await startImpairmentProxy({
    target: { host: '127.0.0.1', port: sink.address().port },
    impairment: imp,
    seed: 99,
  });
  const src = createSocket('udp4');
  try {
    for (let i = 0; i < n; i++) {
      const b = Buffer.alloc(32);
      b.writeUInt32BE(i, 0);
      src.send(b, proxy.port, '127.0.0.1');
      if (i % 200 === 199) await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(
      () =>
        proxy.counters.received === n && proxy.queued === 0 && received.length === proxy.counters.forwarded,
      {
        timeoutMs: 20_000,
        what: 'everything forwarded and received',
        detail: () => `${JSON.stringify(proxy.counters)} received ${received.length}`,
      },
    );
    let inversions = 0;
    let max = -1;
    for (const x of received) {
      if (x < max) inversions++;
      else max = x;
    }
    return { received, inversions, counters: { ...proxy.counters } };
  } finally {
    src.close();
    sink.close();
    await proxy.close();
  }
}
