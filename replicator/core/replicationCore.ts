// The replication core without I/O: frame dispatch (verify, decode, check both ends and incarnations,
// anti-replay), the inbound streams and the ACK policy, over a PeerSet for the outbound side. Time comes
// from `now()`, frames leave through a Transport, replicated datagrams through a DeliverySink: production
// wires real sockets (service.ts), the simulator a virtual network and clock (test/simulation/).
//
// Order of checks on an incoming frame, cheapest and least trusting first: header parses; it is addressed
// to this member; the sender is a known member (unknown senders get no state at all); the epochs can be
// the current ones (a key of another incarnation could not verify it anyway); the MAC verifies under the
// link key, which takes the cluster key and the X25519 secret of this pair of incarnations; the frame
// decodes; the epochs are the current ones; the packet number is fresh.
//
// Timers: the owner arms ONE timer at nextDeadline() (the earliest link deadline from the PeerSet's heap,
// or the oldest owed ACK) and calls onAlarm() when it fires; onAlarm services only what is due. After
// every other event (frames received, datagrams queued, membership) the owner runs flush() at the end of
// the event-loop turn and re-arms if the deadline moved earlier. Alarms are at least timerGranularityMs
// apart, so work that stays due (a send capped per flush, a token not yet whole) cannot spin.
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
import { generateMemberKeyPair, linkSecret, type MemberKeyPair } from '../protocol/memberKeys.ts';
import { protocolParams, type ProtocolParams } from '../protocol/params.ts';
import { ReceiveWindow, WindowVerdict } from '../protocol/receiveWindow.ts';
import { DropReason } from '../observability/stats.ts';
import { PeerSet, sessionHashKey, type LinkEntry, type PeerSetOptions } from '../replication/peerSet.ts';
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
  /** This incarnation's X25519 key pair, published in its member record; generated when not given. */
  keyPair?: MemberKeyPair;
  /**
   * Speak to members whose record has no public key (replicators older than link keys v3) with the
   * cluster-key-only derivation, for a rolling upgrade. Off: their frames are dropped (no_peer_key).
   */
  legacyLinkKeys?: () => boolean;
  reorderBufferDatagrams: () => number;
  sessionIdleMs: () => number;
  retransmitBufferBytes: () => number;
  maxFrameBytes: () => number;
  drop: (reason: string, n?: number) => void;
  delivered: (originCluster: string) => void;
  log: (level: 'info' | 'warn', obj: Record<string, unknown>, msg: string) => void;
  /** Session announcements for datagrams the peer set moves on its own (PeerSetOptions.announce). */
  announce?: PeerSetOptions['announce'];
  params?: ProtocolParams;
}

export class ReplicationCore {
  readonly peers: PeerSet;
  readonly senders = new Map<string, SenderState>();
  /** Streams that owe an ACK, with the time it is due (insertion order is due order: one delay for all). */
  readonly ackDirty = new Map<InboundEntry, number>();
  /** Alarms run (onAlarm calls) and when the last one ran. */
  alarms = 0;
  private lastAlarmAt = -Infinity;
  /** Per peer member: the accepted key its frames are signed with; frames to it are signed with the same. */
  readonly peerKeys = new Map<string, FrameKey>();
  readonly selfHash: number;
  readonly params: ProtocolParams;
  retiredDuplicates = 0;
  readonly retiredDropped = new Map<string, number>();
  readonly keyPair: MemberKeyPair;
  /** Peers already logged for having no usable public key (once per peer incarnation). */
  private readonly keylessLogged = new Map<string, number>();

  constructor(private readonly o: CoreOptions) {
    this.params = o.params ?? protocolParams;
    this.selfHash = hashString(o.member);
    const keyPair = (this.keyPair = o.keyPair ?? generateMemberKeyPair());
    this.peers = new PeerSet({
      member: o.member,
      cluster: o.cluster,
      epoch: o.epoch,
      selfHash: this.selfHash,
      retransmitBufferBytes: o.retransmitBufferBytes,
      maxFrameBytes: o.maxFrameBytes,
      send: (frame, port, address, to) => this.sendFrame(frame, port, address, to),
      log: o.log,
      announce: o.announce,
      params: this.params,
      linkSecret: (publicKey) => linkSecret(keyPair, publicKey),
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
    const entry = this.peers.links.get(to);
    const secret = entry ? this.linkSecretOf(entry, to) : undefined;
    if (secret === null && ring.current !== undefined) {
      this.o.drop(DropReason.NoPeerKey); // it could not verify what we sign, and must not get a weaker key
      return;
    }
    this.o.transport.send(signFrame(frame, ring, key, secret ?? undefined), port, address);
  }

  /**
   * The X25519 secret of the link with this peer: undefined for the cluster-key-only derivation (a static
   * peer with no member record, or a keyless member under legacyLinkKeys), null when there is no usable
   * key (a keyless member otherwise: dropped and counted no_peer_key, logged once per incarnation).
   */
  private linkSecretOf(entry: LinkEntry, peer: string): Buffer | undefined | null {
    const k = entry.peerKey;
    if (k === undefined) return undefined;
    if (k?.secret !== undefined) return k.secret;
    if (k === null && this.o.legacyLinkKeys?.()) return undefined;
    const epoch = entry.link.peerEpoch ?? 0;
    if (this.keylessLogged.get(peer) !== epoch) {
      this.keylessLogged.set(peer, epoch);
      this.o.log(
        'warn',
        { peer, epoch },
        k === null
          ? 'peer has no public key in its member record (a replicator older than link keys v3): frames ' +
              'to and from it are dropped (no_peer_key); replication.auth.legacyLinkKeys allows it during an upgrade'
          : 'peer published an unusable public key: frames to and from it are dropped (no_peer_key)',
      );
    }
    return null;
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
    // Epochs before the MAC: a frame of another incarnation of either end cannot verify under this
    // pair's keys, and is a straggler (stale_epoch), not a forgery (bad_mac). Checked again after decoding.
    const k = entry.peerKey;
    if ((k && h.senderEpoch !== k.epoch) || (h.type !== FrameType.Ping && h.receiverEpoch !== this.o.epoch)) {
      this.o.drop(DropReason.StaleEpoch);
      return;
    }
    const ring = this.o.keyRing();
    const secret = this.linkSecretOf(entry, h.sender);
    if (secret === null && ring.accepted.length > 0) {
      this.o.drop(DropReason.NoPeerKey);
      return;
    }
    const auth = verifyFrame(raw, ring, secret ?? undefined);
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
        if (link.onAck(f, now)) {
          if (wasDown && link.state === 'up') this.peers.targetsVersion++;
          // The window may have opened, a barrier may be settled: the end-of-turn flush sees to both.
          this.peers.dirty.add(link);
        }
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
    this.peers.touch(entry);
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
    else if (!this.ackDirty.has(inbound)) this.ackDirty.set(inbound, now + this.params.ackDelayMs);
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

  /** Sends the ACKs whose delay ran out (all of them with `now` = Infinity). */
  flushAcks(now: number): void {
    for (const [inbound, due] of this.ackDirty) {
      if (due > now) break; // insertion order is due order
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

  /**
   * When onAlarm() next has something to do (the core's clock, ms; Infinity: nothing ever). Never sooner
   * than timerGranularityMs after the last alarm.
   */
  nextDeadline(): number {
    let d = this.peers.nextDeadline();
    for (const due of this.ackDirty.values()) {
      if (due < d) d = due;
      break; // the first is the earliest
    }
    return Math.max(d, this.lastAlarmAt + this.params.timerGranularityMs);
  }

  /** The alarm: links whose deadline passed, ACKs whose delay ran out, then the flush. */
  onAlarm(now = this.o.now()): boolean {
    this.alarms++;
    this.lastAlarmAt = now;
    const changed = this.peers.service(now);
    this.flushAcks(now);
    this.peers.flushDirty(now);
    return changed;
  }

  /** Whether events of this turn left datagrams to send (the owner then calls flush() at the turn's end). */
  get flushPending(): boolean {
    return this.peers.dirty.size > 0;
  }

  /** The end-of-turn flush: datagrams queued and windows opened during this event-loop turn leave now. */
  flush(now = this.o.now()): void {
    this.peers.flushDirty(now);
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
    for (const id of this.keylessLogged.keys()) if (!this.peers.links.has(id)) this.keylessLogged.delete(id);
    if (this.peers.barriers.size > 0) this.peers.flushDirty(now); // a removed link may settle a barrier
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
