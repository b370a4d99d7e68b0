// The outbound half of replication to one peer replicator: a stream of positions 0,1,2,... kept in a
// retransmit ring (bounded in bytes) until the peer acknowledges them. Sends in batched DATA frames inside
// the peer's receive window. Loss detection is QUIC's (RFC 9002): on each ACK, a position is lost when
// `packetThreshold` later positions were acknowledged, or when something sent more than 9/8 RTT after it
// was acknowledged. When ACKs stop coming, a probe timeout (PTO, backed off) resends only the oldest
// frame's worth, never the whole flight, so a slow receiver does not trigger a retransmission storm.
// A silent peer is marked down: nothing is sent but pings, the backlog is kept up to its bound (overflow
// counted), and on return everything unacknowledged is resent.
// No sockets here: `io.send` is injected, time is passed in.
import { FrameType, dataHeaderBytes, encodeData, encodePing, RECORD_HEADER_BYTES, type AckFrame } from '../protocol/frame.ts';
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
  maxFrameBytes: number;
  params?: ProtocolParams;
}

export interface PeerLinkCounters {
  replicated: number;
  retransmits: number;
  backlogDropped: number;
  framesSent: number;
  acksReceived: number;
}

export interface PeerIo {
  send(frame: Buffer, port: number, address: string): void;
}

const INITIAL_CAPACITY = 1024;
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
  readonly counters: PeerLinkCounters = { replicated: 0, retransmits: 0, backlogDropped: 0, framesSent: 0, acksReceived: 0 };
  lastHeardAt: number;
  private lastPingAt = 0;
  /** Timestamps of recent PINGs: a PONG must echo one of them (a replayed or forged PONG is ignored). */
  private readonly outstandingPings: number[] = [];
  /** Consecutive probe timeouts without progress (backs the PTO off); reset by any newly acknowledged data. */
  private ptoCount = 0;
  private lastProgressAt: number;
  private cap = INITIAL_CAPACITY;
  private sessions = new Uint32Array(INITIAL_CAPACITY);
  private seqs = new Uint32Array(INITIAL_CAPACITY);
  private payloads: Array<Buffer | undefined> = new Array(INITIAL_CAPACITY);
  private sentAt = new Float64Array(INITIAL_CAPACITY);
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
    this.frameBudget = opts.maxFrameBytes - dataHeaderBytes(opts.sender);
  }

  /** Datagrams accepted for this peer and not yet acknowledged. */
  get lag(): number {
    return this.next - this.low;
  }

  enqueue(session: number, seq: number, payload: Buffer): void {
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
    this.next++;
    this.bytes += payload.length + RECORD_HEADER_BYTES;
    while (this.bytes > this.opts.maxBytes && this.low < this.next - 1) this.dropOldest();
  }

  /** Sends never-sent positions that fit in the peer's window. */
  flush(now: number): void {
    if (this.state !== 'up') return;
    const limit = Math.min(this.next, this.low + this.params.windowDatagrams, this.sendPos + this.params.maxSendPerTick);
    if (this.sendPos >= limit) return;
    const batch: OutRecord[] = [];
    let size = 0;
    for (let p = this.sendPos; p < limit; p++) {
      const i = p & (this.cap - 1);
      const payload = this.payloads[i];
      if (payload === undefined || this.sacked[i]) continue;
      const n = payload.length + RECORD_HEADER_BYTES;
      if (size + n > this.frameBudget && batch.length > 0) {
        this.emit(batch);
        batch.length = 0;
        size = 0;
      }
      batch.push({ streamSeq: p, session: this.sessions[i], seq: this.seqs[i], payload });
      size += n;
      if (this.sends[i] === 0) this.counters.replicated++;
      else this.counters.retransmits++;
      this.sentAt[i] = now;
      if (this.sends[i] < 255) this.sends[i]++;
    }
    if (batch.length > 0) this.emit(batch);
    // Nothing was in flight before: the probe timer starts from this send, not from an old ACK.
    if (this.sendPos === this.low) this.lastProgressAt = now;
    this.sendPos = limit;
  }

  onAck(ack: AckFrame, now: number): void {
    if (ack.epoch !== this.opts.epoch) return;
    this.counters.acksReceived++;
    this.heard(now);
    const base = Math.min(ack.base, this.sendPos);
    const largest = ack.largest;
    const mask = this.cap - 1;
    // RTT from the largest position if this ACK is the first to cover it and it was sent once (Karn).
    if (largest >= this.low && largest < this.sendPos) {
      const i = largest & mask;
      if (this.sends[i] === 1 && !this.sacked[i] && this.payloads[i] !== undefined) {
        this.rtt.update(now - this.sentAt[i], ack.ackDelayUs / 1000);
      }
    }
    // The latest send time among newly acknowledged positions: the reference for the time threshold.
    let refSent = -Infinity;
    let progressed = false;
    while (this.low < base) {
      const i = this.low & mask;
      if (!this.sacked[i] && this.payloads[i] !== undefined && this.sentAt[i] > refSent) refSent = this.sentAt[i];
      progressed = true;
      this.release();
    }
    for (const [s, e] of ack.ranges) {
      for (let p = Math.max(s, this.low); p <= e && p < this.sendPos; p++) {
        const i = p & mask;
        if (this.sacked[i]) continue;
        this.sacked[i] = 1;
        progressed = true;
        if (this.sentAt[i] > refSent) refSent = this.sentAt[i];
      }
    }
    if (progressed) {
      this.ptoCount = 0;
      this.lastProgressAt = now;
    }
    if (refSent === -Infinity || this.low >= this.sendPos) return;
    const lossDelay = Math.max(this.params.tickMs, (9 / 8) * Math.max(this.rtt.srttMs, this.rtt.latestMs));
    const packetLimit = largest - this.params.packetThreshold;
    const largestSent = largest >= this.low && largest < this.sendPos ? this.sentAt[largest & mask] : -Infinity;
    const lost: OutRecord[] = [];
    for (let p = this.low; p < this.sendPos; p++) {
      const i = p & mask;
      if (this.sacked[i] || this.payloads[i] === undefined) continue;
      const sent = this.sentAt[i];
      if ((p <= packetLimit && sent <= largestSent) || sent < refSent - lossDelay) {
        lost.push(this.resend(p, i, now));
        if (lost.length >= this.params.maxSendPerTick) break;
      }
    }
    if (lost.length > 0) this.emitBatched(lost);
  }

  onPong(timestamp: number, now: number): void {
    const i = this.outstandingPings.indexOf(timestamp);
    if (i < 0) return;
    this.outstandingPings.splice(0, i + 1);
    this.heard(now);
    this.rtt.update(now - timestamp);
  }

  /** Timers: RTO retransmission, liveness probes, down detection. Called every tick for every link. */
  tick(now: number): void {
    if (this.state === 'up' && now - this.lastHeardAt > this.params.peerDownAfterMs) this.state = 'down';
    if (now - this.lastPingAt >= this.params.pingIntervalMs) {
      this.lastPingAt = now;
      this.outstandingPings.push(now);
      if (this.outstandingPings.length > 8) this.outstandingPings.shift();
      this.io.send(encodePing(FrameType.Ping, this.opts.sender, this.opts.epoch, now), this.peer.port, this.peer.address);
    }
    if (this.state !== 'up') return;
    if (this.low < this.sendPos && now - this.lastProgressAt >= this.ptoMs()) this.probe(now);
    this.flush(now);
  }

  /** Forget everything (the link is being removed): returns how many datagrams were never acknowledged. */
  close(): number {
    const lost = this.next - this.low;
    this.counters.backlogDropped += lost;
    this.payloads = [];
    this.low = this.next;
    this.bytes = 0;
    return lost;
  }

  private heard(now: number): void {
    this.lastHeardAt = now;
    if (this.state === 'down') {
      // Back from the dead: resend every unacknowledged position, paced by flush's per-tick cap.
      this.state = 'up';
      this.sendPos = this.low;
      this.ptoCount = 0;
      this.lastProgressAt = now;
      this.flush(now);
    }
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
    if (out.length > 0) this.emitBatched(out);
  }

  private resend(p: number, i: number, now: number): OutRecord {
    this.sentAt[i] = now;
    if (this.sends[i] < 255) this.sends[i]++;
    this.counters.retransmits++;
    return { streamSeq: p, session: this.sessions[i], seq: this.seqs[i], payload: this.payloads[i]! };
  }

  private emitBatched(records: OutRecord[]): void {
    let start = 0;
    let size = 0;
    for (let k = 0; k < records.length; k++) {
      const n = records[k].payload.length + RECORD_HEADER_BYTES;
      if (size + n > this.frameBudget && k > start) {
        this.emit(records.slice(start, k));
        start = k;
        size = 0;
      }
      size += n;
    }
    if (start < records.length) this.emit(records.slice(start));
  }

  private emit(records: OutRecord[]): void {
    this.counters.framesSent++;
    this.io.send(encodeData(this.opts.sender, this.opts.epoch, this.low, records), this.peer.port, this.peer.address);
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
    if (!this.sacked[i] && this.payloads[i] !== undefined) this.counters.backlogDropped++;
    this.release();
  }

  private grow(): void {
    const cap = this.cap * 2;
    const sessions = new Uint32Array(cap);
    const seqs = new Uint32Array(cap);
    const payloads: Array<Buffer | undefined> = new Array(cap);
    const sentAt = new Float64Array(cap);
    const sends = new Uint8Array(cap);
    const sacked = new Uint8Array(cap);
    for (let p = this.low; p < this.next; p++) {
      const o = p & (this.cap - 1);
      const n = p & (cap - 1);
      sessions[n] = this.sessions[o];
      seqs[n] = this.seqs[o];
      payloads[n] = this.payloads[o];
      sentAt[n] = this.sentAt[o];
      sends[n] = this.sends[o];
      sacked[n] = this.sacked[o];
    }
    Object.assign(this, { cap, sessions, seqs, payloads, sentAt, sends, sacked });
  }
}
