// The outbound half of replication to one peer replicator: a stream of positions kept in a retransmit ring
// (bounded in bytes) until the peer acknowledges them. Sends in batched DATA frames inside the peer's
// receive window. Every frame gets a packet number that is never reused (protocol v2); ACKs name the
// largest packet received. Loss detection is QUIC's (RFC 9002): a position is lost when the packet that
// last carried it is `packetThreshold` packets older than the largest acknowledged one, or was sent more
// than 9/8 RTT before it. Each RTT sample comes from a newly acknowledged largest packet, so it is valid
// however many holes the position ranges cannot describe, and retransmissions need no Karn exception.
// Only this side abandons positions (overflow, a departed peer, shutdown, hand-over), counted per reason;
// the receiver learns the new low-water mark from DATA and PING frames.
// When ACKs stop coming, a probe timeout (PTO, backed off) resends only the oldest frame's worth, never
// the whole flight, so a slow receiver does not trigger a retransmission storm.
// A silent peer is marked down: nothing is sent but pings, the backlog is kept up to its bound (overflow
// counted), and on return everything unacknowledged is resent.
// No sockets here: `io.send` is injected, time is passed in.
import {
  dataHeaderBytes,
  encodeData,
  encodePing,
  RECORD_HEADER_BYTES,
  type AckFrame,
  type FrameHeader,
} from '../protocol/frame.ts';
import { TRAILER_BYTES } from '../protocol/frameAuth.ts';
import { protocolParams, type ProtocolParams } from '../protocol/params.ts';
import { RttEstimator } from '../protocol/rttEstimator.ts';

export interface PeerEndpoint {
  /** Member id: cluster/instance. */
  id: string;
  cluster: string;
  address: string;
  port: number;
}

export interface PeerLinkOptions {
  sender: string;
  epoch: number;
  maxBytes: number;
  /** The whole UDP payload, trailer included. */
  maxFrameBytes: number;
  params?: ProtocolParams;
  /** First position (a link rebuilt for the same origin epoch continues where the old one stopped). */
  start?: number;
  /** The peer's epoch when known (member record); DATA waits until it is known. */
  peerEpoch?: number;
}

/** Why the origin gave up positions for a peer (counted here, at the origin, per peer and reason). */
export type AbandonReason = 'overflow' | 'peer_gone' | 'shutdown' | 'handover' | 'held_overflow';

export interface PeerLinkCounters {
  replicated: number;
  retransmits: number;
  /** Positions abandoned for any reason (the sum of `abandoned`). */
  backlogDropped: number;
  abandoned: Record<AbandonReason, number>;
  framesSent: number;
  acksReceived: number;
}

export interface PeerIo {
  send(frame: Buffer, port: number, address: string): void;
}

const INITIAL_CAPACITY = 1024;
const PACKET_RING = 8192;
const MAX_CAPACITY = 1 << 23;

interface OutRecord {
  streamSeq: number;
  session: number;
  seq: number;
  payload: Buffer;
}

export class PeerLink {
  state: 'up' | 'down' = 'up';
  /** Lowest position not yet acknowledged (the low-water mark sent in every DATA frame). */
  low = 0;
  /** Next position to assign. */
  next = 0;
  /** Next position never sent yet. */
  sendPos = 0;
  bytes = 0;
  readonly rtt: RttEstimator;
  readonly counters: PeerLinkCounters = {
    replicated: 0,
    retransmits: 0,
    backlogDropped: 0,
    abandoned: { overflow: 0, peer_gone: 0, shutdown: 0, handover: 0, held_overflow: 0 },
    framesSent: 0,
    acksReceived: 0,
  };
  lastHeardAt: number;
  private lastPingAt = 0;
  /** Timestamps of recent PINGs: a PONG must echo one of them (a replayed or forged PONG is ignored). */
  private readonly outstandingPings: number[] = [];
  /** Consecutive probe timeouts without progress (backs the PTO off); reset by any newly acknowledged data. */
  private ptoCount = 0;
  private lastProgressAt: number;
  /** Retransmission pacing (token bucket). */
  private resendTokens: number;
  private resendRefillAt: number;
  /** References of the latest ACKs for loss detection, kept so detection can resume when tokens return. */
  private lossRefSent = -Infinity;
  private lossRefFrame = -Infinity;
  private lossPending = false;
  /**
   * Adaptive reordering window (as RACK does): when an ACK for a retransmitted position comes back
   * sooner than the path could carry the retransmission, the original was only reordered. Each such
   * spurious retransmission widens the loss thresholds; they narrow again slowly while none happen.
   */
  reorderFrames: number;
  reorderExtraMs = 0;
  spuriousRetransmits = 0;
  /** The peer's incarnation (its epoch), learnt from its PINGs and its member record. */
  peerEpoch: number | undefined;
  /** Positions below this are a resync backlog (resent after the peer came back): paced like losses. */
  private resyncEnd = 0;
  private cap = INITIAL_CAPACITY;
  private sessions = new Uint32Array(INITIAL_CAPACITY);
  /** Per-session sequence numbers: up to 2^53-1, so not a Uint32Array (issue 10 D1). */
  private seqs = new Float64Array(INITIAL_CAPACITY);
  private payloads: Array<Buffer | undefined> = new Array(INITIAL_CAPACITY);
  private sentAt = new Float64Array(INITIAL_CAPACITY);
  /** Packet number of the DATA frame that last carried each position. */
  private sentFrame = new Float64Array(INITIAL_CAPACITY);
  /** Next packet number (every frame this link sends takes one; never reused). */
  private nextPacket = 0;
  /** Send times of recent packets by number (a ring; the stored number says whether the slot is current). */
  private readonly pktNo = new Float64Array(PACKET_RING).fill(-1);
  private readonly pktAt = new Float64Array(PACKET_RING);
  /** Largest packet number the peer acknowledged in its current incarnation. */
  largestAcked = -1;
  /** Positions below this were handed to another replica: frames say so while low has not passed it. */
  private movedUpTo = -1;
  private sends = new Uint8Array(INITIAL_CAPACITY);
  private sacked = new Uint8Array(INITIAL_CAPACITY);
  private readonly params: ProtocolParams;
  private readonly frameBudget: number;

  constructor(
    public peer: PeerEndpoint,
    private readonly opts: PeerLinkOptions,
    private readonly io: PeerIo,
    now: number,
  ) {
    this.params = opts.params ?? protocolParams;
    this.rtt = new RttEstimator(this.params);
    this.lastHeardAt = now;
    this.lastProgressAt = now;
    this.resendTokens = this.params.resendBurst;
    this.reorderFrames = this.params.packetThreshold;
    this.resendRefillAt = now;
    this.frameBudget = opts.maxFrameBytes - dataHeaderBytes(opts.sender, peer.id) - TRAILER_BYTES;
    this.low = this.next = this.sendPos = this.resyncEnd = opts.start ?? 0;
    this.peerEpoch = opts.peerEpoch;
  }

  /** The next frame's header: both ends, both incarnations, a fresh packet number. */
  header(now: number): FrameHeader {
    const packet = this.nextPacket++;
    const j = packet % PACKET_RING;
    this.pktNo[j] = packet;
    this.pktAt[j] = now;
    return {
      sender: this.opts.sender,
      receiver: this.peer.id,
      senderEpoch: this.opts.epoch,
      receiverEpoch: this.peerEpoch ?? 0,
      packet,
    };
  }

  /** Datagrams accepted for this peer and not yet acknowledged. */
  get lag(): number {
    return this.next - this.low;
  }

  /** Appends a datagram; returns its position. */
  enqueue(session: number, seq: number, payload: Buffer): number {
    if (this.next - this.low >= this.cap) {
      if (this.cap < MAX_CAPACITY) this.grow();
      else this.dropOldest();
    }
    const i = this.next & (this.cap - 1);
    this.sessions[i] = session;
    this.seqs[i] = seq;
    this.payloads[i] = payload;
    this.sends[i] = 0;
    this.sacked[i] = 0;
    this.sentAt[i] = -1;
    this.next++;
    this.bytes += payload.length + RECORD_HEADER_BYTES;
    while (this.bytes > this.opts.maxBytes && this.low < this.next - 1) this.dropOldest();
    return this.next - 1;
  }

  /** Sends never-sent positions that fit in the peer's window. */
  flush(now: number): void {
    if (this.state !== 'up' || this.peerEpoch === undefined) return;
    let limit = Math.min(
      this.next,
      this.low + this.params.windowDatagrams,
      this.sendPos + this.params.maxSendPerTick,
    );
    if (this.sendPos < this.resyncEnd)
      limit = Math.min(limit, this.sendPos + this.refillResend(now), this.resyncEnd);
    if (this.sendPos >= limit) return;
    const batch: OutRecord[] = [];
    let size = 0;
    for (let p = this.sendPos; p < limit; p++) {
      const i = p & (this.cap - 1);
      const payload = this.payloads[i];
      if (payload === undefined || this.sacked[i]) continue;
      const n = payload.length + RECORD_HEADER_BYTES;
      if (size + n > this.frameBudget && batch.length > 0) {
        this.emit(batch, now);
        batch.length = 0;
        size = 0;
      }
      batch.push({ streamSeq: p, session: this.sessions[i], seq: this.seqs[i], payload });
      size += n;
      // sentAt < 0: never sent (sends alone cannot tell: a peer's return resets it for Karn's rule).
      if (this.sentAt[i] < 0) this.counters.replicated++;
      else this.counters.retransmits++;
      if (p < this.resyncEnd) this.resendTokens--;
      this.sentAt[i] = now;
      if (this.sends[i] < 255) this.sends[i]++;
    }
    if (batch.length > 0) this.emit(batch, now);
    // Nothing was in flight before: the probe timer starts from this send, not from an old ACK.
    if (this.sendPos === this.low) this.lastProgressAt = now;
    this.sendPos = limit;
  }

  /**
   * Processes an ACK of the peer's current incarnation (the caller checked names and epochs). Returns
   * whether it carried anything new: a replayed or stale ACK neither counts as hearing from the peer nor
   * changes any state.
   */
  onAck(ack: AckFrame, now: number): boolean {
    if (ack.receiverEpoch !== this.opts.epoch) return false;
    if (ack.largestPacket >= this.nextPacket) return false; // names a packet never sent: forged or corrupt
    const fresh = ack.largestPacket > this.largestAcked;
    const base = Math.min(ack.base, this.sendPos);
    if (!fresh && base <= this.low) return false;
    this.counters.acksReceived++;
    const mask = this.cap - 1;
    if (fresh) {
      this.largestAcked = ack.largestPacket;
      const j = ack.largestPacket % PACKET_RING;
      if (this.pktNo[j] === ack.largestPacket) {
        // Packet numbers are never reused: this is the first ACK of this packet, a valid sample.
        this.rtt.update(now - this.pktAt[j], ack.ackDelayUs / 1000);
        if (this.pktAt[j] > this.lossRefSent) this.lossRefSent = this.pktAt[j];
        if (ack.largestPacket > this.lossRefFrame) this.lossRefFrame = ack.largestPacket;
      }
      this.heard(now);
    }
    let progressed = false;
    let spurious = 0;
    // An ACK earlier than half the minimum RTT after a retransmission answers the original copy.
    const tooSoon = this.rtt.minRttMs === Infinity ? 0 : this.rtt.minRttMs / 2;
    while (this.low < base) {
      const i = this.low & mask;
      if (
        !this.sacked[i] &&
        this.payloads[i] !== undefined &&
        this.sends[i] > 1 &&
        now - this.sentAt[i] < tooSoon
      )
        spurious++;
      progressed = true;
      this.release();
    }
    for (const [s, e] of ack.ranges) {
      for (let p = Math.max(s, this.low); p <= e && p < this.sendPos; p++) {
        const i = p & mask;
        if (this.sacked[i]) continue;
        this.sacked[i] = 1;
        progressed = true;
        if (this.sends[i] > 1 && now - this.sentAt[i] < tooSoon) spurious++;
      }
    }
    if (progressed) {
      this.ptoCount = 0;
      this.lastProgressAt = now;
    }
    if (spurious > 0) {
      this.spuriousRetransmits += spurious;
      this.reorderFrames = Math.min(this.params.maxReorderFrames, this.reorderFrames * 2);
      this.reorderExtraMs = Math.min(
        4 * this.rtt.srttMs,
        this.reorderExtraMs + Math.max(this.params.timerGranularityMs, this.rtt.srttMs / 4),
      );
    } else if (progressed) {
      // Narrow back by ~1% per ACK: reordering that stopped stops costing latency.
      this.reorderFrames = Math.max(this.params.packetThreshold, this.reorderFrames * 0.99);
      this.reorderExtraMs *= 0.99;
    }
    if (this.lossRefSent !== -Infinity) this.detectLosses(now);
    return true;
  }

  /** Declares lost what the latest ACK references imply and resends it, as far as the pacing allows. */
  private detectLosses(now: number): void {
    this.lossPending = false;
    if (this.low >= this.sendPos || this.lossRefSent === -Infinity) return;
    const mask = this.cap - 1;
    const refSent = this.lossRefSent;
    const refFrame = this.lossRefFrame;
    let budget = this.refillResend(now);
    const lossDelay =
      Math.max(this.params.timerGranularityMs, (9 / 8) * Math.max(this.rtt.srttMs, this.rtt.latestMs)) +
      this.reorderExtraMs;
    // Counted in frames, not positions: one frame overtaking another must not make its many records "lost".
    const frameLimit = refFrame - Math.round(this.reorderFrames);
    const lost: OutRecord[] = [];
    for (let p = this.low; p < this.sendPos; p++) {
      const i = p & mask;
      if (this.sacked[i] || this.payloads[i] === undefined) continue;
      const sent = this.sentAt[i];
      if (this.sentFrame[i] <= frameLimit || sent < refSent - lossDelay) {
        if (budget < 1) {
          this.lossPending = true; // the rest goes out on later ticks
          break;
        }
        lost.push(this.resend(p, i, now));
        budget--;
        this.resendTokens--;
      }
    }
    if (lost.length > 0) this.emitBatched(lost, now);
  }

  private refillResend(now: number): number {
    const p = this.params;
    this.resendTokens = Math.min(
      p.resendBurst,
      this.resendTokens + ((now - this.resendRefillAt) * p.resendDatagramsPerSecond) / 1000,
    );
    this.resendRefillAt = now;
    return Math.max(0, Math.floor(this.resendTokens));
  }

  /** A PONG counts only if it echoes a PING still outstanding (a replayed or forged one is ignored). */
  onPong(timestamp: number, now: number): boolean {
    const i = this.outstandingPings.indexOf(timestamp);
    if (i < 0) return false;
    this.outstandingPings.splice(0, i + 1);
    this.heard(now);
    this.rtt.update(now - timestamp);
    return true;
  }

  /**
   * The earliest time tick() has something to do (ms on the link's clock): the next liveness probe, down
   * detection, the probe timeout while data is in flight, paced loss resends and resync sends when the
   * token bucket next holds one, and -Infinity (due at once) when the window lets unsent data out.
   * tick() tests each timer as `now >= <the same expression>`, so a link serviced at its deadline always
   * does what made it due, and its next deadline moves on.
   */
  nextDeadline(): number {
    const p = this.params;
    let d = this.lastPingAt + p.pingIntervalMs;
    if (this.state !== 'up') return d;
    d = Math.min(d, this.lastHeardAt + p.peerDownAfterMs);
    if (this.low < this.sendPos) d = Math.min(d, this.lastProgressAt + this.ptoMs());
    if (this.lossPending) d = Math.min(d, this.resendTokenAt());
    if (this.peerEpoch !== undefined && this.sendPos < Math.min(this.next, this.low + p.windowDatagrams))
      d = Math.min(d, this.sendPos < this.resyncEnd ? this.resendTokenAt() : -Infinity);
    return d;
  }

  /** When the resend token bucket next holds a whole token. */
  private resendTokenAt(): number {
    const missing = 1 - this.resendTokens;
    return missing <= 0
      ? this.resendRefillAt
      : this.resendRefillAt + (missing * 1000) / this.params.resendDatagramsPerSecond;
  }

  /**
   * Timers: probe timeout, paced resends, liveness probes, down detection. Called when nextDeadline() has
   * passed (PeerSet.service); calling it earlier does nothing but what is due.
   */
  tick(now: number): void {
    if (this.state === 'up' && now >= this.lastHeardAt + this.params.peerDownAfterMs) this.state = 'down';
    if (now >= this.lastPingAt + this.params.pingIntervalMs) {
      this.lastPingAt = now;
      this.outstandingPings.push(now);
      if (this.outstandingPings.length > 8) this.outstandingPings.shift();
      this.io.send(
        encodePing(this.header(now), now, this.low, this.low === this.movedUpTo),
        this.peer.port,
        this.peer.address,
      );
    }
    if (this.state !== 'up') return;
    if (this.lossPending) this.detectLosses(now);
    if (this.low < this.sendPos && now >= this.lastProgressAt + this.ptoMs()) this.probe(now);
    this.flush(now);
  }

  /** Forget everything (the link is being removed): returns how many datagrams were never acknowledged. */
  close(reason: AbandonReason = 'peer_gone'): number {
    const lost = this.next - this.low;
    this.countAbandoned(reason, lost);
    this.payloads = [];
    this.low = this.sendPos = this.next;
    this.bytes = 0;
    return lost;
  }

  /**
   * Abandons every unacknowledged position below `upTo` (all of them by default) and returns them in
   * position order, so the caller can hand them to another replica; the peer discards what it held.
   */
  abandon(reason: AbandonReason, upTo = this.next): OutRecord[] {
    const out: OutRecord[] = [];
    const mask = this.cap - 1;
    const end = Math.min(upTo, this.next);
    while (this.low < end) {
      const i = this.low & mask;
      const payload = this.payloads[i];
      if (payload !== undefined) {
        out.push({ streamSeq: this.low, session: this.sessions[i], seq: this.seqs[i], payload });
        this.countAbandoned(reason, 1);
      }
      this.release();
    }
    if (this.resyncEnd < this.low) this.resyncEnd = this.low;
    if (reason === 'handover') this.movedUpTo = this.low;
    return out;
  }

  /** Counts positions (or held datagrams) given up for this peer. */
  countAbandoned(reason: AbandonReason, n: number): void {
    if (n <= 0) return;
    this.counters.abandoned[reason] += n;
    this.counters.backlogDropped += n;
  }

  private heard(now: number): void {
    this.lastHeardAt = now;
    if (this.state === 'down') {
      // Back from the dead: resend every unacknowledged position, paced by flush's per-tick cap. After a
      // silence of peerDownAfterMs no earlier copy is still in flight, so the resent copies count as first
      // transmissions for loss detection and RTT (sends = 0); they are still counted as retransmits.
      this.state = 'up';
      const mask = this.cap - 1;
      for (let p = this.low; p < this.sendPos; p++) this.sends[p & mask] = 0;
      this.sendPos = this.low;
      this.resyncEnd = this.next;
      this.ptoCount = 0;
      this.lastProgressAt = now;
      this.flush(now);
    }
  }

  /**
   * The peer restarted: its new incarnation lost what the old one held undelivered (its reorder buffer)
   * even though it was selectively acknowledged. Everything not cumulatively acknowledged is resent, on a
   * link to the new incarnation (its packet-number and ACK state start over).
   */
  observePeerEpoch(epoch: number, now: number): boolean {
    const restarted = this.peerEpoch !== undefined && epoch > this.peerEpoch;
    if (this.peerEpoch === undefined || epoch > this.peerEpoch) {
      const first = this.peerEpoch === undefined;
      this.peerEpoch = epoch;
      this.largestAcked = -1;
      if (first) {
        this.lastProgressAt = now;
        this.flush(now);
      }
    }
    if (!restarted) return false;
    for (let p = this.low; p < this.next; p++) this.sacked[p & (this.cap - 1)] = 0;
    this.sendPos = this.low;
    this.resyncEnd = this.next;
    this.ptoCount = 0;
    this.lastProgressAt = now;
    this.lossRefSent = -Infinity;
    this.lossRefFrame = -Infinity;
    this.lossPending = false;
    return true;
  }

  /** Probe timeout: srtt + 4 rttvar + the peer's ack delay, backed off per probe without progress. */
  ptoMs(): number {
    const base = this.rtt.rtoMs() + this.params.ackDelayMs;
    return Math.min(this.params.maxRtoMs, base * Math.pow(this.params.rtoBackoff, this.ptoCount));
  }

  /** ACKs stopped: resend the oldest frame's worth of unacknowledged positions. */
  private probe(now: number): void {
    const out: OutRecord[] = [];
    let size = 0;
    for (let p = this.low; p < this.sendPos; p++) {
      const i = p & (this.cap - 1);
      if (this.sacked[i] || this.payloads[i] === undefined) continue;
      const n = this.payloads[i]!.length + RECORD_HEADER_BYTES;
      if (size + n > this.frameBudget && out.length > 0) break;
      out.push(this.resend(p, i, now));
      size += n;
    }
    this.ptoCount++;
    this.lastProgressAt = now;
    if (out.length > 0) this.emitBatched(out, now);
  }

  private resend(p: number, i: number, now: number): OutRecord {
    this.sentAt[i] = now;
    if (this.sends[i] < 255) this.sends[i]++;
    this.counters.retransmits++;
    return { streamSeq: p, session: this.sessions[i], seq: this.seqs[i], payload: this.payloads[i]! };
  }

  private emitBatched(records: OutRecord[], now: number): void {
    let start = 0;
    let size = 0;
    for (let k = 0; k < records.length; k++) {
      const n = records[k].payload.length + RECORD_HEADER_BYTES;
      if (size + n > this.frameBudget && k > start) {
        this.emit(records.slice(start, k), now);
        start = k;
        size = 0;
      }
      size += n;
    }
    if (start < records.length) this.emit(records.slice(start), now);
  }

  private emit(records: OutRecord[], now: number): void {
    this.counters.framesSent++;
    const h = this.header(now);
    for (const r of records) this.sentFrame[r.streamSeq & (this.cap - 1)] = h.packet;
    this.io.send(
      encodeData(h, this.low, records, this.low === this.movedUpTo),
      this.peer.port,
      this.peer.address,
    );
  }

  private release(): void {
    const i = this.low & (this.cap - 1);
    const payload = this.payloads[i];
    if (payload !== undefined) this.bytes -= payload.length + RECORD_HEADER_BYTES;
    this.payloads[i] = undefined;
    this.sacked[i] = 0;
    this.low++;
    if (this.sendPos < this.low) this.sendPos = this.low;
  }

  private dropOldest(): void {
    const i = this.low & (this.cap - 1);
    // Selectively acknowledged ones were received: the peer delivers them when the low-water mark passes.
    if (!this.sacked[i] && this.payloads[i] !== undefined) this.countAbandoned('overflow', 1);
    this.release();
  }

  private grow(): void {
    const cap = this.cap * 2;
    const sessions = new Uint32Array(cap);
    const seqs = new Float64Array(cap);
    const payloads: Array<Buffer | undefined> = new Array(cap);
    const sentAt = new Float64Array(cap);
    const sentFrame = new Float64Array(cap);
    const sends = new Uint8Array(cap);
    const sacked = new Uint8Array(cap);
    for (let p = this.low; p < this.next; p++) {
      const o = p & (this.cap - 1);
      const n = p & (cap - 1);
      sessions[n] = this.sessions[o];
      seqs[n] = this.seqs[o];
      payloads[n] = this.payloads[o];
      sentAt[n] = this.sentAt[o];
      sentFrame[n] = this.sentFrame[o];
      sends[n] = this.sends[o];
      sacked[n] = this.sacked[o];
    }
    Object.assign(this, { cap, sessions, seqs, payloads, sentAt, sentFrame, sends, sacked });
  }
}
