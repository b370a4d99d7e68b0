// The socket seam, run twice: every behaviour below must hold for `dgram` and for `batched` (the udp_batch
// addon). Real loopback sockets on ephemeral ports, with plain Node dgram sockets as the other end.
// Under CI=true the addon must be present: CI builds it from a clean clone (npm ci runs the install script).
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBatchedIo, parseIPv4 } from '../../../replicator/io/batchedIo.ts';
import { createDgramIo } from '../../../replicator/io/dgramIo.ts';
import { loadAddon, type UdpBatchAddon } from '../../../replicator/io/native.ts';
import { selectIo } from '../../../replicator/io/select.ts';
import type { RecvBatch, UdpIo, UdpSocketIo } from '../../../replicator/io/udpIo.ts';

const batched = createBatchedIo();
const modes: Array<{ name: string; io: UdpIo | undefined; why?: string }> = [
  { name: 'dgram', io: createDgramIo() },
  'kind' in batched
    ? { name: 'batched', io: batched }
    : { name: 'batched', io: undefined, why: batched.reason },
];

const waitFor = async (cond: () => boolean, what: string | (() => string), ms = 5000): Promise<void> => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until)
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

async function plainSocket(type: 'udp4' | 'udp6' = 'udp4', address = '127.0.0.1'): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((r) => s.bind(0, address, r));
  s.setRecvBufferSize(4 << 20);
  return s;
}

interface Got {
  data: Buffer;
  address: string;
  port: number;
  family: 4 | 6;
  key: string | number;
}

/** Collects every datagram of every batch (copies), and the batch sizes. */
function collect(sock: UdpSocketIo): { got: Got[]; batches: number[] } {
  const out = { got: [] as Got[], batches: [] as number[] };
  sock.onBatch = (b: RecvBatch) => {
    out.batches.push(b.count);
    for (let i = 0; i < b.count; i++) {
      out.got.push({
        data: b.copy(i),
        address: b.address(i),
        port: b.port(i),
        family: b.family(i),
        key: b.sourceKey(i, 0),
      });
      assert.equal(b.length(i), b.payload(i).length);
      assert.ok(b.data.subarray(b.offset(i), b.offset(i) + b.length(i)).equals(b.payload(i)));
    }
  };
  return out;
}

describe('io: addon presence', () => {
  it('CI builds the addon from a clean clone (io: auto is batched there)', function () {
    if (process.env.CI !== 'true') this.skip();
    const loaded = loadAddon();
    assert.ok(loaded.addon, `addon missing in CI: ${'reason' in loaded ? loaded.reason : ''}`);
    assert.equal(selectIo('auto').kind, 'batched');
  });

  it('an addon file that does not load is a reason, not a crash', () => {
    const bogus = join(tmpdir(), `udpmesh-not-an-addon-${process.pid}.node`);
    writeFileSync(bogus, 'not an ELF');
    const prev = process.env.UDPMESH_ADDON;
    process.env.UDPMESH_ADDON = bogus;
    try {
      const r = loadAddon();
      assert.equal(r.addon, undefined);
      assert.match((r as { reason: string }).reason, /does not load/);
    } finally {
      if (prev === undefined) delete process.env.UDPMESH_ADDON;
      else process.env.UDPMESH_ADDON = prev;
    }
  });

  it('io: dgram never needs the addon; auto says which it chose and why', () => {
    assert.equal(selectIo('dgram').kind, 'dgram');
    const auto = selectIo('auto');
    assert.ok(auto.reason.length > 0);
    if (auto.kind === 'dgram') assert.match(auto.reason, /fell back to dgram/);
  });

  it('parses IPv4 literals without allocating and refuses anything else', () => {
    const out = new Uint8Array(8);
    assert.ok(parseIPv4('10.1.255.0', out, 4));
    assert.deepEqual([...out.subarray(4)], [10, 1, 255, 0]);
    for (const bad of [
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '1..2.3',
      'a.b.c.d',
      '::1',
      'localhost',
      '1.2.3.4 ',
    ])
      assert.equal(parseIPv4(bad, out, 0), false, bad);
  });
});

describe('io: the addon refuses bad calls with errors, never a crash', function () {
  before(function () {
    if (!loadAddon().addon) this.skip();
  });
  it('bad family, bad address, bad port, closed or unknown socket, oversized flush', () => {
    const addon = (loadAddon() as { addon: UdpBatchAddon }).addon;
    const noop = (): void => {};
    assert.throws(() => addon.open(5 as 4, '127.0.0.1', 0, false, false, 0, 0, false, noop, noop), /family/);
    assert.throws(() => addon.open(4, 'not-an-ip', 0, false, false, 0, 0, false, noop, noop), /IP address/);
    assert.throws(() => addon.open(4, '127.0.0.1', 70000, false, false, 0, 0, false, noop, noop), /port/);
    const id = addon.open(4, '127.0.0.1', 0, false, false, 0, 0, false, noop, noop);
    assert.throws(() => addon.connect(id, 4, '127.0.0.1', 0), /port/);
    assert.throws(
      () => addon.connect(id, 6, '::1', 9),
      (e: Error & { code?: string }) => e.code === 'EAFNOSUPPORT',
    );
    addon.close(id);
    addon.close(id); // twice is harmless
    assert.throws(() => addon.info(id), /closed/);
    assert.throws(() => addon.info(123456), /closed or unknown/);
    assert.throws(() => addon.flush(1 << 30), /count/);
    assert.throws(() => (addon.setup as (...a: unknown[]) => void)(), /arguments|already/);
  });
});

for (const mode of modes) {
  describe(`io: ${mode.name}`, function () {
    let io: UdpIo;
    const open: Array<UdpSocketIo | Socket> = [];
    before(function () {
      if (!mode.io) {
        if (process.env.CI === 'true') throw new Error(`batched I/O unavailable in CI: ${mode.why}`);
        this.skip();
      }
      io = mode.io!;
    });
    afterEach(() => {
      for (const s of open.splice(0)) s.close();
    });
    const track = <T extends UdpSocketIo | Socket>(s: T): T => {
      open.push(s);
      return s;
    };

    it('binds an ephemeral port and reports the achieved buffer sizes', async () => {
      const s = track(
        await io.bind({
          address: '127.0.0.1',
          port: 0,
          receiveBufferBytes: 1 << 20,
          sendBufferBytes: 1 << 20,
        }),
      );
      assert.equal(s.kind, mode.name);
      const a = s.address();
      assert.equal(a.address, '127.0.0.1');
      assert.ok(a.port > 0);
      assert.equal(a.family, 4);
      const b = s.bufferSizes();
      // Linux doubles the request; a low rmem_max caps it (root may exceed it in batched mode).
      assert.ok(b.receive >= 200_000, `receive buffer ${b.receive}`);
      assert.ok(b.send >= 200_000, `send buffer ${b.send}`);
    });

    it('receives every datagram of a burst intact, with its source', async () => {
      const s = track(await io.bind({ address: '127.0.0.1', port: 0, receiveBufferBytes: 4 << 20 }));
      const c = collect(s);
      const client = track(await plainSocket());
      const N = 500;
      for (let i = 0; i < N; i++)
        client.send(Buffer.from(`datagram-${i}-${'x'.repeat(i % 50)}`), s.address().port, '127.0.0.1');
      await waitFor(
        () => c.got.length === N,
        () => `${N} datagrams (got ${c.got.length})`,
      );
      const cport = client.address().port;
      for (let i = 0; i < N; i++) {
        assert.equal(c.got[i].data.toString(), `datagram-${i}-${'x'.repeat(i % 50)}`);
        assert.equal(c.got[i].address, '127.0.0.1');
        assert.equal(c.got[i].port, cport);
        assert.equal(c.got[i].family, 4);
      }
      assert.equal(new Set(c.got.map((g) => g.key)).size, 1, 'one source, one key');
      assert.equal(s.counters.receivedDatagrams, N);
      assert.equal(
        c.batches.reduce((a, b) => a + b, 0),
        N,
      );
      if (mode.name === 'batched') assert.ok(Math.max(...c.batches) > 1, 'a burst is read in batches');
      else assert.equal(Math.max(...c.batches), 1);
    });

    it('an empty datagram is received as one of length 0 (never lost silently)', async () => {
      const s = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      const c = collect(s);
      const client = track(await plainSocket());
      client.send(Buffer.alloc(0), s.address().port, '127.0.0.1');
      client.send(Buffer.from('after'), s.address().port, '127.0.0.1');
      await waitFor(
        () => c.got.length >= 2,
        () => `2 datagrams (got ${c.got.length})`,
      );
      assert.equal(c.got[0].data.length, 0);
      assert.equal(c.got[1].data.toString(), 'after');
    });

    it('gives different sources different session keys, per listener index', async () => {
      const s = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      const keys: Array<string | number> = [];
      s.onBatch = (b) => {
        for (let i = 0; i < b.count; i++) keys.push(b.sourceKey(i, 0), b.sourceKey(i, 3));
      };
      const a = track(await plainSocket());
      const b = track(await plainSocket());
      a.send(Buffer.from('a'), s.address().port, '127.0.0.1');
      b.send(Buffer.from('b'), s.address().port, '127.0.0.1');
      await waitFor(() => keys.length === 4, 'two datagrams');
      assert.equal(new Set(keys).size, 4);
    });

    it('sends byte ranges of a buffer to addresses, in order, intact', async () => {
      const s = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      const sink = track(await plainSocket());
      const got: string[] = [];
      sink.on('message', (m, r) => {
        assert.equal(r.port, s.address().port);
        got.push(m.toString());
      });
      const big = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
      const N = 300;
      for (let i = 0; i < N; i++) s.send(big, sink.address().port, '127.0.0.1', i % 30, 1 + (i % 7));
      await waitFor(
        () => got.length === N,
        () => `${N} datagrams (got ${got.length})`,
      );
      for (let i = 0; i < N; i++)
        assert.equal(got[i], big.toString('latin1', i % 30, (i % 30) + 1 + (i % 7)));
      assert.equal(s.counters.sentDatagrams, N);
      assert.equal(s.counters.sendErrors, 0);
    });

    it('replication-style bursts to one peer arrive as separate datagrams (GSO where batched)', async () => {
      const s = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      const sink = track(await plainSocket());
      const got: Buffer[] = [];
      sink.on('message', (m) => got.push(m));
      const before = io.totals().gsoMessages;
      // 40 frames of 1200 bytes and a shorter last one: one GSO message, 41 datagrams on the wire.
      const frames: Buffer[] = [];
      for (let i = 0; i < 41; i++) frames.push(Buffer.alloc(i === 40 ? 300 : 1200, i));
      for (const f of frames) s.send(f, sink.address().port, '127.0.0.1');
      await waitFor(
        () => got.length === 41,
        () => `41 frames (got ${got.length})`,
      );
      for (let i = 0; i < 41; i++) assert.ok(got[i].equals(frames[i]), `frame ${i}`);
      if (mode.name === 'batched') assert.ok(io.totals().gsoMessages > before, 'sent with UDP_SEGMENT');
    });

    it('coalesced reads (GRO) are split back into the datagrams that were sent', async () => {
      const s = track(
        await io.bind({ address: '127.0.0.1', port: 0, gro: true, receiveBufferBytes: 4 << 20 }),
      );
      const c = collect(s);
      const tx = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      const frames: Buffer[] = [];
      for (let i = 0; i < 60; i++) frames.push(Buffer.alloc(1000, i + 1));
      for (const f of frames) tx.send(f, s.address().port, '127.0.0.1');
      await waitFor(
        () => c.got.length === 60,
        () => `60 frames (got ${c.got.length})`,
      );
      for (let i = 0; i < 60; i++) assert.ok(c.got[i].data.equals(frames[i]), `frame ${i}`);
      assert.equal(c.got[0].port, tx.address().port);
    });

    it('a kept copy survives later reads (the batched ring is reused)', async () => {
      const s = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      const kept: Buffer[] = [];
      s.onBatch = (b) => {
        for (let i = 0; i < b.count; i++) kept.push(b.copy(i));
      };
      const client = track(await plainSocket());
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 100; i++)
          client.send(Buffer.from(`r${round}-${i}`), s.address().port, '127.0.0.1');
        await waitFor(() => kept.length === (round + 1) * 100, `round ${round}`);
      }
      for (let round = 0; round < 3; round++)
        for (let i = 0; i < 100; i++) assert.equal(kept[round * 100 + i].toString(), `r${round}-${i}`);
    });

    it('a connected unbound socket sends without an address and hears its peer (an upstream socket)', async () => {
      const backend = track(await plainSocket());
      backend.on('message', (m, r) =>
        backend.send(Buffer.concat([Buffer.from('re:'), m]), r.port, r.address),
      );
      const up = track(io.open(4));
      const replies: string[] = [];
      up.context = 'session-7';
      up.onBatch = (b, sock) => {
        assert.equal(sock.context, 'session-7');
        for (let i = 0; i < b.count; i++) replies.push(b.payload(i).toString());
      };
      await up.connect(backend.address().port, '127.0.0.1');
      assert.ok(up.connected);
      for (let i = 0; i < 20; i++) up.send(Buffer.from(`q${i}`), 0, undefined);
      await waitFor(() => replies.length === 20, 'replies');
      assert.deepEqual(
        replies,
        Array.from({ length: 20 }, (_, i) => `re:q${i}`),
      );
    });

    it('many connected sockets read in one turn: each gets exactly its own replies', async () => {
      const backend = track(await plainSocket());
      backend.on('message', (m, r) => backend.send(m, r.port, r.address));
      const got = new Map<number, string[]>();
      const socks: UdpSocketIo[] = [];
      for (let k = 0; k < 30; k++) {
        const up = track(io.open(4));
        up.context = k;
        got.set(k, []);
        up.onBatch = (b, sock) => {
          for (let i = 0; i < b.count; i++) got.get(sock.context as number)!.push(b.payload(i).toString());
        };
        await up.connect(backend.address().port, '127.0.0.1');
        socks.push(up);
      }
      for (let round = 0; round < 5; round++)
        for (const [k, up] of socks.entries()) up.send(Buffer.from(`s${k}-${round}`), 0, undefined);
      await waitFor(
        () => [...got.values()].every((v) => v.length === 5),
        () => `5 replies each (${[...got.values()].map((v) => v.length).join(',')})`,
      );
      for (const [k, v] of got)
        assert.deepEqual(
          v,
          [0, 1, 2, 3, 4].map((r) => `s${k}-${r}`),
        );
    });

    it('a socket closed while handling a read gets nothing more, and a socket opened then gets none of it', async () => {
      const a = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      const b = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      let c: UdpSocketIo | undefined;
      const toB: string[] = [];
      const toC: string[] = [];
      let closedB = false;
      b.onBatch = (batch) => {
        assert.equal(closedB, false, 'no batch after close');
        for (let i = 0; i < batch.count; i++) toB.push(batch.payload(i).toString());
      };
      a.onBatch = () => {
        if (closedB) return;
        closedB = true;
        b.close();
        // Same family, bound anew: in batched mode it may get b's id; it must not get b's datagrams.
        c = io.open(4);
        track(c);
        c.onBatch = (batch) => {
          for (let i = 0; i < batch.count; i++) toC.push(batch.payload(i).toString());
        };
      };
      const client = track(await plainSocket());
      // b's datagrams first, then a's: in one turn the ring holds b's run after a's or before it.
      for (let i = 0; i < 50; i++) client.send(Buffer.from(`b${i}`), b.address().port, '127.0.0.1');
      client.send(Buffer.from('a'), a.address().port, '127.0.0.1');
      await waitFor(() => closedB, 'a read on a');
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(toC, []);
      assert.ok(toB.every((x) => /^b\d+$/.test(x)));
    });

    it('IPv6: binds ::1, receives from and sends to v6 sources', async () => {
      const s = track(await io.bind({ address: '::1', port: 0 }));
      const c = collect(s);
      const peer = track(await plainSocket('udp6', '::1'));
      const back: string[] = [];
      peer.on('message', (m) => back.push(m.toString()));
      peer.send(Buffer.from('hello6'), s.address().port, '::1');
      await waitFor(() => c.got.length === 1, 'v6 datagram');
      assert.equal(c.got[0].address, '::1');
      assert.equal(c.got[0].family, 6);
      assert.equal(c.got[0].port, peer.address().port);
      s.send(Buffer.from('back6'), c.got[0].port, c.got[0].address);
      await waitFor(() => back.length === 1, 'v6 reply');
      assert.equal(back[0], 'back6');
    });

    it('a port in use is a clear error, not a crash', async () => {
      const s = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      await assert.rejects(
        io.bind({ address: '127.0.0.1', port: s.address().port }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'EADDRINUSE');
          return true;
        },
      );
    });

    it('a refused connected peer and sends after close are counted errors, not crashes', async () => {
      const gone = await plainSocket();
      const port = gone.address().port;
      gone.close();
      const up = track(io.open(4));
      const errors: string[] = [];
      up.onError = (err) => errors.push((err as Error & { code?: string }).code ?? err.message);
      await up.connect(port, '127.0.0.1');
      for (let i = 0; i < 5; i++) {
        up.send(Buffer.from('x'), 0, undefined);
        await new Promise((r) => setTimeout(r, 10));
      }
      await waitFor(
        () => errors.includes('ECONNREFUSED'),
        () => `ECONNREFUSED (got ${errors.join()})`,
      );
      assert.ok(up.counters.sendErrors + up.counters.receiveErrors >= 1);
      up.close();
      const before = up.counters.sendErrors;
      up.send(Buffer.from('late'), port, '127.0.0.1');
      assert.equal(up.counters.sendErrors, before + 1);
    });

    it('a destination of the wrong family is a counted error', async () => {
      const s = track(await io.bind({ address: '127.0.0.1', port: 0 }));
      const errors: Error[] = [];
      s.onError = (err) => errors.push(err);
      s.send(Buffer.from('x'), 9, '::1');
      await waitFor(() => s.counters.sendErrors === 1, 'send error counted');
      assert.ok(errors.length >= 1);
    });
  });
}
