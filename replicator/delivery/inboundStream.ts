// One inbound replication stream (one origin replicator, one epoch) at a receiver: dedupes by the bitmap
// window, delivers each session's datagrams in order, holds out-of-order ones in a bounded reorder buffer.
// It never skips a gap on its own (protocol v2): only the sender abandons positions, through its low-water
// mark, and counts them; a receiver that guessed would throw away data the origin still holds and later
// drop its retransmissions as duplicates. Nothing is kept per loss event. Pure: delivery is a callback,
// time is passed in.
//
// The ordering rule: a datagram is deliverable when it is its session's next, or when every stream
// position below it is settled (received or skipped). The origin appends a session's datagrams in order,
// so once the stream prefix is settled its session predecessors can never arrive any more: holding it
// longer would only add latency. A receiver that started mid-stream (restart) needs no session history.
// A session this receiver has no cursor for (its first datagram here) always waits for the prefix: the
// origin sends the session's announcement before it (docs/protocol.md, control records), so the delivery
// sink knows the client's address when the datagram reaches the backend.
//
// Control records (session 0, session announcements) are applied on arrival, in any order: each is
// complete in itself, and announcements of different sessions need no order among them (one shared
// session-0 order counted a moved older announcement `late`).
import type { DataRecord } from '../protocol/frame.ts';
import { CONTROL_SESSION } from './sessionAnnounce.ts';
import { ReceiveWindow, WindowVerdict } from '../protocol/receiveWindow.ts';

export interface InboundOptions {
  windowSize: number;
  reorderLimit: number;
}

export interface InboundCounters {
  received: number;
  delivered: number;
  duplicates: number;
  beyondWindow: number;
  /** Positions the sender abandoned (and counted) that never arrived here, settled by its low-water mark. */
  senderSkipped: number;
  /**
   * Datagrams held here below an abandoning low-water mark: discarded, not delivered, because the origin
   * may have handed them to another replica of this cluster already (docs/protocol.md, hand-over).
   */
  senderAbandoned: number;
  /**
   * Datagrams refused (not recorded, not acknowledged) because the reorder buffer was full: flow control,
   * not loss — the sender retransmits them once the gap ahead of them has filled.
   */
  reorderFull: number;
  late: number;
}

export type Deliver = (session: number, seq: number, payload: Buffer) => void;

interface Cursor {
  /** Set once the session delivered here (a cursor made for waiting datagrams is not: see the header). */
  live?: true;
  next: number;
  lastSeen: number;
  /** seq -> stream position of datagrams waiting for this session's turn. */
  waiting?: Map<number, number>;
}

interface Pending {
  session: number;
  seq: number;
  payload: Buffer;
}

export class InboundStream {
  readonly window: ReceiveWindow;
  readonly counters: InboundCounters = {
    received: 0,
    delivered: 0,
    duplicates: 0,
    beyondWindow: 0,
    senderSkipped: 0,
    senderAbandoned: 0,
    reorderFull: 0,
    late: 0,
  };
  private readonly cursors = new Map<number, Cursor>();
  private readonly pending = new Map<number, Pending>();
  /** New positions since the last ACK, and whether an ACK is owed now (gap, duplicate). */
  unacked = 0;
  ackUrgent = false;
  lastActivity: number;
  /** Largest DATA packet number received and when: the ACK names it (RTT sample, loss detection). */
  largestPacket = -1;
  largestPacketAt = 0;

  constructor(
    readonly origin: string,
    readonly epoch: number,
    startPos: number,
    private readonly opts: InboundOptions,
    private readonly deliver: Deliver,
    now: number,
  ) {
    this.window = new ReceiveWindow(opts.windowSize, startPos);
    this.lastActivity = now;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get sessionCount(): number {
    return this.cursors.size;
  }

  /** A DATA frame's packet number arrived (call once per frame, before its records). */
  notePacket(packet: number, now: number): void {
    if (packet > this.largestPacket) {
      this.largestPacket = packet;
      this.largestPacketAt = now;
    }
  }

  receive(rec: DataRecord, now: number): void {
    this.lastActivity = now;
    const s = rec.streamSeq;
    const verdict = this.window.check(s);
    if (verdict === WindowVerdict.Duplicate) {
      this.counters.duplicates++;
      this.ackUrgent = true; // our ACK was probably lost: repeat it
      return;
    }
    if (verdict === WindowVerdict.Beyond) {
      this.counters.beyondWindow++;
      return;
    }
    // A control record is recorded like any position and handed on at once (never held, never late).
    const control = rec.session === CONTROL_SESSION;
    const cursor = control ? undefined : this.cursors.get(rec.session);
    const deliverable =
      control || (cursor?.live === true && rec.seq === cursor.next) || s === this.window.base;
    if (!deliverable && this.pending.size >= this.opts.reorderLimit) {
      // Full: refuse it unrecorded rather than give up on a gap that a retransmission is about to fill.
      // Whatever fills the gap is deliverable and never refused, so this cannot deadlock.
      this.counters.reorderFull++;
      return;
    }
    this.counters.received++;
    this.unacked++;
    if (s > this.window.highest + 1) this.ackUrgent = true; // a gap: tell the sender early
    const b0 = this.window.base;
    this.window.mark(s);
    if (control) {
      this.counters.delivered++;
      this.deliver(rec.session, rec.seq, rec.payload);
    } else if (cursor && rec.seq < cursor.next) {
      this.counters.late++;
    } else if ((cursor?.live === true && rec.seq === cursor.next) || s < this.window.base) {
      this.deliverNow(rec.session, rec.seq, rec.payload, now);
    } else {
      const c = cursor ?? this.newCursor(rec.session, now);
      (c.waiting ??= new Map()).set(rec.seq, s);
      this.pending.set(s, { session: rec.session, seq: rec.seq, payload: rec.payload });
    }
    if (this.window.base > b0 && this.pending.size > 0) this.release(b0, this.window.base, now);
  }

  /**
   * The sender abandoned everything below lowWater (and counted it): positions that never arrived are
   * settled and what waited behind them is delivered in stream order. With `discard` (the sender handed
   * that backlog to another replica of this cluster) datagrams held below it are discarded instead, so
   * this replica never delivers them after the other one delivered newer ones.
   */
  applyLowWater(lowWater: number, now: number, discard = false): void {
    if (lowWater <= this.window.base) return;
    const b0 = this.window.base;
    if (discard && this.pending.size > 0) {
      for (const [pos, p] of this.pending) {
        if (pos >= lowWater) continue;
        this.pending.delete(pos);
        this.cursors.get(p.session)?.waiting?.delete(p.seq);
        this.counters.senderAbandoned++;
      }
    }
    this.counters.senderSkipped += this.window.skipTo(lowWater);
    this.release(b0, this.window.base, now);
  }

  /**
   * The origin incarnation is gone (a newer one spoke): nothing below will ever be resent, so everything
   * held is delivered in stream order, as the origin would have had it, and the stream is settled.
   */
  retire(now: number): void {
    const b0 = this.window.base;
    const end = this.window.highest + 1;
    this.counters.senderSkipped += this.window.skipTo(end);
    this.release(b0, end, now);
  }

  /** Entries this stream holds besides its fixed-size bitmap (bounded: reorder limit + live sessions). */
  get heldEntries(): number {
    return this.pending.size + this.cursors.size;
  }

  /** Forgets idle sessions with nothing waiting. */
  sweepSessions(now: number, idleMs: number): void {
    for (const [id, c] of this.cursors) {
      if (now - c.lastSeen > idleMs && !(c.waiting && c.waiting.size > 0)) this.cursors.delete(id);
    }
  }

  private newCursor(session: number, now: number): Cursor {
    const c: Cursor = { next: 0, lastSeen: now };
    this.cursors.set(session, c);
    return c;
  }

  private deliverNow(session: number, seq: number, payload: Buffer, now: number): void {
    const c = this.cursors.get(session) ?? this.newCursor(session, now);
    c.live = true;
    c.next = seq + 1;
    c.lastSeen = now;
    this.counters.delivered++;
    this.deliver(session, seq, payload);
    // Datagrams of this session that were waiting for exactly this one can follow now.
    const w = c.waiting;
    if (w && w.size > 0) {
      let pos = w.get(c.next);
      while (pos !== undefined) {
        const p = this.pending.get(pos)!;
        w.delete(c.next);
        this.pending.delete(pos);
        c.next = p.seq + 1;
        this.counters.delivered++;
        this.deliver(session, p.seq, p.payload);
        pos = w.get(c.next);
      }
    }
  }

  /** Positions [from, to) became settled: held datagrams among them are deliverable, in stream order. */
  private release(from: number, to: number, now: number): void {
    if (this.pending.size === 0) return;
    if (to - from <= this.pending.size * 4) {
      for (let s = from; s < to; s++) {
        const p = this.pending.get(s);
        if (p) this.releaseOne(s, p, now);
      }
    } else {
      const ready = [...this.pending.keys()].filter((s) => s < to).sort((a, b) => a - b);
      for (const s of ready) {
        const p = this.pending.get(s);
        if (p) this.releaseOne(s, p, now);
      }
    }
  }

  private releaseOne(pos: number, p: Pending, now: number): void {
    this.pending.delete(pos);
    const c = this.cursors.get(p.session);
    c?.waiting?.delete(p.seq);
    if (c && p.seq < c.next) {
      this.counters.late++;
      return;
    }
    this.deliverNow(p.session, p.seq, p.payload, now);
  }

  /** Fields for the next ACK frame. */
  ackState(
    maxRanges: number,
    now: number,
  ): { base: number; largestPacket: number; ackDelayUs: number; ranges: Array<[number, number]> } {
    return {
      base: this.window.base,
      largestPacket: Math.max(0, this.largestPacket),
      ackDelayUs: Math.max(0, (now - this.largestPacketAt) * 1000),
      ranges: this.window.ranges(maxRanges),
    };
  }
}
