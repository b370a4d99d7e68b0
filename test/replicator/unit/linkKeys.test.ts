// Issue 10 D7, second half: a member cannot speak as another. Real ReplicationCores (aws/a, gcp/b and a
// third member azure/c that holds the cluster key) over an in-memory network on a fake clock, membership
// from member records as etcd gives them. The forger tries every derivation it can compute: the cluster
// key alone (protocol v2's link key) and the v3 link key with its own private key.
// Before per-incarnation keys, the tests marked D7 failed (the failure is quoted above each).
import assert from 'node:assert/strict';
import type { MemberRecord } from '../../../replicator/coordination/keys.ts';
import { parseMemberRecord } from '../../../replicator/coordination/keys.ts';
import { ReplicationCore } from '../../../replicator/core/replicationCore.ts';
import { encodeData, type FrameHeader } from '../../../replicator/protocol/frame.ts';
import { makeKeyRing, signFrame } from '../../../replicator/protocol/frameAuth.ts';
import {
  generateMemberKeyPair,
  linkSecret,
  memberKeyPairFromSeed,
  type MemberKeyPair,
} from '../../../replicator/protocol/memberKeys.ts';
import { sessionHashKey, type OriginSession } from '../../../replicator/replication/peerSet.ts';

const ring = makeKeyRing([Buffer.alloc(32, 9)]);

interface Side {
  member: string;
  cluster: string;
  epoch: number;
  keys: MemberKeyPair;
  core: ReplicationCore;
  delivered: string[];
  drops: string[];
  logs: string[];
}

function mesh(o: { legacyLinkKeys?: boolean } = {}) {
  const wire: Array<{ to: string; bytes: Buffer }> = [];
  const clock = { now: 1000 };
  const sides = new Map<string, Side>();
  const side = (member: string, epoch: number, keys = generateMemberKeyPair()): Side => {
    const cluster = member.split('/')[0];
    const s: Side = {
      member,
      cluster,
      epoch,
      keys,
      core: undefined as unknown as ReplicationCore,
      delivered: [],
      drops: [],
      logs: [],
    };
    s.core = new ReplicationCore({
      member,
      cluster,
      epoch,
      keyPair: keys,
      legacyLinkKeys: () => o.legacyLinkKeys ?? false,
      now: () => clock.now,
      transport: { send: (bytes, _port, address) => void wire.push({ to: address, bytes }) },
      sink: { deliver: (_r, _seq, payload) => (s.delivered.push(payload.toString()), true) },
      keyRing: () => ring,
      reorderBufferDatagrams: () => 64,
      sessionIdleMs: () => 60_000,
      retransmitBufferBytes: () => 1 << 20,
      maxFrameBytes: () => 1352,
      drop: (reason) => void s.drops.push(reason),
      delivered: () => {},
      log: (_level, _obj, msg) => void s.logs.push(msg),
    });
    sides.set(member, s);
    return s;
  };
  const record = (s: Side, withKey = true): MemberRecord => ({
    id: s.member,
    cluster: s.cluster,
    instance: s.member.split('/')[1],
    address: s.member,
    port: 1,
    ingressPorts: [],
    metricsPort: 0,
    epoch: s.epoch,
    startedAt: '',
    ...(withKey ? { publicKey: s.keys.publicKey } : {}),
  });
  const pump = (): void => {
    for (let i = 0; i < 30; i++) {
      for (const m of wire.splice(0)) sides.get(m.to)?.core.onFrame(m.bytes);
      clock.now += 1;
      for (const s of sides.values()) s.core.onAlarm();
    }
  };
  return { side, record, pump, wire, clock, sides };
}

const session = (id: number): OriginSession => ({
  id,
  hashKey: sessionHashKey(1, 11, id),
  placements: [],
  placementsVersion: -1,
});

/** A DATA frame as the forger writes it: any names and epochs it likes, one record. */
function forged(h: Omit<FrameHeader, 'packet'>, packet: number, text: string): Buffer {
  return encodeData({ ...h, packet }, 0, [{ streamSeq: 0, session: 1, seq: 0, payload: Buffer.from(text) }]);
}

describe('per-incarnation link keys (issue 10 D7: a member cannot speak as another)', () => {
  // Before: AssertionError: gcp/b delivered a DATA frame azure/c forged as aws/a: forged-v2
  it('D7: a member holding the cluster key cannot forge a DATA frame from another member', () => {
    const m = mesh();
    const a = m.side('aws/a', 11);
    const b = m.side('gcp/b', 22);
    const c = m.side('azure/c', 33);
    const records = [m.record(a), m.record(b), m.record(c)];
    for (const s of [a, b, c]) s.core.peers.applyMembers(records, m.clock.now);
    m.pump();
    const h = { sender: a.member, receiver: b.member, senderEpoch: a.epoch, receiverEpoch: b.epoch };
    // Everything azure/c can compute: the cluster key alone, and its own X25519 secret with either end.
    const attempts = [
      signFrame(forged(h, 1000, 'forged-v2'), ring),
      signFrame(forged(h, 1001, 'forged-cb'), ring, undefined, linkSecret(c.keys, b.keys.publicKey)),
      signFrame(forged(h, 1002, 'forged-ca'), ring, undefined, linkSecret(c.keys, a.keys.publicKey)),
    ];
    for (const f of attempts) b.core.onFrame(f);
    m.pump();
    const got = b.delivered.filter((d) => d.startsWith('forged'));
    assert.deepEqual(got, [], `gcp/b delivered a DATA frame azure/c forged as aws/a: ${got.join(' ')}`);
    assert.equal(b.drops.filter((r) => r === 'bad_mac').length, 3, `drops: ${b.drops.join(' ')}`);
    assert.equal([...b.core.inbound()].length, 0, 'a forged frame opened an inbound stream');
    // The real aws/a still gets through, under the v3 link key.
    a.core.peers.replicate(session(1), 0, Buffer.from('real'));
    a.core.peers.flushDirty(m.clock.now);
    m.pump();
    assert.deepEqual(b.delivered, ['real']);
    assert.deepEqual(
      [a, b, c].flatMap((s) => s.drops),
      ['bad_mac', 'bad_mac', 'bad_mac'],
    );
  });

  // Before: AssertionError: gcp/b (new incarnation) accepted frames forged with the old incarnations' keys: old-v2
  it('D7: the private key of a previous incarnation of either end does not open the new link', () => {
    const m = mesh();
    const a1 = m.side('aws/a', 11);
    const b1 = m.side('gcp/b', 22);
    for (const s of [a1, b1]) s.core.peers.applyMembers([m.record(a1), m.record(b1)], m.clock.now);
    m.pump();
    // Both restart: new epochs, new key pairs. The old private keys leak (a core dump, a stolen disk).
    const a = m.side('aws/a', 12);
    const b = m.side('gcp/b', 23);
    for (const s of [a, b]) s.core.peers.applyMembers([m.record(a), m.record(b)], m.clock.now);
    m.pump();
    const h = { sender: a.member, receiver: b.member, senderEpoch: a.epoch, receiverEpoch: b.epoch };
    // Everything the holder of the cluster key and both old private keys can compute for the new link.
    b.core.onFrame(signFrame(forged(h, 499, 'old-v2'), ring));
    b.core.onFrame(
      signFrame(forged(h, 500, 'old-a'), ring, undefined, linkSecret(a1.keys, b.keys.publicKey)),
    );
    b.core.onFrame(
      signFrame(forged(h, 501, 'old-b'), ring, undefined, linkSecret(b1.keys, a.keys.publicKey)),
    );
    m.pump();
    const got = b.delivered.filter((d) => d.startsWith('old'));
    assert.deepEqual(
      got,
      [],
      `gcp/b (new incarnation) accepted frames forged with the old incarnations' keys: ${got.join(' ')}`,
    );
    assert.equal(b.drops.filter((r) => r === 'bad_mac').length, 3, `drops: ${b.drops.join(' ')}`);
    // A frame the old aws/a really signed for the old gcp/b is refused by the new one as stale.
    const old = { sender: a1.member, receiver: b1.member, senderEpoch: a1.epoch, receiverEpoch: b1.epoch };
    b.core.onFrame(
      signFrame(forged(old, 502, 'stale'), ring, undefined, linkSecret(a1.keys, b1.keys.publicKey)),
    );
    assert.deepEqual(b.delivered, []);
    assert.equal(b.drops.at(-1), 'stale_epoch');
    // The new incarnations talk.
    a.core.peers.replicate(session(1), 0, Buffer.from('real'));
    a.core.peers.flushDirty(m.clock.now);
    m.pump();
    assert.deepEqual(b.delivered, ['real']);
  });

  it('a member record without a public key (an older replicator): frames both ways are dropped and counted no_peer_key, logged once', () => {
    const m = mesh();
    const a = m.side('aws/a', 11);
    const b = m.side('gcp/b', 22);
    const records = [m.record(a, false), m.record(b)];
    for (const s of [a, b]) s.core.peers.applyMembers(records, m.clock.now);
    a.core.peers.replicate(session(1), 0, Buffer.from('x'));
    a.core.peers.flushDirty(m.clock.now);
    // aws/a (keyless in b's view) still signs what it sends with the v2 derivation, as an old replicator.
    const h = { sender: a.member, receiver: b.member, senderEpoch: a.epoch, receiverEpoch: b.epoch };
    b.core.onFrame(signFrame(forged(h, 900, 'legacy'), ring));
    m.pump();
    assert.deepEqual(b.delivered, []);
    assert.ok(b.drops.length > 0 && b.drops.every((r) => r === 'no_peer_key'), `b drops: ${b.drops}`);
    assert.equal(b.logs.filter((l) => l.includes('no public key')).length, 1, b.logs.join('\n'));
    // b sends nothing to a keyless member either (its pings are dropped at b, counted).
    assert.ok(m.wire.every((w) => w.to !== a.member));
  });

  it('legacyLinkKeys: a keyless member is spoken to with the cluster-key-only derivation (rolling upgrade)', () => {
    const m = mesh({ legacyLinkKeys: true });
    const a = m.side('aws/a', 11);
    const b = m.side('gcp/b', 22);
    // aws/a plays the older replicator: it publishes no key and reads none (it ignores the field).
    a.core.peers.applyMembers([m.record(a, false), m.record(b, false)], m.clock.now);
    b.core.peers.applyMembers([m.record(a, false), m.record(b)], m.clock.now);
    m.pump();
    a.core.peers.replicate(session(1), 0, Buffer.from('a-to-b'));
    a.core.peers.flushDirty(m.clock.now);
    b.core.peers.replicate(session(2), 0, Buffer.from('b-to-a'));
    b.core.peers.flushDirty(m.clock.now);
    m.pump();
    assert.deepEqual(b.delivered, ['a-to-b']);
    assert.deepEqual(a.delivered, ['b-to-a']);
    assert.deepEqual([...a.drops, ...b.drops], []);
  });

  it('a static peer (no member record) keeps the cluster-key-only derivation; its record, once seen, requires v3', () => {
    const m = mesh();
    const a = m.side('aws/a', 11);
    const b = m.side('gcp/b', 22);
    b.core.peers.upsert({ id: a.member, cluster: a.cluster, address: a.member, port: 1 }, true, m.clock.now);
    const h = { sender: a.member, receiver: b.member, senderEpoch: a.epoch, receiverEpoch: b.epoch };
    b.core.onFrame(signFrame(forged(h, 1, 'static'), ring));
    assert.deepEqual(b.delivered, ['static']);
    b.core.peers.applyMembers([m.record(a), m.record(b)], m.clock.now);
    b.core.onFrame(signFrame(forged(h, 2, 'v2-after-record'), ring));
    assert.deepEqual(b.delivered, ['static']);
    assert.deepEqual(b.drops, ['bad_mac']);
  });

  it('member records: a public key must be 32 bytes base64url; a record without one still parses', () => {
    const base = { id: 'aws/a', cluster: 'aws', address: '10.0.0.1', port: 7946, epoch: 3 };
    const pk = memberKeyPairFromSeed(Buffer.alloc(32, 1)).publicKey;
    assert.equal(parseMemberRecord(JSON.stringify({ ...base, publicKey: pk }))?.publicKey, pk);
    assert.equal(parseMemberRecord(JSON.stringify(base))?.publicKey, undefined);
    assert.equal(parseMemberRecord(JSON.stringify({ ...base, publicKey: 'short' })), undefined);
    assert.equal(parseMemberRecord(JSON.stringify({ ...base, publicKey: 42 })), undefined);
  });
});
