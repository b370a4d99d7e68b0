// The peer set: one PeerLink per remote member, from etcd membership and static peers; retention of a
// departed peer's backlog; the replicas each session replicates to (rendezvous over a cluster's live
// members) and the hand-over barrier when that replica changes. No sockets, no timers: the clock and the
// frame sender are injected, so the simulator runs this exact code.
//
// Hand-over barrier (docs/protocol.md): when a session's replica in a cluster changes while the old one
// still holds unacknowledged datagrams of it, the new datagrams wait here until the old link acknowledged
// (or abandoned) the session's last position; once the old replica has been down for handoverAfterMs its
// whole backlog is abandoned and moved, in position order, to each session's new replica first.
//
// A cluster of the mesh with no member known (every record of it lapsed in etcd before this incarnation
// started, or its last member's retention ran out) has nowhere to send to: a session's datagrams for it
// wait here, per session and bounded, until a member appears, then go to the session's replica there in
// order. The mesh's clusters come from etcd's epoch keys (they outlive every incarnation) and from every
// member record seen; what overflows, or waits when the session closes or the process stops, is counted
// (`no_member`) against that cluster.
//
// Timers (docs/protocol.md "Timers"): each link has one deadline (PeerLink.nextDeadline, plus its
// hand-over time here), kept in a binary min-heap of links, as quic-go arms one alarm per connection at
// its earliest loss/PTO/ACK time. The owner arms one OS timer at nextDeadline() and calls service(now),
// which runs only the links whose deadline passed. A cached deadline is recomputed when its link was
// touched: a frame from the peer (touch), a flush (flushDirty), a service, a membership change, and any
// change of the targets (a state change elsewhere in its cluster decides whether a down link's backlog
// can move). A heap rather than a scan: the owner asks for the next deadline after every event batch,
// and a mesh can have tens to hundreds of links; with the heap that question costs O(1) plus O(log n)
// per link the batch touched. The simulator checks after every event that no cached deadline is later
// than a fresh one (a missed wake-up).
import { rendezvous, mix32 } from '../delivery/hashRing.ts';
import type { MemberRecord } from '../coordination/keys.ts';
import { protocolParams, type ProtocolParams } from '../protocol/params.ts';
import { announcedSession, CONTROL_SESSION } from '../delivery/sessionAnnounce.ts';
import { RECORD_HEADER_BYTES } from '../protocol/frame.ts';
import { PeerLink, type PeerEndpoint } from './peerLink.ts';

/** Same key in every cluster for one session, so equal backend lists give the same backend index. */
export function sessionHashKey(originHash: number, epoch: number, session: number): number {
  return mix32(originHash ^ Math.imul(epoch, 0x9e3779b1) ^ mix32(session));
}

export interface LinkEntry {
  link: PeerLink;
  static: boolean;
  departedAt: number | undefined;
  /** The peer's epoch came from its etcd record: frames claiming a newer one wait for the record. */
  epochFromMembership: boolean;
  /**
   * From the peer's member record: its incarnation's public key and our X25519 secret with it (computed
   * once per peer incarnation). null: its record has no key (an older replicator); undefined: no record
   * seen (a static peer), whose link keeps the cluster-key-only derivation (docs/protocol.md, "Keys").
   */
  peerKey?: PeerKey | null;
  /** Cached next deadline (PeerSet.deadlineOf) and place in the timer heap (-1: not in it). */
  deadline: number;
  heapIndex: number;
}

export interface PeerKey {
  /** The incarnation the key belongs to: frames of any other sender epoch cannot verify under it. */
  epoch: number;
  publicKey: string;
  /** Undefined when the key is unusable (counted no_peer_key, as a missing one). */
  secret: Buffer | undefined;
}

/** Where one session's datagrams go in one remote cluster. */
export interface Placement {
  cluster: string;
  link: PeerLink;
  /** Last position of this session on `link` (-1: none yet). */
  lastPos: number;
  /** Barrier: datagrams wait until `waitFor.link` settled position `waitFor.pos`. */
  waitFor?: { link: PeerLink; pos: number };
  held?: Array<{ seq: number; payload: Buffer }>;
}

/** What the peer set needs of an origin session. */
export interface OriginSession {
  id: number;
  hashKey: number;
  placements: Placement[];
  placementsVersion: number;
  /** Datagrams for clusters of the mesh with no member known yet, in order (see the header). */
  waiting?: Map<string, Array<{ seq: number; payload: Buffer }>>;
}

/** Reason counted when datagrams for a cluster without any known member are given up. */
export const NO_MEMBER = 'no_member';

export interface PeerSetOptions {
  member: string;
  cluster: string;
  epoch: number;
  selfHash: number;
  retransmitBufferBytes: () => number;
  maxFrameBytes: () => number;
  send: (frame: Buffer, port: number, address: string, to: string) => void;
  log: (level: 'info' | 'warn', obj: Record<string, unknown>, msg: string) => void;
  /**
   * A session announcement (a control record, delivery/sessionAnnounce.ts) for s, to put on a link ahead
   * of s's datagrams that the peer set moves there on its own (a hand-over's moved backlog, datagrams
   * that waited for a member): the ingress announces only ahead of new datagrams. Undefined when the
   * session identity mode sends none.
   */
  announce?: (s: OriginSession) => { seq: number; payload: Buffer } | undefined;
  params?: ProtocolParams;
  /**
   * Most datagrams one session holds behind a barrier or for a member-less cluster; beyond, its oldest
   * are abandoned (counted). All sessions together hold at most retransmitBufferBytes.
   */
  maxHeldPerSession?: number;
  /** X25519 with our own private key (protocol/memberKeys.ts linkSecret); undefined: an unusable key. */
  linkSecret?: (publicKey: string) => Buffer | undefined;
}

export class PeerSet {
  readonly links = new Map<string, LinkEntry>();
  private remoteClusters = new Map<string, PeerLink[]>();
  targetsVersion = 0;
  /** Next position of links that were removed, so a rebuilt link for this origin epoch continues (D4). */
  private readonly resume = new Map<string, number>();
  /** Totals of removed links, so counters never go backwards. */
  readonly retired = new Map<
    string,
    { replicated: number; retransmits: number; backlogDropped: number; abandoned: Record<string, number> }
  >();
  readonly barriers = new Set<OriginSession>();
  /** Live origin sessions by id: a moved backlog goes where each session's newer datagrams go. */
  private readonly sessions = new Map<number, OriginSession>();
  readonly dirty = new Set<PeerLink>();
  /** Links of members that left the membership (kept for their retention, not chosen for sessions). */
  private readonly departed = new Set<PeerLink>();
  /** Every remote cluster of the mesh this process knows of (it only grows within an incarnation). */
  readonly clusters = new Set<string>();
  /** Known clusters without any link: sessions' datagrams for them wait (see the header). */
  private unlinked: string[] = [];
  /** Sessions with datagrams waiting for a cluster without members. */
  private readonly waitingSessions = new Set<OriginSession>();
  /** Datagrams waiting for a member, per cluster, and those given up (`no_member`), per cluster. */
  readonly waitingCount = new Map<string, number>();
  readonly noMemberAbandoned = new Map<string, number>();
  /** Links whose cached deadline may be stale, and the min-heap of links by cached deadline. */
  private readonly stale = new Set<LinkEntry>();
  private readonly heap: LinkEntry[] = [];
  private timersVersion = -1;
  /** Link services run by service() (each one a link whose deadline had passed). */
  serviced = 0;
  private readonly params: ProtocolParams;
  private readonly maxHeld: number;
  /** Bytes held behind barriers and for member-less clusters, all sessions (bounded, see maxHeldPerSession). */
  heldBytes = 0;

  constructor(private readonly o: PeerSetOptions) {
    this.params = o.params ?? protocolParams;
    this.maxHeld = o.maxHeldPerSession ?? 65_536;
  }

  /**
   * `publicKey` comes with a member record only: a string, or null for a record without one (an older
   * replicator); undefined leaves what the entry knows (a static peer's config says nothing about keys).
   */
  upsert(
    peer: PeerEndpoint,
    isStatic: boolean,
    now: number,
    epoch?: number,
    publicKey?: string | null,
  ): void {
    if (peer.id === this.o.member || peer.cluster === this.o.cluster) return;
    const e = this.links.get(peer.id);
    if (e) {
      if (publicKey !== undefined && epoch !== undefined) this.learnKey(e, epoch, publicKey);
      e.link.peer = peer;
      e.departedAt = undefined;
      this.departed.delete(e.link);
      e.static ||= isStatic;
      this.stale.add(e);
      if (epoch !== undefined) {
        e.epochFromMembership = true;
        if (e.link.observePeerEpoch(epoch, now))
          this.o.log('warn', { peer: peer.id, epoch }, 'peer restarted; resending what it had not delivered');
      }
      return;
    }
    const link = new PeerLink(
      peer,
      {
        sender: this.o.member,
        epoch: this.o.epoch,
        maxBytes: this.o.retransmitBufferBytes(),
        maxFrameBytes: this.o.maxFrameBytes(),
        params: this.params,
        start: this.resume.get(peer.id) ?? 0,
        peerEpoch: epoch,
      },
      { send: (frame, port, address) => this.o.send(frame, port, address, peer.id) },
      now,
    );
    const entry: LinkEntry = {
      link,
      static: isStatic,
      departedAt: undefined,
      epochFromMembership: epoch !== undefined,
      deadline: Infinity,
      heapIndex: -1,
    };
    if (publicKey !== undefined && epoch !== undefined) this.learnKey(entry, epoch, publicKey);
    this.links.set(peer.id, entry);
    this.stale.add(entry);
    this.o.log('info', { peer: peer.id, address: `${peer.address}:${peer.port}` }, 'peer joined');
    this.rebuildTargets();
  }

  /** A record's key for its incarnation; the X25519 runs only when the key changes (a new incarnation). */
  private learnKey(e: LinkEntry, epoch: number, publicKey: string | null): void {
    const k = e.peerKey;
    if (k && epoch < k.epoch) return; // an older record never replaces a newer incarnation's key
    if (publicKey === null) {
      e.peerKey = null;
      return;
    }
    if (k && k.publicKey === publicKey) {
      k.epoch = epoch;
      return;
    }
    e.peerKey = { epoch, publicKey, secret: this.o.linkSecret?.(publicKey) };
  }

  applyMembers(members: MemberRecord[], now: number): void {
    const seen = new Set<string>();
    for (const m of members) {
      seen.add(m.id);
      this.upsert(
        { id: m.id, cluster: m.cluster, address: m.address, port: m.port },
        false,
        now,
        m.epoch,
        m.publicKey ?? null,
      );
    }
    for (const [id, e] of this.links) {
      if (!seen.has(id) && !e.static && e.departedAt === undefined) {
        // Keep its backlog for a while: a replica that restarts under the same name catches up.
        e.departedAt = now;
        this.departed.add(e.link);
        this.o.log('warn', { peer: id, lag: e.link.lag }, 'peer left the membership; keeping its backlog');
      }
    }
    this.rebuildTargets();
  }

  /** Known clusters of the mesh without any member known now (datagrams for them wait). */
  get clustersWithoutMembers(): readonly string[] {
    return this.unlinked;
  }

  /** The mesh's clusters as etcd knows them (its epoch keys): datagrams for one without members wait. */
  applyClusters(names: Iterable<string>): void {
    let added = false;
    for (const c of names)
      if (c !== this.o.cluster && !this.clusters.has(c)) {
        this.clusters.add(c);
        added = true;
      }
    if (added) this.rebuildTargets();
  }

  rebuildTargets(): void {
    const byCluster = new Map<string, PeerLink[]>();
    for (const e of this.links.values()) {
      const list = byCluster.get(e.link.peer.cluster) ?? [];
      list.push(e.link);
      byCluster.set(e.link.peer.cluster, list);
      this.clusters.add(e.link.peer.cluster);
    }
    for (const list of byCluster.values()) list.sort((a, b) => a.peer.id.localeCompare(b.peer.id));
    this.remoteClusters = byCluster;
    this.unlinked = [...this.clusters].filter((c) => !byCluster.has(c));
    this.targetsVersion++;
    // A cluster that has a member again: what waited for it goes out now, in order, per session.
    if (this.waitingSessions.size > 0)
      for (const s of this.waitingSessions) {
        this.place(s);
        if (!s.waiting || s.waiting.size === 0) this.waitingSessions.delete(s);
      }
  }

  private pick(cluster: string, hashKey: number, exclude?: PeerLink): PeerLink | undefined {
    const links = this.remoteClusters.get(cluster);
    if (!links) return undefined;
    const candidates = exclude ? links.filter((l) => l !== exclude) : links;
    const live = candidates.filter((l) => l.state === 'up');
    // A member that left (a drained replica) takes no new sessions while another live one remains: it
    // still acknowledges what it holds, and its sessions move behind a barrier (chaos: a SIGTERM drain
    // stalled its sessions ~5 s, until the departed replica went down and its backlog was handed over).
    const staying = this.departed.size > 0 ? live.filter((l) => !this.departed.has(l)) : live;
    return rendezvous(
      staying.length > 0 ? staying : live.length > 0 ? live : candidates.length > 0 ? candidates : links,
      (l) => l.peer.id,
      hashKey,
    );
  }

  /** Appends one datagram of a session to its replica in every remote cluster. */
  replicate(s: OriginSession, seq: number, payload: Buffer): void {
    if (s.placementsVersion !== this.targetsVersion) this.place(s);
    const ps = s.placements;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i];
      if (p.waitFor !== undefined) {
        const held = (p.held ??= []);
        held.push({ seq, payload });
        this.heldBytes += payload.length + RECORD_HEADER_BYTES;
        while (held.length > 1 && (held.length > this.maxHeld || this.heldOverBudget())) {
          this.heldBytes -= held.shift()!.payload.length + RECORD_HEADER_BYTES;
          p.link.countAbandoned('held_overflow', 1);
        }
        continue;
      }
      p.lastPos = p.link.enqueue(s.id, seq, payload);
      this.dirty.add(p.link);
    }
    if (this.unlinked.length > 0) this.wait(s, seq, payload);
  }

  /** Keeps a datagram for each known cluster that has no member yet (bounded per session, counted). */
  private wait(s: OriginSession, seq: number, payload: Buffer): void {
    const waiting = (s.waiting ??= new Map());
    for (const cluster of this.unlinked) {
      let list = waiting.get(cluster);
      if (!list) waiting.set(cluster, (list = []));
      list.push({ seq, payload });
      this.heldBytes += payload.length + RECORD_HEADER_BYTES;
      this.waitingCount.set(cluster, (this.waitingCount.get(cluster) ?? 0) + 1);
      while (list.length > 1 && (list.length > this.maxHeld || this.heldOverBudget())) {
        this.heldBytes -= list.shift()!.payload.length + RECORD_HEADER_BYTES;
        this.waitingCount.set(cluster, this.waitingCount.get(cluster)! - 1);
        this.countNoMember(cluster, 1);
      }
    }
    this.waitingSessions.add(s);
  }

  private heldOverBudget(): boolean {
    return this.heldBytes > this.o.retransmitBufferBytes();
  }

  /** Datagrams leave a held or waiting list (sent on, or given up). */
  private unhold(list: ReadonlyArray<{ payload: Buffer }> | undefined): void {
    if (list) for (const h of list) this.heldBytes -= h.payload.length + RECORD_HEADER_BYTES;
  }

  /** Puts s's announcement on `link` (ahead of datagrams of s the peer set sends there on its own). */
  private announceOn(s: OriginSession, link: PeerLink): void {
    const a = this.o.announce?.(s);
    if (a) link.enqueue(CONTROL_SESSION, a.seq, a.payload);
  }

  private countNoMember(cluster: string, n: number): void {
    if (n > 0) this.noMemberAbandoned.set(cluster, (this.noMemberAbandoned.get(cluster) ?? 0) + n);
  }

  /** Gives up what a session keeps for member-less clusters (it closed, or the process stops). */
  private dropWaiting(s: OriginSession): number {
    let n = 0;
    for (const [cluster, list] of s.waiting ?? []) {
      this.countNoMember(cluster, list.length);
      this.unhold(list);
      this.waitingCount.set(cluster, (this.waitingCount.get(cluster) ?? 0) - list.length);
      n += list.length;
    }
    s.waiting = undefined;
    this.waitingSessions.delete(s);
    return n;
  }

  /** The session's replica in every remote cluster (chosen again if the peer set changed). */
  placementsOf(s: OriginSession): readonly Placement[] {
    if (s.placementsVersion !== this.targetsVersion) this.place(s);
    return s.placements;
  }

  /**
   * A control record about session s (a session announcement, core/deliverySink.ts) to the session's
   * replica in every remote cluster, ahead of its next datagram. It does not wait behind a hand-over
   * barrier: it carries state, not a datagram, and the new replica needs it before the held datagrams.
   */
  replicateControl(s: OriginSession, session: number, seq: number, payload: Buffer): void {
    const ps = this.placementsOf(s);
    for (let i = 0; i < ps.length; i++) {
      ps[i].link.enqueue(session, seq, payload);
      this.dirty.add(ps[i].link);
    }
  }

  /** Chooses the session's replicas again; a changed replica gets a barrier behind the old one's backlog. */
  private place(s: OriginSession): void {
    // First placement: the session is live (a hand-over routes its moved backlog by its placements),
    // whichever call placed it first (the ingress looks placements up before replicating).
    if (s.placementsVersion < 0) this.sessions.set(s.id, s);
    const next: Placement[] = [];
    for (const cluster of this.remoteClusters.keys()) {
      const old = s.placements.find((p) => p.cluster === cluster);
      // No live replica there: stay where the session is (moving would only wait behind a dead backlog).
      if (old && !this.remoteClusters.get(cluster)?.some((l) => l.state === 'up')) {
        next.push(old);
        continue;
      }
      const link = this.pick(cluster, s.hashKey);
      if (!link) continue;
      if (!old || old.link === link) {
        next.push(old ?? { cluster, link, lastPos: -1 });
        continue;
      }
      const p: Placement = { cluster, link, lastPos: -1 };
      if (old.waitFor !== undefined && old.waitFor.link !== link) {
        p.waitFor = old.waitFor; // still behind the same unsettled backlog
        p.held = old.held;
      } else if (old.waitFor !== undefined) {
        // Back to the replica it waited for: its own link keeps the order; send what was held.
        this.sendKept(s, p, old.held);
      } else if (old.lastPos >= old.link.low) {
        p.waitFor = { link: old.link, pos: old.lastPos };
        p.held = [];
      }
      if (p.waitFor) this.barriers.add(s);
      next.push(p);
    }
    // Datagrams that waited for a cluster without members go to the session's replica there, first.
    if (s.waiting)
      for (const p of next) {
        const list = s.waiting.get(p.cluster);
        if (!list) continue;
        s.waiting.delete(p.cluster);
        this.waitingCount.set(p.cluster, (this.waitingCount.get(p.cluster) ?? 0) - list.length);
        if (p.waitFor !== undefined) {
          p.held = [...list, ...(p.held ?? [])]; // still held: the bytes stay counted
          continue;
        }
        this.announceOn(s, p.link);
        this.sendKept(s, p, list);
      }
    s.placements = next;
    s.placementsVersion = this.targetsVersion;
  }

  /** Releases barriers whose old backlog is settled (acknowledged, abandoned or moved). */
  checkBarriers(): void {
    for (const s of this.barriers) {
      let waiting = false;
      for (const p of s.placements) {
        if (p.waitFor === undefined) continue;
        if (p.waitFor.link.low > p.waitFor.pos) this.lift(s, p);
        else waiting = true;
      }
      if (!waiting) this.barriers.delete(s);
    }
  }

  /** A session is closing: whatever it holds goes out now (nothing accepted is dropped silently). */
  releaseSession(s: OriginSession): void {
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
    if (s.waiting) this.dropWaiting(s);
    if (!this.barriers.delete(s)) return;
    for (const p of s.placements) if (p.waitFor !== undefined) this.lift(s, p);
  }

  /** p's barrier is settled (or its session closes): what it held goes out now. */
  private lift(s: OriginSession, p: Placement): void {
    this.sendKept(s, p, p.held);
    p.waitFor = undefined;
    p.held = undefined;
  }

  /** Datagrams of s that were kept (behind a barrier, or for a member) go to p's link now, in order. */
  private sendKept(
    s: OriginSession,
    p: Placement,
    list: Array<{ seq: number; payload: Buffer }> | undefined,
  ): void {
    if (!list) return;
    this.unhold(list);
    for (const h of list) p.lastPos = p.link.enqueue(s.id, h.seq, h.payload);
    this.dirty.add(p.link);
  }

  /**
   * Services the links whose deadline passed: their timers (PeerLink.tick), and a replica down for
   * handoverAfterMs whose cluster has another live replica has its backlog moved there (each session's
   * records to its own new replica, in position order). Links with nothing due are not touched.
   * Returns whether a link changed state.
   */
  service(now: number): boolean {
    this.refreshDeadlines();
    let changed = false;
    const h = this.heap;
    // A serviced link is not due again before the next granularity step (no loop within one alarm).
    const floor = now + this.params.timerGranularityMs;
    while (h.length > 0 && h[0].deadline <= now) {
      const e = h[0];
      const link = e.link;
      const before = link.state;
      link.tick(now);
      this.serviced++;
      if (link.state !== before) {
        changed = true;
        this.targetsVersion++;
        this.o.log('warn', { peer: link.peer.id, state: link.state, lag: link.lag }, `peer ${link.state}`);
      }
      if (now >= this.handoverAt(e)) this.moveBacklog(link);
      this.setDeadline(e, Math.max(this.deadlineOf(e), floor));
    }
    // A state change can make another link's backlog movable (or not): nextDeadline() recomputes all.
    return changed;
  }

  /** The earliest deadline of any link (Infinity without links). */
  nextDeadline(): number {
    this.refreshDeadlines();
    return this.heap.length > 0 ? this.heap[0].deadline : Infinity;
  }

  /** A frame from this link's peer was processed: its deadline is computed again. */
  touch(e: LinkEntry): void {
    this.stale.add(e);
  }

  /** The link's next deadline, computed afresh (the heap caches it). */
  deadlineOf(e: LinkEntry): number {
    return Math.min(e.link.nextDeadline(), this.handoverAt(e));
  }

  /** When a down link's backlog moves to another replica of its cluster (only while one is up). */
  private handoverAt(e: LinkEntry): number {
    const l = e.link;
    if (l.state !== 'down' || l.lag <= 0) return Infinity;
    if (this.pick(l.peer.cluster, 0, l)?.state !== 'up') return Infinity;
    return l.lastHeardAt + this.params.handoverAfterMs;
  }

  private refreshDeadlines(): void {
    if (this.timersVersion !== this.targetsVersion) {
      this.timersVersion = this.targetsVersion;
      for (const e of this.links.values()) this.stale.add(e);
    }
    if (this.stale.size === 0) return;
    for (const e of this.stale)
      if (this.links.get(e.link.peer.id) === e) this.setDeadline(e, this.deadlineOf(e));
    this.stale.clear();
  }

  // ---------------------------------------------------------------- the timer heap

  private setDeadline(e: LinkEntry, d: number): void {
    const h = this.heap;
    e.deadline = d;
    if (e.heapIndex < 0) {
      e.heapIndex = h.length;
      h.push(e);
    }
    this.siftUp(e.heapIndex);
    this.siftDown(e.heapIndex);
  }

  private removeFromHeap(e: LinkEntry): void {
    const i = e.heapIndex;
    if (i < 0) return;
    const h = this.heap;
    const last = h.pop()!;
    e.heapIndex = -1;
    if (last === e) return;
    h[i] = last;
    last.heapIndex = i;
    this.siftUp(i);
    this.siftDown(last.heapIndex);
  }

  private siftUp(i: number): void {
    const h = this.heap;
    const e = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].deadline <= e.deadline) break;
      h[i] = h[p];
      h[i].heapIndex = i;
      i = p;
    }
    h[i] = e;
    e.heapIndex = i;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const e = h[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r].deadline < h[l].deadline ? r : l;
      if (h[c].deadline >= e.deadline) break;
      h[i] = h[c];
      h[i].heapIndex = i;
      i = c;
    }
    h[i] = e;
    e.heapIndex = i;
  }

  private moveBacklog(from: PeerLink): void {
    const records = from.abandon('handover');
    const epoch = this.o.epoch;
    /** Live sessions announced on their new link during this move (ahead of their first moved datagram). */
    const announced = new Set<OriginSession>();
    for (const r of records) {
      // A live session's records go where its newer datagrams go (or wait), ahead of them: one link, in
      // order. Sessions that closed go to their rendezvous choice among the others. A control record
      // (a session announcement) goes where the session it announces goes, so that replica knows the
      // session's client before its moved datagrams.
      const control = r.session === CONTROL_SESSION;
      const id = control ? (announcedSession(r.payload) ?? CONTROL_SESSION) : r.session;
      const s = this.sessions.get(id);
      let to: PeerLink | undefined;
      let p: Placement | undefined;
      if (s) {
        if (s.placementsVersion !== this.targetsVersion) this.place(s);
        p = s.placements.find((x) => x.cluster === from.peer.cluster);
        if (p && p.link !== from) to = p.link;
      }
      to ??= this.pick(from.peer.cluster, sessionHashKey(this.o.selfHash, epoch, id), from);
      if (!to || to === from) {
        from.countAbandoned('peer_gone', 1); // nowhere else to go in that cluster
        continue;
      }
      if (!control && s && !announced.has(s)) {
        announced.add(s);
        this.announceOn(s, to);
      }
      const pos = to.enqueue(r.session, r.seq, r.payload);
      if (control) {
        this.dirty.add(to);
        continue; // not a datagram of the session: its last position there is unchanged
      }
      // The moved records are the session's on `to` now, also while it waits behind a barrier: a later
      // change of replica must wait for them (simulator seed 2022: it did not when nothing new was held).
      if (p && p.link === to) p.lastPos = pos;
      this.dirty.add(to);
    }
    this.o.log(
      'warn',
      { peer: from.peer.id, moved: records.length },
      'peer down too long: its backlog moved to another replica',
    );
  }

  /**
   * The end-of-turn flush: barriers whose old backlog settled are released, then every link that got new
   * data (or an ACK that may have opened its window) sends what it can; their deadlines are recomputed.
   */
  flushDirty(now: number): void {
    if (this.barriers.size > 0) this.checkBarriers();
    for (const link of this.dirty) {
      link.flush(now);
      const e = this.links.get(link.peer.id);
      if (e?.link === link) this.stale.add(e);
    }
    this.dirty.clear();
  }

  /** Removes peers gone for longer than the retention; their backlog is abandoned and counted. */
  sweep(now: number): void {
    for (const [id, e] of this.links) {
      if (e.departedAt !== undefined && now - e.departedAt > this.params.peerRetentionMs) {
        const lost = e.link.close('peer_gone');
        this.resume.set(id, e.link.next);
        const c = e.link.counters;
        const prev = this.retired.get(id);
        this.retired.set(id, {
          replicated: c.replicated + (prev?.replicated ?? 0),
          retransmits: c.retransmits + (prev?.retransmits ?? 0),
          backlogDropped: c.backlogDropped + (prev?.backlogDropped ?? 0),
          abandoned: sumRecords(prev?.abandoned, c.abandoned),
        });
        this.links.delete(id);
        this.departed.delete(e.link);
        this.removeFromHeap(e);
        this.stale.delete(e);
        this.o.log('warn', { peer: id, lost }, 'peer gone for longer than the retention: backlog dropped');
        this.rebuildTargets();
      }
    }
  }

  /** Datagrams not yet acknowledged by any peer (what a drain waits for). */
  get unacknowledged(): number {
    let n = 0;
    for (const e of this.links.values()) n += e.link.lag;
    return n;
  }

  /** Stop: what is left is abandoned and counted (reason shutdown; no_member for what waited for a member). */
  close(): number {
    let n = 0;
    for (const e of this.links.values()) n += e.link.close('shutdown');
    for (const s of [...this.waitingSessions]) n += this.dropWaiting(s);
    for (const s of this.barriers)
      for (const p of s.placements) {
        const k = p.held?.length ?? 0;
        p.link.countAbandoned('shutdown', k);
        this.unhold(p.held);
        p.held = p.waitFor = undefined;
        n += k;
      }
    this.barriers.clear();
    return n;
  }

  /** Datagrams held behind hand-over barriers (what a drain waits for too). */
  get heldBehindBarriers(): number {
    let n = 0;
    for (const s of this.barriers) for (const p of s.placements) n += p.held?.length ?? 0;
    return n;
  }

  /** Datagrams waiting for a member of a cluster that has none (what a drain waits for too). */
  get waitingForMembers(): number {
    let n = 0;
    for (const v of this.waitingCount.values()) n += v;
    return n;
  }
}

function sumRecords(
  a: Record<string, number> | undefined,
  b: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = { ...(a ?? {}) };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}
