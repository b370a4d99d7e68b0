// Deterministic simulation of a whole mesh (issue 10), in the manner of FoundationDB's and TigerBeetle's
// simulators: the production ReplicationCore of every replica runs in one process over a simulated
// network, a simulated etcd (leases, fenced epochs, membership watches) and one virtual clock, with faults
// drawn from a seeded PRNG. The same seed replays the same run exactly.
//
// Faults: partitions between clusters or around one replica, of any length (also longer than every
// timeout), loss, duplication, reordering, delay spikes, process restarts (crash: state lost, new epoch),
// lease expiry while the data path stays up, scale up and down, key rotation, and sessions whose sequence
// starts just below 2^32. Every incarnation has its own X25519 key pair (derived from the seed, member
// and epoch, so a replay is exact) published in its member record: frames use the real v3 link keys.
//
// Checks after the run (all faults healed, then a quiet period):
//  - at least once: every datagram accepted by an origin incarnation that stayed up reached every other
//    cluster, except as many as that origin counted abandoned towards that cluster;
//  - per-session order: at each cluster, first deliveries of a session are in increasing seq;
//  - no duplicate delivery within one receiving incarnation.
// And after every event at a replica: no link's cached timer deadline is later than a fresh one (the
// deadline-driven alarm, replicationCore.ts, would otherwise sleep through a timer).
//
// Each replica's timers run as production's do: one alarm event on the simulated clock at the core's next
// deadline, re-armed only when an event moves that deadline earlier; datagrams queued at one instant are
// flushed together by an end-of-turn event (as the service's setImmediate does).
import { createHash } from 'node:crypto';
import { ReplicationCore } from '../../replicator/core/replicationCore.ts';
import type { MemberRecord } from '../../replicator/coordination/keys.ts';
import { hashString } from '../../replicator/delivery/hashRing.ts';
import { makeKeyRing, type KeyRing } from '../../replicator/protocol/frameAuth.ts';
import { memberKeyPairFromSeed, type MemberKeyPair } from '../../replicator/protocol/memberKeys.ts';
import { protocolParams } from '../../replicator/protocol/params.ts';
import { sessionHashKey, type OriginSession, type Placement } from '../../replicator/replication/peerSet.ts';
import {
  ANNOUNCE_REFRESH_MS,
  announcedSession,
  CONTROL_SESSION,
  encodeAnnounce,
} from '../../replicator/delivery/sessionAnnounce.ts';
import { mulberry32, type Rng } from '../harness/prng.ts';

// ------------------------------------------------------------------------------------------ clock

class Clock {
  now = 0;
  private seq = 0;
  private heap: Array<{ at: number; seq: number; fn: () => void }> = [];

  at(at: number, fn: () => void): void {
    const e = { at: Math.max(at, this.now), seq: this.seq++, fn };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at < e.at || (h[p].at === e.at && h[p].seq < e.seq)) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = e;
  }

  after(ms: number, fn: () => void): void {
    this.at(this.now + ms, fn);
  }

  /** Runs events up to `until`; returns the number run. */
  run(until: number): number {
    let n = 0;
    const h = this.heap;
    while (h.length > 0 && h[0].at <= until) {
      const top = h[0];
      const last = h.pop()!;
      if (h.length > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= h.length) break;
          const r = l + 1;
          const c =
            r < h.length && (h[r].at < h[l].at || (h[r].at === h[l].at && h[r].seq < h[l].seq)) ? r : l;
          if (h[c].at > last.at || (h[c].at === last.at && h[c].seq > last.seq)) break;
          h[i] = h[c];
          i = c;
        }
        h[i] = last;
      }
      this.now = top.at;
      top.fn();
      n++;
    }
    this.now = Math.max(this.now, until);
    return n;
  }
}

// ------------------------------------------------------------------------------------------ run model

export interface SimOptions {
  seed: number;
  clusters: number;
  replicas: number;
  /** Simulated ms of traffic and faults, then a quiet period to settle. */
  durationMs: number;
  clientsPerCluster: number;
}

export interface SimReport {
  seed: number;
  ok: boolean;
  failures: string[];
  simulatedMs: number;
  accepted: number;
  delivered: number;
  abandoned: number;
  /** Every abandonment counted at the origins, per reason (handover = moved to another replica). */
  abandonedByReason: Record<string, number>;
  /**
   * Accepted while the origin knew no member of some cluster: they waited at the origin for a member
   * (no exemption: they must arrive, or be counted no_member).
   */
  unroutable: number;
  /** Remote deliveries of sessions not identified at the receiver (older than it: refresh limit). */
  identityUnknown: number;
  faults: Record<string, number>;
}

class Node {
  core: ReplicationCore;
  readonly sessions = new Map<
    string,
    OriginSession & { nextSeq: number; announcedTo?: readonly Placement[]; announcedAt?: number }
  >();
  /** Sessions whose announcement this incarnation applied: origin#epoch#session. */
  readonly identified = new Set<string>();
  readonly startedAt: number;
  private controlSeq = 0;
  alive = true;
  leaseOk = true;
  nextSession = 1;
  keyRing: KeyRing;
  readonly keyPair: MemberKeyPair;
  flushScheduled = false;

  constructor(
    readonly sim: Simulation,
    readonly cluster: string,
    readonly instance: string,
    readonly epoch: number,
    readonly address: string,
  ) {
    this.keyRing = sim.keyRing();
    this.startedAt = sim.clock.now;
    const member = `${cluster}/${instance}`;
    // Not from sim.rng: drawing from it would change every seed's run.
    this.keyPair = memberKeyPairFromSeed(
      createHash('sha256').update(`${sim.o.seed}|${member}|${epoch}`).digest(),
    );
    this.core = new ReplicationCore({
      member,
      cluster,
      epoch,
      keyPair: this.keyPair,
      now: () => sim.clock.now,
      transport: { send: (bytes, _port, addr) => sim.net.send(this.address, addr, bytes) },
      sink: {
        deliver: (s, seq) => {
          sim.recordDelivery(this, s.origin, s.originEpoch, s.session, seq);
          sim.checkIdentity(this, s.origin, s.originEpoch, s.session);
          return true;
        },
        // Session announcements (delivery/sessionAnnounce.ts), as a proxy-v2 delivery sink applies them.
        control: (origin, payload) => {
          const session = announcedSession(payload);
          if (session !== undefined) this.identified.add(`${origin.member}#${origin.epoch}#${session}`);
        },
      },
      keyRing: () => this.keyRing,
      reorderBufferDatagrams: () => 8192,
      sessionIdleMs: () => 60_000,
      retransmitBufferBytes: () => 8 * 1024 * 1024,
      maxFrameBytes: () => 1352,
      drop: (reason, n = 1) => sim.countDrop(reason, n),
      delivered: () => {},
      log: () => {},
      announce: (s) => ({ seq: this.controlSeq++, payload: this.announcement(s.id) }),
    });
  }

  get member(): string {
    return `${this.cluster}/${this.instance}`;
  }

  private announcement(session: number): Buffer {
    return encodeAnnounce({
      session,
      source: { address: '192.0.2.1', port: 1024 + (session % 60000) },
      destination: undefined,
    });
  }

  /** A client datagram accepted at this ingress: delivered locally, appended for every other cluster. */
  accept(client: string, payload: Buffer, startSeq: number): void {
    let s = this.sessions.get(client);
    if (!s) {
      const id = this.nextSession++;
      s = {
        id,
        hashKey: sessionHashKey(this.core.selfHash, this.epoch, id),
        placements: [],
        placementsVersion: -1,
        nextSeq: startSeq,
      };
      this.sessions.set(client, s);
    }
    const seq = s.nextSeq++;
    this.sim.recordAccepted(this, s.id, seq);
    this.sim.recordDelivery(this, this.member, this.epoch, s.id, seq);
    // As the ingress does (service.ts): placements first; the session is announced ahead of its next
    // datagram whenever its replicas changed and every ANNOUNCE_REFRESH_MS (proxy-v2 session identity),
    // then the datagram. Placement objects are compared by identity as SessionDelivery.announcement
    // does: a placement that changed and came back is a new object, so the session is announced again.
    const placements = this.core.peers.placementsOf(s);
    const a = s.announcedTo;
    const now = this.sim.clock.now;
    if (
      placements.length > 0 &&
      (!(a && a.length === placements.length && a.every((p, i) => p === placements[i])) ||
        now - (s.announcedAt ?? 0) >= ANNOUNCE_REFRESH_MS)
    ) {
      s.announcedTo = [...placements];
      s.announcedAt = now;
      this.core.peers.replicateControl(s, CONTROL_SESSION, this.controlSeq++, this.announcement(s.id));
    }
    this.core.peers.replicate(s, seq, payload);
    this.scheduleFlush();
  }

  /** A frame from the network; then the end-of-turn flush if it left something to send, or a re-arm. */
  receive(frame: Buffer): void {
    this.core.onFrame(frame);
    if (this.core.flushPending) this.scheduleFlush();
    else this.rearm();
  }

  /** Membership from the simulated etcd watch. */
  applyMembers(list: MemberRecord[]): void {
    this.core.peers.applyMembers(list, this.sim.clock.now);
    this.rearm();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.sim.clock.after(0, () => {
      this.flushScheduled = false;
      if (!this.alive) return;
      this.core.flush();
      this.rearm();
    });
  }

  private alarmAt = Infinity;
  private alarmGeneration = 0;
  /** Alarm events that ran (the simulated wake-ups). */
  wakeups = 0;

  /** Arms the alarm at the core's next deadline if that is earlier than the armed one. */
  rearm(): void {
    if (!this.alive) return;
    const now = this.sim.clock.now;
    const at = Math.max(this.core.nextDeadline(), now);
    this.checkDeadlines(now);
    if (at >= this.alarmAt) return;
    this.alarmAt = at;
    const generation = ++this.alarmGeneration;
    if (at === Infinity) return;
    this.sim.clock.at(at, () => {
      if (!this.alive || generation !== this.alarmGeneration) return; // superseded by an earlier one
      this.alarmAt = Infinity;
      this.wakeups++;
      this.core.onAlarm();
      this.rearm();
    });
  }

  /** A link whose cached deadline is later than a fresh one would be serviced late: a timer bug. */
  private checkDeadlines(now: number): void {
    const peers = this.core.peers;
    const slack = protocolParams.timerGranularityMs + 1e-6;
    for (const e of peers.links.values()) {
      if (peers.dirty.has(e.link)) continue; // the pending end-of-turn flush sees to it
      const fresh = peers.deadlineOf(e);
      if (e.deadline > Math.max(fresh, now) + slack)
        this.sim.fail(
          `missed timer at ${this.member}: link to ${e.link.peer.id} due at ${fresh.toFixed(3)}, armed for ${e.deadline.toFixed(3)}`,
        );
    }
  }

  startTimers(): void {
    this.rearm();
    const sweep = (): void => {
      if (!this.alive) return;
      this.core.sweep();
      this.rearm();
      this.sim.clock.after(1000, sweep);
    };
    this.sim.clock.after(1000, sweep);
  }
}

class Network {
  private readonly nodes = new Map<string, Node>();
  /** Blocked directed pairs of addresses (or "cluster:x" wildcards) until a time. */
  readonly cuts: Array<{ from: (a: string) => boolean; to: (a: string) => boolean; until: number }> = [];
  loss = 0.01;
  dup = 0.005;
  jitterMs = 5;
  spikeUntil = 0;
  spikeMs = 0;
  sent = 0;

  constructor(
    private readonly clock: Clock,
    private readonly rng: Rng,
  ) {}

  bind(address: string, node: Node | undefined): void {
    if (node) this.nodes.set(address, node);
    else this.nodes.delete(address);
  }

  baseDelay(from: string, to: string): number {
    // Same cluster 1 ms; across clusters 10-70 ms depending on the pair (fixed per pair).
    const a = from.split('.')[2];
    const b = to.split('.')[2];
    if (a === b) return 1;
    return 10 + ((hashString(`${a}|${b}`) >>> 0) % 60);
  }

  send(from: string, to: string, bytes: Buffer): void {
    this.sent++;
    const now = this.clock.now;
    if (this.cuts.some((c) => c.until > now && c.from(from) && c.to(to))) return;
    if (this.rng() < this.loss) return;
    const copies = this.rng() < this.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let d = this.baseDelay(from, to) + this.rng() * this.jitterMs;
      if (now < this.spikeUntil) d += this.rng() * this.spikeMs;
      const copy = Buffer.from(bytes);
      this.clock.after(d, () => {
        const n = this.nodes.get(to);
        if (n?.alive) n.receive(copy);
      });
    }
  }
}

/** etcd as the replicators see it: fenced epochs per identity, leased member records, watches. */
class Etcd {
  readonly epochs = new Map<string, number>();
  readonly records = new Map<string, MemberRecord & { expires: number; owner: Node }>();
  constructor(private readonly sim: Simulation) {}

  register(node: Node): void {
    this.records.set(node.member, {
      id: node.member,
      cluster: node.cluster,
      instance: node.instance,
      address: node.address,
      port: 7946,
      ingressPorts: [],
      metricsPort: 0,
      epoch: node.epoch,
      startedAt: '',
      publicKey: node.keyPair.publicKey,
      expires: this.sim.clock.now + 3000,
      owner: node,
    });
    this.changed();
  }

  allocate(member: string): number {
    const e = (this.epochs.get(member) ?? 0) + 1;
    this.epochs.set(member, e);
    return e;
  }

  /** Lease keep-alive; after a lapse, re-registration is fenced on the epoch (issue 10 D5). */
  keepAlive(node: Node): void {
    const r = this.records.get(node.member);
    if (r && r.owner === node) r.expires = this.sim.clock.now + 3000;
    else if (this.epochs.get(node.member) === node.epoch) this.register(node);
  }

  revoke(node: Node): void {
    const r = this.records.get(node.member);
    if (r && r.owner === node) {
      this.records.delete(node.member);
      this.changed();
    }
  }

  expire(): void {
    let changed = false;
    for (const [id, r] of this.records)
      if (r.expires <= this.sim.clock.now) {
        this.records.delete(id);
        changed = true;
      }
    if (changed) this.changed();
  }

  private changed(): void {
    const list = [...this.records.values()].map(({ expires: _e, owner: _o, ...r }) => r);
    for (const n of this.sim.liveNodes()) {
      // Watches arrive a little later, at each node on its own schedule.
      this.sim.clock.after(5 + this.sim.rng() * 50, () => {
        if (n.alive) n.applyMembers(list);
      });
    }
  }
}

export class Simulation {
  readonly clock = new Clock();
  readonly rng: Rng;
  readonly net: Network;
  readonly etcd: Etcd;
  readonly nodes: Node[] = [];
  readonly faults: Record<string, number> = {};
  private keys: Buffer[] = [Buffer.alloc(32, 1)];
  private readonly failures: string[] = [];
  /** origin#epoch -> session -> seqs accepted. */
  private readonly accepted = new Map<string, Map<number, Set<number>>>();
  /** cluster -> origin#epoch#session -> {seen, highest}. */
  private readonly firstDeliveries = new Map<string, Map<string, { seen: Set<number>; highest: number }>>();
  /** receiver#epoch -> keys delivered. */
  private readonly perIncarnation = new Map<string, Set<string>>();
  private readonly stoppedOrigins = new Set<string>();
  private acceptedCount = 0;
  /** Datagrams accepted while the origin knew no member of some cluster (they wait for one). */
  private unroutableCount = 0;
  private deliveredCount = 0;
  private nextAddress = 1;
  /** Frame drops counted by every core, per reason (the key checks below read them). */
  readonly drops: Record<string, number> = {};

  constructor(readonly o: SimOptions) {
    this.rng = mulberry32(o.seed);
    this.net = new Network(this.clock, mulberry32(o.seed ^ 0x5bd1e995));
    this.etcd = new Etcd(this);
  }

  keyRing(): KeyRing {
    return makeKeyRing(this.keys);
  }

  /** Origin#epoch#session -> when its first datagram was accepted. */
  private readonly sessionStart = new Map<string, number>();
  identityUnknown = 0;

  /**
   * A session that started after the receiving incarnation did must be identified there before its
   * datagrams are delivered (its announcement travels ahead of them, also through hand-overs). Sessions
   * older than the receiver learn their address from the periodic refresh (a documented limit).
   */
  checkIdentity(at: Node, origin: string, originEpoch: number, session: number): void {
    const k = `${origin}#${originEpoch}#${session}`;
    if (at.identified.has(k)) return;
    this.identityUnknown++;
    const started = this.sessionStart.get(k);
    if (started === undefined || started <= at.startedAt) return;
    // An announcement the origin gave up (its retransmit buffer overflowed, counted) leaves the session's
    // later datagrams without it: counted at the origin, identity_unknown at the receiver, allowed.
    const o = this.nodes.find((n) => n.member === origin && n.epoch === originEpoch);
    if ((o?.core.peers.links.get(at.member)?.link.counters.abandoned.overflow ?? 0) > 0) return;
    this.fail(`identity unknown at ${at.member}#${at.epoch}: ${k} (started after the receiver)`);
  }

  countDrop(reason: string, n: number): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + n;
  }

  liveNodes(): Node[] {
    return this.nodes.filter((n) => n.alive);
  }

  private fault(name: string): void {
    this.faults[name] = (this.faults[name] ?? 0) + 1;
  }

  fail(msg: string): void {
    if (this.failures.length < 20) this.failures.push(`t=${(this.clock.now / 1000).toFixed(3)}s ${msg}`);
  }

  recordAccepted(n: Node, session: number, seq: number): void {
    const k = `${n.member}#${n.epoch}`;
    let m = this.accepted.get(k);
    if (!m) this.accepted.set(k, (m = new Map()));
    let s = m.get(session);
    if (!s) {
      m.set(session, (s = new Set()));
      this.sessionStart.set(`${k}#${session}`, this.clock.now);
    }
    s.add(seq);
    this.acceptedCount++;
    this.unroutableCount += n.core.peers.clustersWithoutMembers.length;
  }

  recordDelivery(at: Node, origin: string, originEpoch: number, session: number, seq: number): void {
    this.deliveredCount++;
    const dk = `${origin}#${originEpoch}#${session}#${seq}`;
    const inc = `${at.member}#${at.epoch}`;
    let set = this.perIncarnation.get(inc);
    if (!set) this.perIncarnation.set(inc, (set = new Set()));
    if (set.has(dk)) this.fail(`duplicate delivery at ${inc}: ${dk}`);
    set.add(dk);
    let byCluster = this.firstDeliveries.get(at.cluster);
    if (!byCluster) this.firstDeliveries.set(at.cluster, (byCluster = new Map()));
    const sk = `${origin}#${originEpoch}#${session}`;
    let st = byCluster.get(sk);
    if (!st) byCluster.set(sk, (st = { seen: new Set(), highest: -1 }));
    if (st.seen.has(seq)) return; // at least once: another replica may deliver it again
    if (seq < st.highest)
      this.fail(`order at ${at.cluster}: ${sk} seq ${seq} first delivered after ${st.highest}`);
    st.seen.add(seq);
    if (seq > st.highest) st.highest = seq;
  }

  private start(cluster: string, instance: string, address: string): Node {
    const member = `${cluster}/${instance}`;
    const n = new Node(this, cluster, instance, this.etcd.allocate(member), address);
    this.nodes.push(n);
    this.net.bind(address, n);
    this.etcd.register(n);
    // As the coordinator does: the mesh's clusters from the epoch keys, then the members.
    n.core.peers.applyClusters([...this.etcd.epochs.keys()].map((m) => m.split('/')[0]));
    n.applyMembers([...this.etcd.records.values()].map(({ expires: _e, owner: _o, ...r }) => r));
    n.startTimers();
    const keep = (): void => {
      if (!n.alive) return;
      if (n.leaseOk) this.etcd.keepAlive(n);
      this.clock.after(1000, keep);
    };
    this.clock.after(1000, keep);
    return n;
  }

  private crash(n: Node): void {
    n.alive = false;
    this.net.bind(n.address, undefined);
    this.stoppedOrigins.add(`${n.member}#${n.epoch}`);
  }

  private newAddress(cluster: number): string {
    return `10.0.${cluster}.${this.nextAddress++}`;
  }

  run(): SimReport {
    const o = this.o;
    const rng = this.rng;
    const clusters = Array.from({ length: o.clusters }, (_, i) => `c${i}`);
    const replicaCount = new Map<string, number>();
    for (let c = 0; c < o.clusters; c++)
      for (let r = 0; r < o.replicas; r++) {
        this.start(clusters[c], `r${r}`, this.newAddress(c));
        replicaCount.set(clusters[c], r + 1);
      }
    // As in production, a replicator takes traffic only once it has read the membership (the coordinator
    // reads it before the ingress sockets are bound): the cold start applies the whole initial membership.
    const initial = [...this.etcd.records.values()].map(({ expires: _e, owner: _o, ...r }) => r);
    for (const n of this.nodes) n.applyMembers(initial);
    const expireLoop = (): void => {
      this.etcd.expire();
      this.clock.after(250, expireLoop);
    };
    this.clock.after(250, expireLoop);

    // Clients: each sends to one live replica of its cluster at its own rate; some start near 2^32.
    for (let c = 0; c < o.clusters; c++)
      for (let k = 0; k < o.clientsPerCluster; k++) {
        const client = `client-${c}-${k}`;
        const interval = 2 + rng() * 30;
        const startSeq = rng() < 0.2 ? 2 ** 32 - 1 - Math.floor(rng() * 50) : 0;
        let n = 0;
        const send = (): void => {
          if (this.clock.now >= o.durationMs) return;
          const live = this.liveNodes().filter((x) => x.cluster === clusters[c]);
          if (live.length > 0) {
            const target = live[hashString(client) % live.length];
            target.accept(client, Buffer.from(`${client}:${n++}`), startSeq);
          }
          this.clock.after(interval, send);
        };
        this.clock.after(rng() * 100, send);
      }

    // Faults, drawn up front so the run replays exactly.
    let t = 2000;
    while (t < o.durationMs - 2000) {
      t += 500 + rng() * 5000;
      const at = t;
      const kind = Math.floor(rng() * 10);
      this.clock.at(at, () => this.injectFault(kind, clusters, replicaCount));
    }
    this.clock.run(o.durationMs);
    // Heal everything, then let the mesh settle.
    this.net.cuts.length = 0;
    this.net.loss = 0;
    this.net.dup = 0;
    this.net.spikeUntil = 0;
    for (const n of this.liveNodes()) n.leaseOk = true;
    let settled = this.clock.now;
    const deadline = this.clock.now + 120_000;
    while (this.clock.now < deadline) {
      this.clock.run(this.clock.now + 1000);
      const busy = this.liveNodes().some(
        (n) =>
          n.core.peers.unacknowledged > 0 ||
          n.core.peers.barriers.size > 0 ||
          n.core.peers.waitingForMembers > 0,
      );
      if (!busy) {
        if (this.clock.now - settled >= 5000) break;
      } else settled = this.clock.now;
    }
    return this.check(clusters);
  }

  private injectFault(kind: number, clusters: string[], replicaCount: Map<string, number>): void {
    const rng = this.rng;
    const now = this.clock.now;
    const live = this.liveNodes();
    const pick = <T>(xs: T[]): T => xs[Math.floor(rng() * xs.length)];
    // Durations of any length: mostly short, sometimes longer than peer-down, hand-over and gap timeouts.
    const duration = (): number => (rng() < 0.7 ? 50 + rng() * 3000 : 3000 + rng() * 40_000);
    switch (kind) {
      case 0: {
        const [a, b] = [pick(clusters), pick(clusters)];
        if (a === b) return;
        const ca = `.${a.slice(1)}.`;
        const cb = `.${b.slice(1)}.`;
        const until = now + duration();
        const inA = (x: string) => x.includes(ca);
        const inB = (x: string) => x.includes(cb);
        this.net.cuts.push({ from: inA, to: inB, until }, { from: inB, to: inA, until });
        this.fault('partition_clusters');
        // Loss at the start of the partition: the last frames before it are lost too.
        break;
      }
      case 1: {
        const n = pick(live);
        const until = now + duration();
        const addr = n.address;
        this.net.cuts.push(
          { from: (x) => x === addr, to: () => true, until },
          { from: () => true, to: (x) => x === addr, until },
        );
        this.fault('partition_replica');
        break;
      }
      case 2: {
        const prev = this.net.loss;
        this.net.loss = 0.05 + rng() * 0.3;
        this.net.dup = rng() * 0.05;
        this.clock.after(duration(), () => {
          this.net.loss = prev;
          this.net.dup = 0.005;
        });
        this.fault('loss_burst');
        break;
      }
      case 3: {
        this.net.spikeUntil = now + 200 + rng() * 2000;
        this.net.spikeMs = 50 + rng() * 800; // below handoverAfterMs: the bound the protocol assumes
        this.net.jitterMs = 5 + rng() * 40;
        this.fault('delay_spike_reorder');
        break;
      }
      case 4: {
        // Crash and restart later with a new epoch (state lost).
        const n = pick(live);
        if (live.filter((x) => x.cluster === n.cluster).length < 1) return;
        this.crash(n);
        this.fault('restart');
        this.clock.after(100 + rng() * 8000, () => {
          const i = Number(n.address.split('.')[2]);
          this.start(n.cluster, n.instance, this.newAddress(i));
        });
        break;
      }
      case 5: {
        // The lease lapses (etcd unreachable for this node) while its data path stays up.
        const n = pick(live);
        n.leaseOk = false;
        this.clock.after(3000 + rng() * 10_000, () => (n.leaseOk = true));
        this.fault('lease_expiry_data_up');
        break;
      }
      case 6: {
        // Scale up: a new replica joins a cluster.
        const c = pick(clusters);
        const k = replicaCount.get(c)!;
        replicaCount.set(c, k + 1);
        this.start(c, `r${k}`, this.newAddress(Number(c.slice(1))));
        this.fault('scale_up');
        break;
      }
      case 7: {
        // Scale down: a replica leaves (lease revoked), keeping at least one per cluster.
        const n = pick(live);
        if (live.filter((x) => x.cluster === n.cluster).length < 2) return;
        this.etcd.revoke(n);
        this.crash(n);
        this.fault('scale_down');
        break;
      }
      case 8: {
        // Key rotation: the Secret becomes [new, old], later [new]; every node re-reads its mounted copy
        // at its own time and sees the Secret as it is then (as a kubelet sync does). Rotations may
        // overlap; a node never goes back to a key set older than the one it read.
        const next = Buffer.alloc(32, Math.floor(rng() * 255) + 1);
        const old = this.keys[0];
        this.keys = [next, old];
        for (const n of live) this.clock.after(rng() * 3000, () => (n.keyRing = this.keyRing()));
        this.clock.after(8000, () => {
          this.keys = this.keys.filter((k) => k !== old);
          for (const n of this.liveNodes())
            this.clock.after(rng() * 3000, () => (n.keyRing = this.keyRing()));
        });
        this.fault('key_rotation');
        break;
      }
      default: {
        // A long partition of a whole cluster: longer than every timeout (peer down, hand-over, lease).
        const c = pick(clusters);
        const cc = `.${c.slice(1)}.`;
        const until = now + 20_000 + rng() * 60_000;
        this.net.cuts.push(
          { from: (x) => x.includes(cc), to: (x) => !x.includes(cc), until },
          { from: (x) => !x.includes(cc), to: (x) => x.includes(cc), until },
        );
        this.fault('long_partition');
      }
    }
  }

  private check(clusters: string[]): SimReport {
    // Abandoned counts per origin incarnation and target cluster (reasons that lose data for it).
    const abandoned = new Map<string, number>();
    const byReason: Record<string, number> = {};
    const addReasons = (a: Record<string, number>) => {
      for (const [k, v] of Object.entries(a)) if (v > 0) byReason[k] = (byReason[k] ?? 0) + v;
    };
    let abandonedTotal = 0;
    for (const n of this.nodes) {
      for (const [, e] of n.core.peers.links) {
        const a = e.link.counters.abandoned;
        addReasons(a);
        const lost = a.overflow + a.peer_gone + a.shutdown + a.held_overflow;
        abandonedTotal += lost;
        const k = `${n.member}#${n.epoch}>${e.link.peer.cluster}`;
        abandoned.set(k, (abandoned.get(k) ?? 0) + lost);
      }
      for (const [id, r] of n.core.peers.retired) {
        const a = r.abandoned;
        addReasons(a);
        const lost = (a.overflow ?? 0) + (a.peer_gone ?? 0) + (a.shutdown ?? 0) + (a.held_overflow ?? 0);
        abandonedTotal += lost;
        const k = `${n.member}#${n.epoch}>${id.split('/')[0]}`;
        abandoned.set(k, (abandoned.get(k) ?? 0) + lost);
      }
      for (const [cluster, lost] of n.core.peers.noMemberAbandoned) {
        addReasons({ no_member: lost });
        abandonedTotal += lost;
        const k = `${n.member}#${n.epoch}>${cluster}`;
        abandoned.set(k, (abandoned.get(k) ?? 0) + lost);
      }
    }
    for (const [origin, sessions] of this.accepted) {
      if (this.stoppedOrigins.has(origin)) continue; // only ingresses that stayed up are promised
      const [member] = origin.split('#');
      const originCluster = member.split('/')[0];
      for (const c of clusters) {
        if (c === originCluster) continue;
        const deliveredAt = this.firstDeliveries.get(c);
        let missing = 0;
        let example = '';
        for (const [session, seqs] of sessions) {
          const st = deliveredAt?.get(`${origin}#${session}`);
          for (const seq of seqs)
            if (!st?.seen.has(seq)) {
              missing++;
              example ||= `${origin}#${session} seq ${seq}`;
            }
        }
        const allowed = abandoned.get(`${origin}>${c}`) ?? 0;
        if (missing > allowed)
          this.fail(
            `at least once: ${missing} datagrams of ${origin} never reached ${c} (${allowed} abandoned and counted), e.g. ${example}`,
          );
      }
    }
    // Link keys: every incarnation publishes its key, so none is ever missing; and while the cluster key
    // does not rotate, restarts, lease lapses and scaling never make a real frame fail its MAC (frames of
    // another incarnation are stale_epoch, checked before the MAC).
    if (this.drops.no_peer_key) this.fail(`${this.drops.no_peer_key} frames dropped as no_peer_key`);
    if (this.drops.bad_mac && !this.faults.key_rotation)
      this.fail(`${this.drops.bad_mac} real frames failed their MAC without a key rotation`);
    return {
      seed: this.o.seed,
      ok: this.failures.length === 0,
      failures: this.failures,
      simulatedMs: this.clock.now,
      accepted: this.acceptedCount,
      delivered: this.deliveredCount,
      abandoned: abandonedTotal,
      abandonedByReason: byReason,
      unroutable: this.unroutableCount,
      identityUnknown: this.identityUnknown,
      faults: this.faults,
    };
  }
}

export function simulate(o: SimOptions): SimReport {
  return new Simulation(o).run();
}

export function replayCommand(seed: number, o: Partial<SimOptions> = {}): string {
  const extra = o.durationMs ? ` --duration ${o.durationMs / 1000}` : '';
  return `npm run simulate -- --seed ${seed}${extra}`;
}
