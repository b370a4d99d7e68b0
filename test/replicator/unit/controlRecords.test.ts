// Session announcements between two real ReplicationCores over an in-memory network (the integration of
// identity's delivery behind protocol v2's DeliverySink): a control record (session 0) reaches the
// receiver's sink.control with the origin incarnation, never sink.deliver; the session's datagram that
// follows is delivered with the same incarnation object; a delivery the sink refuses is counted by the
// sink alone (the core does not add no_backend on top).
import assert from 'node:assert/strict';
import { ReplicationCore } from '../../../replicator/core/replicationCore.ts';
import {
  CONTROL_SESSION,
  type OriginIncarnation,
  type ReplicatedSession,
} from '../../../replicator/core/deliverySink.ts';
import { encodeAnnounce } from '../../../replicator/delivery/sessionAnnounce.ts';
import { makeKeyRing } from '../../../replicator/protocol/frameAuth.ts';
import { sessionHashKey, type OriginSession } from '../../../replicator/replication/peerSet.ts';

interface Side {
  core: ReplicationCore;
  controls: Array<{ origin: OriginIncarnation; payload: Buffer }>;
  delivered: Array<{ r: ReplicatedSession; seq: number; payload: Buffer }>;
  drops: string[];
}

function mesh(refuse = false) {
  const ring = makeKeyRing([Buffer.alloc(32, 9)]);
  const wire: Array<{ to: string; bytes: Buffer }> = [];
  const clock = { now: 1000 };
  const side = (member: string, cluster: string, epoch: number): Side => {
    const s: Side = { core: undefined as unknown as ReplicationCore, controls: [], delivered: [], drops: [] };
    s.core = new ReplicationCore({
      member,
      cluster,
      epoch,
      now: () => clock.now,
      transport: { send: (bytes, _port, address) => void wire.push({ to: address, bytes }) },
      sink: {
        deliver: (r, seq, payload) => {
          if (refuse) {
            s.drops.push('identity_table_full');
            return false;
          }
          s.delivered.push({ r, seq, payload });
          return true;
        },
        control: (origin, payload) => void s.controls.push({ origin, payload }),
      },
      keyRing: () => ring,
      reorderBufferDatagrams: () => 64,
      sessionIdleMs: () => 60_000,
      retransmitBufferBytes: () => 1 << 20,
      maxFrameBytes: () => 1352,
      drop: (reason) => void s.drops.push(reason),
      delivered: () => {},
      log: () => {},
    });
    return s;
  };
  const a = side('aws/a', 'aws', 11);
  const b = side('gcp/b', 'gcp', 22);
  a.core.peers.upsert({ id: 'gcp/b', cluster: 'gcp', address: 'gcp/b', port: 1 }, true, clock.now, 22);
  b.core.peers.upsert({ id: 'aws/a', cluster: 'aws', address: 'aws/a', port: 1 }, true, clock.now, 11);
  const pump = (): void => {
    for (let i = 0; i < 20 && wire.length > 0; i++) {
      for (const m of wire.splice(0)) (m.to === 'gcp/b' ? b : a).core.onFrame(m.bytes);
      clock.now += 1;
      a.core.onAlarm();
      b.core.onAlarm();
    }
  };
  return { a, b, pump };
}

const session = (id: number): OriginSession => ({
  id,
  hashKey: sessionHashKey(1, 11, id),
  placements: [],
  placementsVersion: -1,
});

describe('control records through the replication core', () => {
  it('an announcement reaches sink.control with the origin incarnation; the datagram after it sink.deliver', () => {
    const { a, b, pump } = mesh();
    const s = session(7);
    const announce = encodeAnnounce({
      session: 7,
      source: { address: '192.0.2.1', port: 4000 },
      destination: { address: '198.51.100.2', port: 7001 },
    });
    assert.equal(a.core.peers.placementsOf(s).length, 1, 'one replica in gcp');
    a.core.peers.replicateControl(s, CONTROL_SESSION, 0, announce);
    a.core.peers.replicate(s, 0, Buffer.from('hello'));
    a.core.peers.flushDirty(1000);
    pump();
    assert.equal(b.controls.length, 1);
    assert.deepEqual(b.controls[0].payload, announce);
    assert.deepEqual(b.controls[0].origin, {
      member: 'aws/a',
      cluster: 'aws',
      memberHash: b.controls[0].origin.memberHash,
      epoch: 11,
    });
    assert.equal(b.delivered.length, 1, 'session 0 is never delivered to a backend');
    assert.equal(b.delivered[0].r.session, 7);
    assert.equal(b.delivered[0].payload.toString(), 'hello');
    assert.equal(b.delivered[0].r.incarnation, b.controls[0].origin, 'one incarnation object per stream');
    assert.deepEqual(b.drops, []);
  });

  it('a delivery the sink refuses is counted once, with the sink reason (not also no_backend)', () => {
    const { a, b, pump } = mesh(true);
    const s = session(3);
    a.core.peers.replicate(s, 0, Buffer.from('x'));
    a.core.peers.flushDirty(1000);
    pump();
    assert.deepEqual(b.drops, ['identity_table_full']);
  });
});
