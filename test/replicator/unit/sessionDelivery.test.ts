// SessionDelivery with real UDP sockets: one stable source per session (socket), the PROXY v2 header with
// the announced client (proxy-v2), the bounds (capacity, idle expiry) and the counters.
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { BackendSockets } from '../../../replicator/delivery/backendSockets.ts';
import { selectIo } from '../../../replicator/io/select.ts';
import { SessionDelivery, type SessionIdentity } from '../../../replicator/delivery/sessionDelivery.ts';
import { decodeProxyV2, TLV_ORIGIN_CLUSTER, TLV_SESSION } from '../../../replicator/delivery/proxyV2.ts';
import { ANNOUNCE_REFRESH_MS, encodeAnnounce } from '../../../replicator/delivery/sessionAnnounce.ts';
import type { Backend } from '../../../replicator/delivery/backendPool.ts';

const origin = { cluster: 'aws', member: 'aws/a-0', memberHash: 0x01020304, epoch: 9 };

interface Got {
  msg: Buffer;
  from: RemoteInfo;
}

describe('SessionDelivery', () => {
  let backend: Socket;
  let b: Backend;
  let got: Got[];
  let shared: BackendSockets;
  // The per-session sockets come from the io seam, as in the replicator: TEST_IO=batched runs them there.
  const io = selectIo(process.env.TEST_IO === 'batched' ? 'batched' : 'dgram');
  const made: SessionDelivery[] = [];
  let counts: { replies: number; drops: string[] };

  beforeEach(async () => {
    got = [];
    counts = { replies: 0, drops: [] };
    backend = createSocket('udp4');
    backend.on('message', (msg, from) => {
      got.push({ msg, from });
      backend.send('reply', from.port, from.address);
    });
    await new Promise<void>((r) => backend.bind(0, '127.0.0.1', r));
    b = { address: '127.0.0.1', port: backend.address().port, family: 4 };
    shared = new BackendSockets(
      io,
      (n) => (counts.replies += n),
      () => {},
    );
  });

  afterEach(() => {
    for (const d of made.splice(0)) d.close();
    shared.close();
    backend.close();
  });

  const make = (mode: SessionIdentity, maxSessions = 100, idleMs = 60_000): SessionDelivery => {
    const d = new SessionDelivery(
      { mode, maxSessions, idleMs },
      shared,
      {
        onReply: () => counts.replies++,
        onDrop: (r) => counts.drops.push(r),
        onError: (e) => assert.fail(e),
      },
      io,
    );
    made.push(d);
    return d;
  };
  const until = async (n: number): Promise<void> => {
    for (let i = 0; i < 200 && got.length < n; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(got.length >= n, `backend got ${got.length} of ${n}`);
  };

  it('socket: each session has its own stable source; replies on them are counted and discarded', async () => {
    const d = make('socket');
    for (let i = 0; i < 3; i++) for (const s of [1, 2]) d.deliver(origin, s, b, Buffer.from(`${s}:${i}`), 0);
    await until(6);
    const src = new Map<string, Set<number>>();
    for (const g of got) {
      const s = g.msg.toString().split(':')[0]!;
      (src.get(s) ?? src.set(s, new Set()).get(s)!).add(g.from.port);
    }
    assert.equal(src.get('1')!.size, 1);
    assert.equal(src.get('2')!.size, 1);
    assert.notDeepEqual([...src.get('1')!], [...src.get('2')!]);
    assert.deepEqual(
      got.filter((g) => g.msg.toString().startsWith('1:')).map((g) => g.msg.toString()),
      ['1:0', '1:1', '1:2'],
    );
    for (let i = 0; i < 100 && counts.replies < 6; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(counts.replies, 6);
    assert.equal(d.sessionsActive, 2);
    assert.equal(d.counters.sessionsOpened, 2);
  });

  it('socket: bounded like the ingress table, idle sessions expire and free their socket', async () => {
    const d = make('socket', 2, 1000);
    for (const s of [1, 2])
      for (let i = 0; i < 2; i++) assert.ok(d.deliver(origin, s, b, Buffer.from('x'), 0));
    // Both are established (two datagrams each): a third session is refused and counted, not misdelivered.
    assert.equal(d.deliver(origin, 3, b, Buffer.from('x'), 10), false);
    assert.deepEqual(counts.drops, ['identity_table_full']);
    d.sweep(5000);
    assert.equal(d.sessionsActive, 0);
    assert.equal(d.counters.evicted.get('idle'), 2);
    assert.ok(d.deliver(origin, 3, b, Buffer.from('x'), 5001));
  });

  it('proxy-v2: the announced client address and the TLVs; before the announcement UNSPEC, counted', async () => {
    const d = make('proxy-v2');
    d.deliver(origin, 7, b, Buffer.from('early'), 0);
    d.control(
      origin,
      encodeAnnounce({
        session: 7,
        source: { address: '198.51.100.4', port: 53000 },
        destination: { address: '10.0.0.1', port: 7001 },
      }),
      1,
    );
    d.deliver(origin, 7, b, Buffer.from('late'), 2);
    d.control(origin, Buffer.from([1, 2]), 3);
    await until(2);
    const [early, late] = got.map((g) => decodeProxyV2(g.msg));
    assert.ok(early?.ok && late?.ok);
    assert.equal(early.header.family, 0);
    assert.equal(early.payload.toString(), 'early');
    assert.deepEqual(late.header.source, { address: '198.51.100.4', port: 53000 });
    assert.deepEqual(late.header.destination, { address: '10.0.0.1', port: 7001 });
    assert.equal(late.header.tlvs.get(TLV_ORIGIN_CLUSTER)?.toString(), 'aws');
    assert.equal(late.header.tlvs.get(TLV_SESSION)?.toString('hex'), '010203040000000900000007');
    assert.equal(late.payload.toString(), 'late');
    assert.equal(got[0]!.from.port, got[1]!.from.port, 'one source per session in proxy-v2 too');
    assert.equal(d.counters.identityUnknown, 1);
    assert.deepEqual(counts.drops, ['bad_announcement']);
  });

  it('announcements: once per session, again when its targets change or after the refresh interval', () => {
    const listener = { address: () => ({ address: '0.0.0.0', port: 7001 }) };
    const t1 = [{}];
    const s = { id: 5, address: '192.0.2.8', port: 4000, targets: t1 as readonly unknown[], listener };
    assert.equal(make('socket').announcement(s, 0), undefined, 'only proxy-v2 announces');
    const d = make('proxy-v2');
    assert.ok(d.announcement(s, 0));
    assert.equal(d.announcement(s, 1), undefined);
    s.targets = [...t1]; // same replicas, new array: nothing to say
    assert.equal(d.announcement(s, 2), undefined);
    s.targets = [{}];
    assert.ok(d.announcement(s, 3));
    assert.ok(d.announcement(s, 3 + ANNOUNCE_REFRESH_MS));
    assert.equal(d.counters.announcementsSent, 3);
  });

  it('none: remote sessions share the per-backend socket (the behaviour before identity)', async () => {
    const d = make('none');
    for (const s of [1, 2, 3]) d.deliver(origin, s, b, Buffer.from(String(s)), 0);
    await until(3);
    assert.equal(new Set(got.map((g) => g.from.port)).size, 1);
    assert.equal(d.sessionsActive, 0);
  });
});
