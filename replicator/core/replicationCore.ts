// The replication core without I/O: frame dispatch (verify, decode, check both ends and incarnations,
// anti-replay), the inbound streams and the ACK policy, over a PeerSet for the outbound side. Time comes
// from `now()`, frames leave through a Transport, replicated datagrams through a DeliverySink: production
// wires real sockets (service.ts), the simulator a virtual network and clock (test/simulation/).
//
// Order of checks on an incoming frame, cheapest and least trusting first: header parses; it is addressed
// to this member; the sender is a known member (unknown senders get no state at all); the MAC verifies
// under the link key; the frame decodes; the epochs are the current ones; the packet number is fresh.
import { InboundStream } from '../delivery/inboundStream.ts';
import { hashString } from '../delivery/hashRing.ts';
import {
  decodeFrame,
  encodeAck,
  encodePong,
  FrameType,
  peekHeader,
  type DataFrame,
} from '../protocol/frame.ts';
import { signFrame, verifyFrame, type FrameKey, type KeyRing } from '../protocol/frameAuth.ts';
import { protocolParams, type ProtocolParams } from '../protocol/params.ts';
import { ReceiveWindow, WindowVerdict } from '../protocol/receiveWindow.ts';
import { DropReason } from '../observability/stats.ts';
import { PeerSet, sessionHashKey, type LinkEntry } from '../replication/peerSet.ts';
import { CONTROL_SESSION, type DeliverySink, type OriginIncarnation } from './deliverySink.ts';
import type { Transport } from './transport.ts';

export interface InboundEntry {
  stream: InboundStream;
  originCluster: string;
  originHash: number;
}

/** Per known sender: its anti-replay window (per epoch) and its inbound stream. */
interface SenderState {
  epoch: number;
  replay: ReceiveWindow;
  inbound?: InboundEntry;
}

export interface CoreOptions {
  member: string;
  cluster: string;
  epoch: number;
  now: () => number;
  transport: Transport;
  sink: DeliverySink;
  keyRing: () => KeyRing;
  reorderBufferDatagrams: () => number;
  sessionIdleMs: () => number;
  retransmitBufferBytes: () => number;
  maxFrameBytes: () => number;
  drop: (reason: string, n?: number) => void;
  delivered: (originCluster: string) => void;
  log: (level: 'info' | 'warn', obj: Record<string, unknown>, msg: string) => void;
  params?: ProtocolParams;
}

export class ReplicationCore {
  readonly peers: PeerSet;
  readonly senders = new Map<string, SenderState>();
  readonly ackDirty = new Set<InboundEntry>();
  /** Per peer member: the accepted key its frames are signed with; frames to it are signed with the same. */
  readonly peerKeys = new Map<string, FrameKey>();
  readonly selfHash: number;
  readonly params: ProtocolParams;
  retiredDuplicates = 0;
  readonly retiredDropped = new Map<string, number>();

  constructor(private readonly o: CoreOptions) {
    this.params = o.params ?? protocolParams;
    this.selfHash = hashString(o.member);
    this.peers = new PeerSet({
      member: o.member,
      cluster: o.cluster,
      epoch: o.epoch,
      selfHash: this.selfHash,
      retransmitBufferBytes: o.retransmitBufferBytes,
      maxFrameBytes: o.maxFrameBytes,
      send: (frame, port, address, to) => this.sendFrame(frame, port, address, to),
      log: o.log,
      params: this.params,
    });
  }

  get epoch(): number {
    return this.o.epoch;
  }

  /** Signs (with the key the peer signs with, if we accept it) and sends. */
  sendFrame(frame: Buffer, port: number, address: string, to: string): void {
    const ring = this.o.keyRing();
    let key = this.peerKeys.get(to);
    // A key the ring no longer accepts (rotated out) is never used again.
    if (key !== undefined && !ring.accepted.includes(key)) {
      this.peerKeys.delete(to);
      key = undefined;
    }
    this.o.transport.send(signFrame(frame, ring, key), port, address);
  }

  // ---------------------------------------------------------------- inbound frames

  onFrame(raw: Buffer): void {
    const h = peekHeader(raw);
    if (!h) {
      this.o.drop(DropReason.MalformedFrame);
      return;
    }
    if (h.receiver !== this.o.member) {
      this.o.drop(h.sender === this.o.member ? DropReason.Looped : DropReason.Misdirected);
      return;
    }
    const entry = this.peers.links.get(h.sender);
    if (!entry) {
      this.o.drop(DropReason.UnknownSender);
      return;
    }
    const auth = verifyFrame(raw, this.o.keyRing());
    if (!auth.ok) {
      this.o.drop(auth.reason === 'bad_mac' ? DropReason.BadMac : DropReason.Unauthenticated);
      return;
    }
    const res = decodeFrame(auth.frame, h);
    if (!res.ok) {
      this.o.drop(DropReason.MalformedFrame);
      return;
    }
    const f = res.frame;
    const now = this.o.now();
    const link = entry.link;
    // Incarnations: an older sender epoch is a straggler; a newer one is a restart, believed at once for a
    // static peer and only once etcd says so for a member (an invented epoch cannot hide a real restart).
    if (link.peerEpoch !== undefined && f.senderEpoch < link.peerEpoch) {
      this.o.drop(DropReason.StaleEpoch);
      return;
    }
    if (link.peerEpoch !== undefined && f.senderEpoch > link.peerEpoch && entry.epochFromMembership) {
      this.o.drop(DropReason.StaleEpoch);
      return;
    }
    if (f.type !== FrameType.Ping && f.receiverEpoch !== this.o.epoch) {
      this.o.drop(DropReason.StaleEpoch);
      return;
    }
    const st = this.senderState(h.sender, f.senderEpoch, now);
    // Anti-replay: every frame of a link has a fresh packet number.
    const v = st.replay.check(f.packet);
    if (v === WindowVerdict.Duplicate) {
      this.o.drop(DropReason.Replay);
      return;
    }
    if (v === WindowVerdict.Beyond) st.replay.skipTo(f.packet - (st.replay.size >>> 1));
    st.replay.mark(f.packet);
    if (link.peerEpoch === undefined || f.senderEpoch > link.peerEpoch) {
      if (link.observePeerEpoch(f.senderEpoch, now))
        this.o.log(
          'warn',
          { peer: h.sender, epoch: f.senderEpoch },
          'peer restarted; resending what it had not delivered',
        );
    }
    if (auth.key !== undefined && this.peerKeys.get(h.sender) !== auth.key)
      this.peerKeys.set(h.sender, auth.key);
    switch (f.type) {
      case FrameType.Data:
        this.onData(entry, st, f, now);
        break;
      case FrameType.Ack: {
        const wasDown = link.state !== 'up';
        if (link.onAck(f, now) && wasDown && link.state === 'up') this.peers.targetsVersion++;
        break;
      }
      case FrameType.Ping: {
        if (f.receiverEpoch === this.o.epoch && st.inbound)
          st.inbound.stream.applyLowWater(f.lowWater, now, f.discard === true);
        const to = link.peer;
        this.sendFrame(encodePong(link.header(now), f.timestamp), to.port, to.address, h.sender);
        break;
      }
      case FrameType.Pong: {
        const wasDown = link.state !== 'up';
        if (link.onPong(f.timestamp, now) && wasDown) this.peers.targetsVersion++;
        break;
      }
    }
  }

  private senderState(sender: string, epoch: number, now: number): SenderState {
    let st = this.senders.get(sender);
    if (st && st.epoch === epoch) return st;
    if (st?.inbound) this.retireInbound(st, now); // a newer incarnation: what the old one held is released
    st = { epoch, replay: new ReceiveWindow(this.params.replayWindowPackets, 0) };
    this.senders.set(sender, st);
    return st;
  }

  private onData(entry: LinkEntry, st: SenderState, f: DataFrame, now: number): void {
    let inbound = st.inbound;
    if (inbound === undefined) {
      const sender = f.sender;
      const slash = sender.indexOf('/');
      const originCluster = slash > 0 ? sender.slice(0, slash) : sender;
      const originHash = hashString(sender);
      const epoch = f.senderEpoch;
      const incarnation: OriginIncarnation = {
        member: sender,
        cluster: originCluster,
        memberHash: originHash,
        epoch,
      };
      const e: InboundEntry = {
        originCluster,
        originHash,
        stream: new InboundStream(
          sender,
          epoch,
          f.lowWater,
          { windowSize: this.params.windowDatagrams, reorderLimit: this.o.reorderBufferDatagrams() },
          (session, seq, payload) => {
            if (session === CONTROL_SESSION) {
              this.o.sink.control?.(incarnation, payload);
              return;
            }
            const ok = this.o.sink.deliver(
              {
                origin: sender,
                originCluster,
                originEpoch: epoch,
                session,
                hashKey: sessionHashKey(originHash, epoch, session),
                incarnation,
              },
              seq,
              payload,
            );
            // A refusal was counted by the sink with its reason (no backend, identity table full).
            if (ok) this.o.delivered(originCluster);
          },
          now,
        ),
      };
      st.inbound = inbound = e;
    }
    const stream = inbound.stream;
    stream.notePacket(f.packet, now);
    if (f.lowWater > stream.window.base) stream.applyLowWater(f.lowWater, now, f.discard === true);
    for (let i = 0; i < f.records.length; i++) stream.receive(f.records[i], now);
    // ACK policy, in one place: at once on a gap or a duplicate (the sender should learn fast), after
    // ackEveryDatagrams new datagrams, otherwise within ackDelayMs (flushAcks).
    if (stream.ackUrgent || stream.unacked >= this.params.ackEveryDatagrams)
      this.sendAck(entry, inbound, now);
    else this.ackDirty.add(inbound);
  }

  private sendAck(entry: LinkEntry, inbound: InboundEntry, now: number): void {
    const s = inbound.stream;
    const link = entry.link;
    const st = s.ackState(this.params.maxAckRanges, now);
    this.sendFrame(
      encodeAck(link.header(now), st.largestPacket, st.ackDelayUs, st.base, st.ranges),
      link.peer.port,
      link.peer.address,
      s.origin,
    );
    s.unacked = 0;
    s.ackUrgent = false;
    this.ackDirty.delete(inbound);
  }

  flushAcks(now: number): void {
    for (const inbound of this.ackDirty) {
      const entry = this.peers.links.get(inbound.stream.origin);
      if (entry && entry.link.peerEpoch === inbound.stream.epoch) this.sendAck(entry, inbound, now);
      else this.ackDirty.delete(inbound);
    }
  }

  private retireInbound(st: SenderState, now: number): void {
    const e = st.inbound;
    if (!e) return;
    e.stream.retire(now);
    this.retiredDuplicates += e.stream.counters.duplicates;
    for (const [reason, n] of streamDrops(e.stream)) {
      if (n > 0) this.retiredDropped.set(reason, (this.retiredDropped.get(reason) ?? 0) + n);
    }
    st.inbound = undefined;
    this.ackDirty.delete(e);
  }

  // ---------------------------------------------------------------- timers

  /** The fast timer: link deadlines, barrier releases, owed ACKs, new data. */
  tick(): boolean {
    const now = this.o.now();
    const changed = this.peers.tick(now);
    this.flushAcks(now);
    this.peers.flushDirty(now);
    return changed;
  }

  /** The slow timer: idle sessions of inbound streams, idle streams, departed peers. */
  sweep(): void {
    const now = this.o.now();
    const idle = this.o.sessionIdleMs();
    for (const [id, st] of this.senders) {
      const e = st.inbound;
      if (e) {
        // A session's cursor outlives its idle timeout up to the peer retention: a hand-over can bring its
        // old datagrams back to this replica later, and only the cursor knows they were delivered here.
        e.stream.sweepSessions(now, Math.max(idle, this.params.peerRetentionMs));
        if (
          now - e.stream.lastActivity > Math.max(idle, this.params.peerRetentionMs) &&
          e.stream.pendingCount === 0
        )
          this.retireInbound(st, now);
      }
      if (!this.peers.links.has(id)) this.senders.delete(id); // no state for senders that are no longer members
    }
    this.peers.sweep(now);
    for (const id of this.peerKeys.keys()) if (!this.peers.links.has(id)) this.peerKeys.delete(id);
  }

  *inbound(): IterableIterator<InboundEntry> {
    for (const st of this.senders.values()) if (st.inbound) yield st.inbound;
  }
}

export function streamDrops(s: InboundStream): Array<[string, number]> {
  const c = s.counters;
  return [
    [DropReason.SenderSkipped, c.senderSkipped],
    [DropReason.SenderAbandoned, c.senderAbandoned],
    [DropReason.ReorderFull, c.reorderFull],
    [DropReason.BeyondWindow, c.beyondWindow],
    [DropReason.Late, c.late],
  ];
}
