// Deadline-driven timers (issue 10: "one timer per link armed at its next deadline, not a 2 ms poll"):
// real ReplicationCores over an in-memory network with a fake clock, driven the way the service drives
// them (one alarm at core.nextDeadline(), the end-of-turn flush after events). An idle mesh sleeps until
// the next liveness probe and services no link before it; one datagram in flight puts the deadline at its
// probe timeout; a received datagram owes an ACK at exactly ackDelayMs; an alarm services only the links
// whose deadline passed.
import assert from 'node:assert/strict';
import { ReplicationCore } from '../../../replicator/core/replicationCore.ts';
import { decodeFrame, FrameType, type FrameTypeCode } from '../../../replicator/protocol/frame.ts';
import { makeKeyRing, verifyFrame } from '../../../replicator/protocol/frameAuth.ts';
import { protocolParams as p } from '../../../replicator/protocol/params.ts';
import type { LinkEntry } from '../../../replicator/replication/peerSet.ts';
import { sessionHashKey, type OriginSession } from '../../../replicator/replication/peerSet.ts';

const ring = makeKeyRing([Buffer.alloc(32, 7)]);
const LATENCY_MS = 1;

interface Sent {
  at: number;
  from: string;
  to: string;
  type: FrameTypeCode;
}

function mesh(members: Array<[string, string, number]>) {
  const clock = { now: 1000 };
  const flight: Array<{ at: number; to: string; bytes: Buffer }> = [];
  const sent: Sent[] = [];
  /** Directed pairs whose frames are lost. */
  const cut = new Set<string>();
  const cores = new Map<string, ReplicationCore>();
  for (const [member, cluster, epoch] of members) {
    const core = new ReplicationCore({
      member,
      cluster,
      epoch,
      now: () => clock.now,
      transport: {
        send: (bytes, _port, to) => {
          const v = verifyFrame(bytes, ring);
          assert.ok(v.ok);
          const f = decodeFrame(v.frame);
          assert.ok(f.ok);
          sent.push({ at: clock.now, from: member, to, type: f.frame.type });
          if (!cut.has(`${member}>${to}`)) flight.push({ at: clock.now + LATENCY_MS, to, bytes });
        },
      },
      sink: { deliver: () => true },
      keyRing: () => ring,
      reorderBufferDatagrams: () => 64,
      sessionIdleMs: () => 60_000,
      retransmitBufferBytes: () => 1 << 20,
      maxFrameBytes: () => 1352,
      drop: () => {},
      delivered: () => {},
      log: () => {},
    });
    cores.set(member, core);
  }
  for (const [member, cluster, epoch] of members)
    for (const [other] of members)
      if (other !== member)
        cores
          .get(other)!
          .peers.upsert({ id: member, cluster, address: member, port: 1 }, true, clock.now, epoch);
  /** Services on each link of each core (PeerLink.tick calls), by "member>peer". */
  const services = new Map<string, number>();
  for (const [member, core] of cores)
    for (const [peer, e] of core.peers.links) {
      const tick = e.link.tick.bind(e.link);
      e.link.tick = (now: number) => {
        services.set(`${member}>${peer}`, (services.get(`${member}>${peer}`) ?? 0) + 1);
        tick(now);
      };
    }
  const alarms = new Map<string, number>();

  /** Runs events in time order until `until`: frame arrivals (then the end-of-turn flush), alarms. */
  function runUntil(until: number): void {
    for (;;) {
      let next = Infinity;
      for (const f of flight) next = Math.min(next, f.at);
      for (const core of cores.values()) next = Math.min(next, core.nextDeadline());
      if (next > until) break;
      clock.now = Math.max(clock.now, next);
      const due = flight.filter((f) => f.at <= clock.now);
      for (const f of due) {
        flight.splice(flight.indexOf(f), 1);
        const core = cores.get(f.to)!;
        core.onFrame(f.bytes);
        if (core.flushPending) core.flush();
      }
      for (const [member, core] of cores)
        if (core.nextDeadline() <= clock.now) {
          alarms.set(member, (alarms.get(member) ?? 0) + 1);
          core.onAlarm();
        }
    }
    clock.now = until;
  }

  const entry = (member: string, peer: string): LinkEntry => cores.get(member)!.peers.links.get(peer)!;
  const lastSent = (from: string, to: string, type: FrameTypeCode): number =>
    Math.max(...sent.filter((s) => s.from === from && s.to === to && s.type === type).map((s) => s.at));
  const servicesOf = (member: string, peer: string): number => services.get(`${member}>${peer}`) ?? 0;
  return { clock, cores, cut, sent, runUntil, entry, lastSent, servicesOf, alarms };
}

const session = (id: number): OriginSession => ({
  id,
  hashKey: sessionHashKey(1, 11, id),
  placements: [],
  placementsVersion: -1,
});

describe('deadline-driven alarms (ReplicationCore / PeerSet)', () => {
  it('an idle mesh sleeps until the next liveness probe and services no link before it', () => {
    const m = mesh([
      ['aws/a', 'aws', 11],
      ['gcp/b', 'gcp', 22],
      ['azure/c', 'azure', 33],
    ]);
    m.runUntil(3000); // handshakes, RTT samples, a few ping rounds
    const a = m.cores.get('aws/a')!;
    for (const e of a.peers.links.values()) assert.equal(e.link.state, 'up');
    assert.equal(a.peers.unacknowledged, 0);
    const nextPing =
      Math.min(m.lastSent('aws/a', 'gcp/b', FrameType.Ping), m.lastSent('aws/a', 'azure/c', FrameType.Ping)) +
      p.pingIntervalMs;
    const d = a.nextDeadline();
    assert.equal(d, nextPing, 'the next deadline is the next PING');
    assert.ok(d - m.clock.now > 10 * p.timerGranularityMs, `deadline ${d - m.clock.now} ms away, not a poll`);

    // An owner that woke up every millisecond anyway: nothing is serviced, nothing is sent before the PING.
    const before = { ab: m.servicesOf('aws/a', 'gcp/b'), ac: m.servicesOf('aws/a', 'azure/c') };
    const sentBefore = m.sent.filter((s) => s.from === 'aws/a').length;
    for (let t = Math.ceil(m.clock.now); t < d; t++) a.onAlarm(t);
    assert.deepEqual({ ab: m.servicesOf('aws/a', 'gcp/b'), ac: m.servicesOf('aws/a', 'azure/c') }, before);
    assert.equal(m.sent.filter((s) => s.from === 'aws/a').length, sentBefore);

    // Over 10 idle seconds: about pingIntervalMs apart per link, never a 2 ms poll.
    const alarmsBefore = m.alarms.get('aws/a') ?? 0;
    m.runUntil(m.clock.now + 10_000);
    const alarms = (m.alarms.get('aws/a') ?? 0) - alarmsBefore;
    assert.ok(alarms <= 2 * (10_000 / p.pingIntervalMs) + 2, `${alarms} alarms in 10 idle seconds`);
    for (const e of a.peers.links.values()) assert.equal(e.link.state, 'up', 'pings kept the links up');
  });

  it('one datagram in flight: the deadline is its probe timeout; the receiver owes its ACK at ackDelayMs', () => {
    const m = mesh([
      ['aws/a', 'aws', 11],
      ['gcp/b', 'gcp', 22],
    ]);
    m.runUntil(3000);
    const a = m.cores.get('aws/a')!;
    const b = m.cores.get('gcp/b')!;
    // Right after a's PING round, so the probe timeout comes first.
    m.runUntil(m.lastSent('aws/a', 'gcp/b', FrameType.Ping) + p.pingIntervalMs);
    const link = m.entry('aws/a', 'gcp/b').link;
    m.cut.add('aws/a>gcp/b');
    const t0 = m.clock.now;
    a.peers.replicate(session(1), 0, Buffer.from('x'));
    assert.ok(a.flushPending);
    a.flush();
    assert.equal(link.lag, 1);
    assert.equal(a.nextDeadline(), t0 + link.ptoMs(), 'the deadline is the probe timeout');
    // At that time the alarm probes: the datagram is sent again.
    const retransmits = link.counters.retransmits;
    m.runUntil(t0 + link.ptoMs());
    assert.equal(link.counters.retransmits, retransmits + 1);

    // Now let it through (the next probe delivers it, b acknowledges at once: it filled a gap)...
    m.cut.delete('aws/a>gcp/b');
    m.runUntil(m.clock.now + 200);
    assert.equal(link.lag, 0);
    // ... then one more in order: b owes an ACK ackDelayMs after it arrived (not at once, not at a poll).
    const t1 = m.clock.now;
    a.peers.replicate(session(1), 1, Buffer.from('y'));
    a.flush();
    const arrival = t1 + LATENCY_MS;
    m.runUntil(arrival);
    const acksBefore = m.sent.filter((s) => s.from === 'gcp/b' && s.type === FrameType.Ack).length;
    assert.ok(b.nextDeadline() <= arrival + p.ackDelayMs);
    m.runUntil(arrival + p.ackDelayMs - 0.001);
    assert.equal(m.sent.filter((s) => s.from === 'gcp/b' && s.type === FrameType.Ack).length, acksBefore);
    m.runUntil(arrival + p.ackDelayMs);
    assert.equal(m.sent.filter((s) => s.from === 'gcp/b' && s.type === FrameType.Ack).length, acksBefore + 1);
    m.runUntil(m.clock.now + 50);
    assert.equal(link.lag, 0, 'acknowledged');
  });

  it('an alarm services only the links whose deadline passed, not a link with nothing due', () => {
    const m = mesh([
      ['aws/a', 'aws', 11],
      ['gcp/b', 'gcp', 22],
      ['azure/c', 'azure', 33],
    ]);
    m.runUntil(3000);
    const a = m.cores.get('aws/a')!;
    // Both links of a just pinged; a datagram to both clusters; only azure's copy is lost.
    m.runUntil(
      Math.max(m.lastSent('aws/a', 'gcp/b', FrameType.Ping), m.lastSent('aws/a', 'azure/c', FrameType.Ping)) +
        p.pingIntervalMs,
    );
    m.cut.add('aws/a>azure/c');
    const t0 = m.clock.now;
    a.peers.replicate(session(2), 0, Buffer.from('z'));
    a.flush();
    m.runUntil(t0 + 10); // b acknowledged its copy; c's is in flight until its probe timeout
    const toB = m.entry('aws/a', 'gcp/b');
    const toC = m.entry('aws/a', 'azure/c');
    assert.equal(toB.link.lag, 0);
    assert.equal(toC.link.lag, 1);
    const pto = t0 + toC.link.ptoMs();
    assert.ok(a.peers.deadlineOf(toB) > pto, "b's link has nothing due at c's probe timeout");
    const servicedB = m.servicesOf('aws/a', 'gcp/b');
    const servicedC = m.servicesOf('aws/a', 'azure/c');
    const retransmitsC = toC.link.counters.retransmits;
    m.runUntil(pto);
    assert.equal(toC.link.counters.retransmits, retransmitsC + 1, "c's link was probed");
    assert.equal(m.servicesOf('aws/a', 'azure/c'), servicedC + 1, "c's link serviced once");
    assert.equal(m.servicesOf('aws/a', 'gcp/b'), servicedB, "b's link was not serviced");
  });

  it("a down replica's backlog moves at its hand-over time only while its cluster has a live replica, and as soon as one comes up", () => {
    const m = mesh([
      ['aws/a', 'aws', 11],
      ['gcp/b1', 'gcp', 21],
      ['gcp/b2', 'gcp', 22],
    ]);
    m.runUntil(3000);
    const a = m.cores.get('aws/a')!;
    const both = (x: string) => [`aws/a>${x}`, `${x}>aws/a`];
    for (const k of [...both('gcp/b1'), ...both('gcp/b2')]) m.cut.add(k);
    const s = session(5);
    for (let i = 0; i < 10; i++) a.peers.replicate(s, i, Buffer.from(`d${i}`));
    a.flush();
    const [from, other] = (['gcp/b1', 'gcp/b2'] as const).map((id) => m.entry('aws/a', id));
    const [held, spare] = from!.link.lag > 0 ? [from!, other!] : [other!, from!];
    assert.equal(held.link.lag, 10);
    m.runUntil(m.clock.now + p.peerDownAfterMs + 500);
    assert.equal(held.link.state, 'down');
    assert.equal(spare.link.state, 'down');
    // No live replica in gcp: nothing to move to, so no hand-over deadline, however long it lasts.
    const handoverAt = held.link.lastHeardAt + p.handoverAfterMs;
    assert.ok(a.peers.deadlineOf(held) < handoverAt, 'its next deadline is a ping');
    m.runUntil(handoverAt + 1000);
    assert.equal(held.link.counters.abandoned.handover, 0);
    assert.equal(held.link.lag, 10);
    // The spare replica answers again: once it is up, the backlog moves at the next alarm.
    for (const k of both(spare.link.peer.id)) m.cut.delete(k);
    const t = m.clock.now;
    m.runUntil(t + p.pingIntervalMs + 50);
    assert.equal(spare.link.state, 'up');
    assert.equal(held.link.counters.abandoned.handover, 10, 'moved');
    assert.equal(held.link.lag, 0);
    m.runUntil(m.clock.now + 100);
    assert.equal(spare.link.lag, 0, 'and acknowledged by the spare replica');
  });

  it('alarms are at least timerGranularityMs apart: work that stays due cannot spin', () => {
    const m = mesh([
      ['aws/a', 'aws', 11],
      ['gcp/b', 'gcp', 22],
    ]);
    m.runUntil(3000);
    const a = m.cores.get('aws/a')!;
    // More than one flush may send (maxSendPerTick): the rest stays due, the next alarm is a step later.
    const s = session(3);
    for (let i = 0; i < p.maxSendPerTick + 10; i++) a.peers.replicate(s, i, Buffer.from('q'));
    a.flush();
    const now = m.clock.now;
    a.onAlarm(now);
    assert.ok(a.nextDeadline() >= now + p.timerGranularityMs);
    m.runUntil(now + 200);
    assert.equal(m.entry('aws/a', 'gcp/b').link.lag, 0, 'all of it sent and acknowledged');
  });
});
