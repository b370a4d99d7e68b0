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
  /** Cached next deadline (PeerSet.deadlineOf) and place in the timer heap (-1: not in it). */
  deadline: number;
  heapIndex: number;
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
}

export interface PeerSetOptions {
  member: string;
  cluster: string;
  epoch: number;
  selfHash: number;
  retransmitBufferBytes: () => number;
  maxFrameBytes: () => number;
  send: (frame: Buffer, port: number, address: string, to: string) => void;
  log: (level: 'info' | 'warn', obj: Record<string, unknown>, msg: string) => void;
  params?: ProtocolParams;
  /** Most datagrams one session holds behind a barrier; beyond, the oldest are abandoned (counted). */
  maxHeldPerSession?: number;
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
  /** Links whose cached deadline may be stale, and the min-heap of links by cached deadline. */
  private readonly stale = new Set<LinkEntry>();
  private readonly heap: LinkEntry[] = [];
  private timersVersion = -1;
  /** Link services run by service() (each one a link whose deadline had passed). */
  serviced = 0;
  private readonly params: ProtocolParams;
  private readonly maxHeld: number;

  constructor(private readonly o: PeerSetOptions) {
    this.params = o.params ?? protocolParams;
    this.maxHeld = o.maxHeldPerSession ?? 4096;
  }

  upsert(peer: PeerEndpoint, isStatic: boolean, now: number, epoch?: number): void {
    if (peer.id === this.o.member || peer.cluster === this.o.cluster) return;
    const e = this.links.get(peer.id);
    if (e) {
      e.link.peer = peer;
      e.departedAt = undefined;
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
    this.links.set(peer.id, entry);
    this.stale.add(entry);
    this.o.log('info', { peer: peer.id, address: `${peer.address}:${peer.port}` }, 'peer joined');
    this.rebuildTargets();
  }

  applyMembers(members: MemberRecord[], now: number): void {
    const seen = new Set<string>();
    for (const m of members) {
      seen.add(m.id);
      this.upsert({ id: m.id, cluster: m.cluster, address: m.address, port: m.port }, false, now, m.epoch);
    }
    for (const [id, e] of this.links) {
      if (!seen.has(id) && !e.static && e.departedAt === undefined) {
        // Keep its backlog for a while: a replica that restarts under the same name catches up.
        e.departedAt = now;
        this.o.log('warn', { peer: id, lag: e.link.lag }, 'peer left the membership; keeping its backlog');
      }
    }
    this.rebuildTargets();
  }

  rebuildTargets(): void {
    const byCluster = new Map<string, PeerLink[]>();
    for (const e of this.links.values()) {
      const list = byCluster.get(e.link.peer.cluster) ?? [];
      list.push(e.link);
      byCluster.set(e.link.peer.cluster, list);
    }
    for (const list of byCluster.values()) list.sort((a, b) => a.peer.id.localeCompare(b.peer.id));
    this.remoteClusters = byCluster;
    this.targetsVersion++;
  }

  private pick(cluster: string, hashKey: number, exclude?: PeerLink): PeerLink | undefined {
    const links = this.remoteClusters.get(cluster);
    if (!links) return undefined;
    const candidates = exclude ? links.filter((l) => l !== exclude) : links;
    const live = candidates.filter((l) => l.state === 'up');
    return rendezvous(
      live.length > 0 ? live : candidates.length > 0 ? candidates : links,
      (l) => l.peer.id,
      hashKey,
    );
  }

  /** Appends one datagram of a session to its replica in every remote cluster. */
  replicate(s: OriginSession, seq: number, payload: Buffer): void {
    if (s.placementsVersion !== this.targetsVersion) {
      if (s.placementsVersion < 0) this.sessions.set(s.id, s);
      this.place(s);
    }
    const ps = s.placements;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i];
      if (p.waitFor !== undefined) {
        const held = (p.held ??= []);
        if (held.length >= this.maxHeld) {
          held.shift();
          p.link.countAbandoned('held_overflow', 1);
        }
        held.push({ seq, payload });
        continue;
      }
      p.lastPos = p.link.enqueue(s.id, seq, payload);
      this.dirty.add(p.link);
    }
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
        for (const h of old.held ?? []) p.lastPos = link.enqueue(s.id, h.seq, h.payload);
        this.dirty.add(link);
      } else if (old.lastPos >= old.link.low) {
        p.waitFor = { link: old.link, pos: old.lastPos };
        p.held = [];
      }
      if (p.waitFor) this.barriers.add(s);
      next.push(p);
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
        if (p.waitFor.link.low > p.waitFor.pos) {
          for (const h of p.held ?? []) p.lastPos = p.link.enqueue(s.id, h.seq, h.payload);
          this.dirty.add(p.link);
          p.waitFor = undefined;
          p.held = undefined;
        } else waiting = true;
      }
      if (!waiting) this.barriers.delete(s);
    }
  }

  /** A session is closing: whatever it holds goes out now (nothing accepted is dropped silently). */
  releaseSession(s: OriginSession): void {
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
    if (!this.barriers.delete(s)) return;
    for (const p of s.placements) {
      if (p.waitFor === undefined) continue;
      for (const h of p.held ?? []) p.link.enqueue(s.id, h.seq, h.payload);
      this.dirty.add(p.link);
      p.waitFor = undefined;
      p.held = undefined;
    }
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
    for (const r of records) {
      // A live session's records go where its newer datagrams go (or wait), ahead of them: one link, in
      // order. Sessions that closed go to their rendezvous choice among the others.
      const s = this.sessions.get(r.session);
      let to: PeerLink | undefined;
      let p: Placement | undefined;
      if (s) {
        if (s.placementsVersion !== this.targetsVersion) this.place(s);
        p = s.placements.find((x) => x.cluster === from.peer.cluster);
        if (p && p.link !== from) to = p.link;
      }
      to ??= this.pick(from.peer.cluster, sessionHashKey(this.o.selfHash, epoch, r.session), from);
      if (!to || to === from) {
        from.countAbandoned('peer_gone', 1); // nowhere else to go in that cluster
        continue;
      }
      const pos = to.enqueue(r.session, r.seq, r.payload);
      if (p && p.link === to && p.waitFor === undefined) p.lastPos = pos;
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

  /** Stop: what is left is abandoned and counted (reason shutdown). */
  close(): number {
    let n = 0;
    for (const e of this.links.values()) n += e.link.close('shutdown');
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
