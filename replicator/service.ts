// The replicator: ingress -> positions -> local delivery + replication to one replica of every other
// cluster; inbound replication -> dedupe/order -> local delivery; replies back to clients. This file wires
// the pure parts (codec, window, streams, links, tables) to sockets, timers and the coordinator.
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ReplicatorConfig } from './config/schema.ts';
import { validateConfig } from './config/load.ts';
import { Coordinator, deepMerge } from './coordination/coordinator.ts';
import type { MemberRecord } from './coordination/keys.ts';
import { BackendPool, type Backend } from './delivery/backendPool.ts';
import { hashString, mix32, rendezvous } from './delivery/hashRing.ts';
import { InboundStream } from './delivery/inboundStream.ts';
import type { ClientSession } from './ingress/clientSession.ts';
import { bindListeners, bindUdp, type Listener } from './ingress/listeners.ts';
import { SessionTable, type EvictReason } from './ingress/sessionTable.ts';
import { decodeFrame, encodeAck, encodePing, FrameType, type DataFrame } from './protocol/frame.ts';
import { protocolParams } from './protocol/params.ts';
import { PeerLink, type PeerEndpoint } from './replication/peerLink.ts';
import { DropReason, type ReplicatorSnapshot } from './observability/stats.ts';
import { verifyFrame, signFrame, type FrameKey, type KeyRing } from './protocol/frameAuth.ts';
import { loadKeyRing } from './replication/clusterKeys.ts';
import { BackendSockets } from './delivery/backendSockets.ts';
import type { RecvBatch, UdpIo, UdpSocketIo } from './io/udpIo.ts';
import { selectIo } from './io/select.ts';

const UPSTREAM_QUEUE_LIMIT = 256;
import { Admission, takeToken } from './ingress/admission.ts';

/** Same key in every cluster for one session, so equal backend lists give the same backend index. */
export function sessionHashKey(originHash: number, epoch: number, session: number): number {
  return mix32(originHash ^ Math.imul(epoch, 0x9e3779b1) ^ mix32(session));
}

interface InboundEntry {
  stream: InboundStream;
  originCluster: string;
  originHash: number;
}

interface LinkEntry {
  link: PeerLink;
  static: boolean;
  departedAt: number | undefined;
}

export class Replicator {
  readonly cluster: string;
  readonly instance: string;
  readonly member: string;
  epoch = 0;
  private cfg: ReplicatorConfig;
  private readonly baseCfg: ReplicatorConfig;
  private listeners: Listener[] = [];
  private replSocket: UdpSocketIo | undefined;
  /** The sockets' implementation (config `io`): batched (udp_batch addon) or Node's dgram. */
  readonly io: UdpIo;
  private readonly backendSockets: BackendSockets;
  private retainedBackendsVersion = 0;
  /** One handler per event for every session's upstream socket (no closures per session). */
  private readonly upstreamHandlers: {
    batch: (replies: RecvBatch, up: UdpSocketIo) => void;
    connect: (up: UdpSocketIo) => void;
    error: (err: Error, up: UdpSocketIo) => void;
  };
  private readonly pool: BackendPool;
  private readonly table: SessionTable<ClientSession>;
  private readonly links = new Map<string, LinkEntry>();
  private remoteClusters = new Map<string, PeerLink[]>();
  private targetsVersion = 0;
  private readonly interned = new Map<string, PeerLink[]>();
  private internedVersion = -1;
  private readonly inbound = new Map<string, InboundEntry>();
  private readonly ackDirty = new Set<InboundEntry>();
  private readonly dirtyLinks = new Set<PeerLink>();
  private flushScheduled = false;
  private nextSessionId = 1;
  private readonly selfHash: number;
  private coordinator: Coordinator | undefined;
  private timers: NodeJS.Timeout[] = [];
  private ready = false;
  private keyRing: KeyRing;
  /** Per peer member: the accepted key its frames are signed with; frames to it are signed with the same. */
  private readonly peerKeys = new Map<string, FrameKey>();
  private admission: Admission;
  private draining = false;
  private lastIngressAt = 0;
  private readonly stats = {
    ingressDatagrams: 0,
    ingressBytes: 0,
    repliesRelayed: 0,
    remoteRepliesDiscarded: 0,
    delivered: new Map<string, number>(),
    dropped: new Map<string, number>(),
    evicted: new Map<string, number>(),
    /** Totals of inbound streams that were retired, so counters never go backwards. */
    retiredDuplicates: 0,
    retiredDropped: new Map<string, number>(),
    retiredLinks: new Map<string, { replicated: number; retransmits: number; backlogDropped: number }>(),
  };

  constructor(
    config: ReplicatorConfig,
    private readonly log: Logger,
    /** Workers share the ingress ports through SO_REUSEPORT: the kernel hashes each client to one of them. */
    private readonly reusePort = false,
  ) {
    this.cfg = config;
    this.baseCfg = config;
    this.cluster = config.cluster;
    this.instance = config.instance ?? hostname().slice(0, 63);
    this.member = `${this.cluster}/${this.instance}`;
    this.selfHash = hashString(this.member);
    this.pool = new BackendPool((msg) => this.log.warn(msg));
    this.keyRing = loadKeyRing(config.replication.auth);
    this.io = selectIo(config.io);
    this.backendSockets = new BackendSockets(
      this.io,
      (n) => (this.stats.remoteRepliesDiscarded += n),
      (err) => this.log.warn({ err: err.message }, 'delivery socket error'),
    );
    // One set of handlers for every session's upstream socket: the session is the socket's context.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.upstreamHandlers = {
      batch(replies, up) {
        const s = up.context as ClientSession | undefined;
        if (!s) return;
        // Relay the backend's replies from the address the client talked to.
        for (let i = 0; i < replies.count; i++)
          s.listener.send(replies.data, s.port, s.address, replies.offset(i), replies.length(i));
        self.stats.repliesRelayed += replies.count;
        self.table.promote(s, performance.now());
      },
      connect(up) {
        const s = up.context as ClientSession | undefined;
        if (!s || s.upstream !== up) return;
        s.upstreamConnected = true;
        const q = s.upstreamQueue;
        s.upstreamQueue = undefined;
        if (q) for (const payload of q) up.send(payload, 0, undefined);
      },
      error(err, up) {
        const s = up.context as ClientSession | undefined;
        self.drop(DropReason.SendError);
        if (s?.upstreamQueue) {
          for (let i = 0; i < s.upstreamQueue.length; i++) self.drop(DropReason.SendError);
          s.upstreamQueue = undefined;
        }
        self.log.debug({ err: err.message }, 'upstream socket error');
      },
    };
    this.admission = new Admission(config.ingress.allowCidrs, config.ingress.denyCidrs);
    this.table = new SessionTable<ClientSession>(
      config.ingress.maxSessions,
      config.ingress.sessionIdleTimeoutMs,
      (s, reason) => this.onEvict(s, reason),
    );
  }

  get config(): ReplicatorConfig {
    return this.cfg;
  }

  /** Binds sockets, obtains an epoch, joins the membership. Ready once all of that holds. */
  async start(): Promise<void> {
    const cfg = this.cfg;
    await this.pool.configure(cfg.delivery.backends, cfg.delivery.dns, cfg.delivery.dnsRefreshMs);
    if (this.io.reason.includes('fell back')) this.log.warn({ io: this.io.kind }, this.io.reason);
    else this.log.info({ io: this.io.kind }, this.io.reason);
    // GRO: a peer's burst of frames is read as one coalesced datagram and split in the addon.
    this.replSocket = await bindUdp(this.io, cfg.replication.address, cfg.replication.port, { gro: true });
    // A frame's records are views of it that the reorder buffer may keep: copy(i) (dgram's own Buffer).
    this.replSocket.onBatch = (b) => {
      for (let i = 0; i < b.count; i++) this.onFrame(b.copy(i), b, i);
    };
    this.replSocket.onError = (err) => {
      if ((err as NodeJS.ErrnoException).syscall?.startsWith('send')) this.drop(DropReason.SendError);
      this.log.error({ err: err.message }, 'replication socket error');
    };
    if (cfg.etcd) {
      const advertise = this.advertisedEndpoint();
      this.coordinator = new Coordinator(
        {
          mesh: cfg.mesh,
          cluster: this.cluster,
          instance: this.instance,
          endpoints: cfg.etcd.endpoints,
          leaseTtlSeconds: cfg.etcd.leaseTtlSeconds,
          dialTimeoutMs: cfg.etcd.dialTimeoutMs,
          tls: cfg.etcd.tls,
          record: {
            id: this.member,
            cluster: this.cluster,
            instance: this.instance,
            address: advertise.address,
            port: advertise.port,
            ingressPorts: cfg.ingress.ports,
            metricsPort: cfg.metrics.port,
            startedAt: new Date().toISOString(),
          },
        },
        this.log.child({ component: 'coordinator' }),
      );
      this.coordinator.on('members', (m) => this.applyMembers(m));
      this.coordinator.on('config', (doc) => this.applyDynamicConfig(doc));
      this.coordinator.on('etcdUp', (up) =>
        this.log.info(
          { etcdUp: up },
          up ? 'etcd reachable' : 'etcd unreachable: keeping last known membership',
        ),
      );
      this.epoch = await this.coordinator.start();
    } else {
      // No etcd (a static dev setup): seconds since 2020 never repeat across restarts of one host.
      this.epoch = Math.floor((Date.now() - Date.UTC(2020, 0, 1)) / 1000);
      this.log.warn('no etcd configured: epoch from the clock, peers from replication.peers only');
    }
    // Static peers join once the epoch is known: every link carries it in its frames.
    for (const p of cfg.replication.peers) this.upsertLink(this.peerFromConfig(p), true);
    this.rebuildTargets();

    this.listeners = await bindListeners(this.io, cfg.ingress.addresses, cfg.ingress.ports, this.reusePort);
    for (const [index, l] of this.listeners.entries()) {
      // Clients of different ingress sockets are different sessions (the listener index is in the key).
      l.socket.onBatch = (b) => {
        for (let i = 0; i < b.count; i++) this.onClientDatagram(l.socket, index, b, i);
      };
      l.socket.onError = (err) => this.log.error({ err: err.message, port: l.port }, 'ingress socket error');
    }
    const tick = setInterval(() => this.tick(), protocolParams.tickMs);
    const slow = setInterval(() => this.slowTick(), 50);
    const sweep = setInterval(() => this.sweep(), 1000);
    this.timers.push(tick, slow, sweep);
    if (cfg.replication.auth.keyFiles.length > 0) {
      this.timers.push(setInterval(() => this.reloadKeys(), cfg.replication.auth.reloadMs));
    }
    this.ready = true;
    this.log.info(
      {
        member: this.member,
        epoch: this.epoch,
        ingress: this.listeners.map((l) => `${l.address}:${l.port}`),
        replication: `${cfg.replication.address}:${this.replSocket.address().port}`,
        backends: this.pool.backends.map((b) => `${b.address}:${b.port}`),
        mode: cfg.ingress.mode,
        io: this.io.kind,
      },
      'replicator ready',
    );
  }

  /** Ports actually bound (tests ask for port 0). */
  get ingressPorts(): number[] {
    return this.listeners.map((l) => l.port);
  }

  get replicationPort(): number {
    return this.replSocket?.address().port ?? 0;
  }

  private advertisedEndpoint(): { address: string; port: number } {
    const r = this.cfg.replication;
    const bound = this.replSocket?.address().port ?? r.port;
    const address =
      r.advertiseAddress ?? (r.address === '0.0.0.0' ? '127.0.0.1' : r.address === '::' ? '::1' : r.address);
    return { address, port: r.advertisePort ?? bound };
  }

  // ---------------------------------------------------------------- ingress (the per-datagram path)

  private onClientDatagram(listener: UdpSocketIo, listenerIndex: number, b: RecvBatch, i: number): void {
    const now = performance.now();
    const length = b.length(i);
    if (length > this.cfg.ingress.maxPayloadBytes) {
      this.drop(DropReason.Oversize);
      return;
    }
    const key = b.sourceKey(i, listenerIndex);
    let s = this.table.get(key);
    if (s === undefined) {
      if (this.draining || !this.ready) {
        this.drop(DropReason.Draining);
        return;
      }
      const verdict = this.admission.check(b.address(i));
      if (verdict !== 'allowed') {
        this.drop(verdict === 'denied' ? DropReason.Denied : DropReason.NotAllowed);
        return;
      }
      const created = this.newSession(key, listener, b.address(i), b.port(i), now);
      if (!created) {
        this.drop(DropReason.SessionCap);
        return;
      }
      s = created;
    } else {
      this.table.touch(s, now);
    }
    const limit = this.cfg.ingress.rateLimit;
    if (limit && !takeToken(s, now, limit.datagramsPerSecond, limit.burst)) {
      this.drop(DropReason.RateLimited);
      return;
    }
    this.stats.ingressDatagrams++;
    this.stats.ingressBytes += length;
    this.lastIngressAt = now;
    const seq = s.nextSeq++;
    this.deliverAtOrigin(s, b, i);
    if (s.targetsVersion !== this.targetsVersion) this.chooseTargets(s);
    const targets = s.targets;
    // The retransmit buffer keeps the payload: one copy (dgram: its own Buffer) shared by every target.
    const msg = targets.length > 0 ? b.copy(i) : undefined;
    for (let t = 0; t < targets.length; t++) {
      targets[t].enqueue(s.id, seq, msg!);
      this.dirtyLinks.add(targets[t]);
    }
    if (!this.flushScheduled && targets.length > 0) {
      this.flushScheduled = true;
      setImmediate(this.flushLinks);
    }
  }

  /** Frames are built once per event-loop turn, so datagrams that arrived together share frames. */
  private readonly flushLinks = (): void => {
    this.flushScheduled = false;
    const now = performance.now();
    for (const link of this.dirtyLinks) link.flush(now);
    this.dirtyLinks.clear();
    this.io.flush(); // this runs in an immediate: the frames leave now, not a turn later
  };

  private newSession(
    key: string | number,
    listener: UdpSocketIo,
    address: string,
    port: number,
    now: number,
  ): ClientSession | undefined {
    const id = this.nextSessionId++;
    if (this.nextSessionId > 0xffffffff) this.nextSessionId = 1; // 4 billion sessions per epoch; then wrap
    const s: ClientSession = {
      key,
      id,
      address,
      port,
      listener,
      nextSeq: 0,
      hashKey: sessionHashKey(this.selfHash, this.epoch, id),
      upstream: undefined,
      upstreamBackend: undefined,
      upstreamConnected: false,
      upstreamQueue: undefined,
      backend: undefined,
      backendVersion: -1,
      targets: [],
      targetsVersion: -1,
      lastSeen: now,
      refreshedAt: now,
      datagrams: 1,
      established: false,
      tokens: this.cfg.ingress.rateLimit?.burst ?? 0,
      refilledAt: now,
    };
    if (!this.table.add(s, now)) return undefined;
    return s;
  }

  private onEvict(s: ClientSession, reason: EvictReason): void {
    this.stats.evicted.set(reason, (this.stats.evicted.get(reason) ?? 0) + 1);
    this.closeUpstream(s);
  }

  private deliverAtOrigin(s: ClientSession, b: RecvBatch, i: number): void {
    if (s.backendVersion !== this.pool.version) {
      s.backend = this.pool.pick(s.hashKey);
      s.backendVersion = this.pool.version;
    }
    const backend = s.backend;
    if (!backend) {
      this.drop(DropReason.NoBackend);
      return;
    }
    if (this.cfg.ingress.mode === 'reply') {
      // The session's own socket, connected to its backend (of the backend's address family).
      if (s.upstreamBackend !== backend) this.openUpstream(s, backend);
      if (s.upstreamConnected) s.upstream!.send(b.data, 0, undefined, b.offset(i), b.length(i));
      else if ((s.upstreamQueue ??= []).length < UPSTREAM_QUEUE_LIMIT) s.upstreamQueue.push(b.copy(i));
      else {
        this.drop(DropReason.SendError);
        return;
      }
    } else {
      this.backendSockets.send(backend, b.data, b.offset(i), b.length(i));
    }
    this.countDelivered(this.cluster);
  }

  private openUpstream(s: ClientSession, b: Backend): void {
    this.closeUpstream(s);
    const up = this.io.open(b.family);
    up.context = s;
    up.onBatch = this.upstreamHandlers.batch;
    up.onError = this.upstreamHandlers.error;
    s.upstream = up;
    s.upstreamBackend = b;
    s.upstreamConnected = false;
    up.connect(b.port, b.address).then(
      () => this.upstreamHandlers.connect(up),
      (err: Error) => this.upstreamHandlers.error(err, up),
    );
  }

  private closeUpstream(s: ClientSession): void {
    const up = s.upstream;
    if (!up) return;
    up.context = undefined;
    s.upstream = undefined;
    s.upstreamBackend = undefined;
    s.upstreamConnected = false;
    s.upstreamQueue = undefined;
    try {
      up.close();
    } catch {
      /* already closed */
    }
  }

  private chooseTargets(s: ClientSession): void {
    const out: PeerLink[] = [];
    for (const links of this.remoteClusters.values()) {
      const live = links.filter((l) => l.state === 'up');
      const pick = rendezvous(live.length > 0 ? live : links, (l) => l.peer.id, s.hashKey);
      if (pick) out.push(pick);
    }
    // Sessions that chose the same replicas share one array: a million sessions, a handful of arrays.
    if (this.internedVersion !== this.targetsVersion) {
      this.interned.clear();
      this.internedVersion = this.targetsVersion;
    }
    const sig = out.map((l) => l.peer.id).join('\n');
    let shared = this.interned.get(sig);
    if (!shared) {
      shared = out;
      this.interned.set(sig, shared);
    }
    s.targets = shared;
    s.targetsVersion = this.targetsVersion;
  }

  // ---------------------------------------------------------------- replication frames

  private onFrame(raw: Buffer, from: RecvBatch, i: number): void {
    const auth = verifyFrame(raw, this.keyRing);
    if (!auth.ok) {
      this.drop(auth.reason === 'bad_mac' ? DropReason.BadMac : DropReason.Unauthenticated);
      return;
    }
    const res = decodeFrame(auth.frame);
    if (!res.ok) {
      this.drop(DropReason.MalformedFrame);
      return;
    }
    const f = res.frame;
    if (f.sender === this.member) return; // our own frame looped back: ignore
    // Key rollover: answer each peer with the key it signs with (any key we accept), so a peer that
    // has not loaded the new key yet, or no longer has the old one, can verify what we send it.
    if (auth.key !== undefined && this.peerKeys.get(f.sender) !== auth.key)
      this.peerKeys.set(f.sender, auth.key);
    const now = performance.now();
    switch (f.type) {
      case FrameType.Data:
        this.onData(f, from, i, now);
        break;
      case FrameType.Ack: {
        const e = this.links.get(f.sender);
        if (e) {
          const wasDown = e.link.state !== 'up';
          e.link.onAck(f, now);
          if (wasDown) this.targetsVersion++;
        } else this.drop(DropReason.UnknownStream);
        break;
      }
      case FrameType.Ping: {
        const link = this.links.get(f.sender)?.link;
        if (link?.observePeerEpoch(f.epoch, now)) {
          this.log.warn(
            { peer: f.sender, epoch: f.epoch, resending: link.lag },
            'peer restarted; resending what it had not delivered',
          );
        }
        const to = this.replyAddress(f.sender, from, i);
        this.sendFrame(
          encodePing(FrameType.Pong, this.member, f.epoch, f.timestamp),
          to.port,
          to.address,
          f.sender,
        );
        break;
      }
      case FrameType.Pong: {
        const e = this.links.get(f.sender);
        if (e && f.epoch === this.epoch) {
          const wasDown = e.link.state !== 'up';
          e.link.onPong(f.timestamp, now);
          if (wasDown) this.targetsVersion++;
        }
        break;
      }
    }
  }

  private onData(f: DataFrame, from: RecvBatch, i: number, now: number): void {
    const key = `${f.sender}#${f.epoch}`;
    let entry = this.inbound.get(key);
    if (entry === undefined) {
      entry = this.openInbound(f, now);
      if (!entry) return;
    }
    const stream = entry.stream;
    if (f.lowWater > stream.window.base) stream.applyLowWater(f.lowWater, now);
    for (let r = 0; r < f.records.length; r++) stream.receive(f.records[r], now);
    if (stream.ackUrgent || stream.unacked >= protocolParams.ackEveryDatagrams) this.sendAck(entry, from, i);
    else this.ackDirty.add(entry);
  }

  private openInbound(f: DataFrame, now: number): InboundEntry | undefined {
    const slash = f.sender.indexOf('/');
    const originCluster = slash > 0 ? f.sender.slice(0, slash) : f.sender;
    // A newer epoch of the same origin retires the older stream: what it still holds is released in order.
    for (const [k, e] of this.inbound) {
      if (e.stream.origin !== f.sender) continue;
      if (e.stream.epoch > f.epoch) {
        this.drop(DropReason.UnknownStream); // a straggler from an older incarnation
        return undefined;
      }
      this.retireInbound(k, e, now);
    }
    const originHash = hashString(f.sender);
    const epoch = f.epoch;
    const entry: InboundEntry = {
      originCluster,
      originHash,
      stream: new InboundStream(
        f.sender,
        epoch,
        f.lowWater,
        {
          windowSize: protocolParams.windowDatagrams,
          reorderLimit: this.cfg.delivery.reorderBufferDatagrams,
          gapTimeoutMs: this.cfg.delivery.gapTimeoutMs,
        },
        (session, _seq, payload) => this.deliverReplicated(entry, epoch, session, payload),
        now,
      ),
    };
    this.inbound.set(`${f.sender}#${f.epoch}`, entry);
    return entry;
  }

  private retireInbound(key: string, e: InboundEntry, now: number): void {
    e.stream.applyLowWater(e.stream.window.highest + 1, now);
    const c = e.stream.counters;
    this.stats.retiredDuplicates += c.duplicates;
    for (const [reason, n] of this.streamDrops(e.stream)) {
      this.stats.retiredDropped.set(reason, (this.stats.retiredDropped.get(reason) ?? 0) + n);
    }
    this.inbound.delete(key);
    this.ackDirty.delete(e);
  }

  private streamDrops(s: InboundStream): Array<[string, number]> {
    const c = s.counters;
    return [
      [DropReason.GapTimeout, c.gapTimeoutSkipped],
      [DropReason.SenderSkipped, c.senderSkipped],
      [DropReason.ReorderFull, c.reorderFull],
      [DropReason.BeyondWindow, c.beyondWindow],
      [DropReason.Late, c.late],
    ];
  }

  private deliverReplicated(entry: InboundEntry, epoch: number, session: number, payload: Buffer): void {
    const b = this.pool.pick(sessionHashKey(entry.originHash, epoch, session));
    if (!b) {
      this.drop(DropReason.NoBackend);
      return;
    }
    this.backendSockets.send(b, payload);
    this.countDelivered(entry.originCluster);
  }

  private sendAck(entry: InboundEntry, from?: RecvBatch, i = 0): void {
    const s = entry.stream;
    const st = s.ackState(protocolParams.maxAckRanges);
    const to = this.replyAddress(s.origin, from, i);
    const delayUs = Math.max(0, (performance.now() - s.lastActivity) * 1000);
    this.sendFrame(
      encodeAck(this.member, s.epoch, st.base, st.largest, delayUs, st.ranges),
      to.port,
      to.address,
      s.origin,
    );
    s.unacked = 0;
    s.ackUrgent = false;
    this.ackDirty.delete(entry);
  }

  /** Answers go to the peer's advertised endpoint (it may sit behind a NAT or proxy), else to the source. */
  private replyAddress(member: string, from?: RecvBatch, i = 0): { address: string; port: number } {
    const e = this.links.get(member);
    if (e) return { address: e.link.peer.address, port: e.link.peer.port };
    if (from) return { address: from.address(i), port: from.port(i) };
    return { address: '127.0.0.1', port: 0 };
  }

  // ---------------------------------------------------------------- membership and config

  private peerFromConfig(p: {
    cluster: string;
    instance?: string;
    address: string;
    port: number;
  }): PeerEndpoint {
    const instance = p.instance ?? p.cluster;
    return { id: `${p.cluster}/${instance}`, cluster: p.cluster, address: p.address, port: p.port };
  }

  private newLink(peer: PeerEndpoint): PeerLink {
    const r = this.cfg.replication;
    return new PeerLink(
      peer,
      {
        sender: this.member,
        epoch: this.coordinator?.epoch || this.epoch,
        maxBytes: r.retransmitBufferBytes,
        maxFrameBytes: r.maxFrameBytes,
      },
      { send: (frame, port, address) => this.sendFrame(frame, port, address, peer.id) },
      performance.now(),
    );
  }

  private sendFrame(frame: Buffer, port: number, address: string, to?: string): void {
    if (port === 0) return;
    const key = to === undefined ? undefined : this.peerKeys.get(to);
    // Failures are counted by the socket's onError (send_error); frames of one flush to one peer leave
    // together (batched: one sendmmsg, GSO).
    this.replSocket?.send(signFrame(frame, this.keyRing, key), port, address);
  }

  private upsertLink(peer: PeerEndpoint, isStatic: boolean): void {
    if (peer.id === this.member || peer.cluster === this.cluster) return;
    const e = this.links.get(peer.id);
    if (e) {
      e.link.peer = peer;
      e.departedAt = undefined;
      e.static ||= isStatic;
    } else {
      this.links.set(peer.id, { link: this.newLink(peer), static: isStatic, departedAt: undefined });
      this.log.info({ peer: peer.id, address: `${peer.address}:${peer.port}` }, 'peer joined');
    }
  }

  private applyMembers(members: MemberRecord[]): void {
    const now = performance.now();
    const seen = new Set<string>();
    for (const m of members) {
      seen.add(m.id);
      this.upsertLink({ id: m.id, cluster: m.cluster, address: m.address, port: m.port }, false);
      this.links.get(m.id)?.link.observePeerEpoch(m.epoch, now);
    }
    for (const [id, e] of this.links) {
      if (!seen.has(id) && !e.static && e.departedAt === undefined) {
        // Keep its backlog for a while: a replica that restarts under the same name catches up.
        e.departedAt = now;
        this.log.warn({ peer: id, lag: e.link.lag }, 'peer left the membership; keeping its backlog');
      }
    }
    this.rebuildTargets();
  }

  private rebuildTargets(): void {
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

  /** Dynamic config from etcd, merged over the file config; invalid documents are refused and logged. */
  private applyDynamicConfig(doc: Record<string, unknown>): void {
    let next: ReplicatorConfig;
    try {
      next = validateConfig(
        deepMerge(structuredClone(this.baseCfg) as unknown as Record<string, unknown>, doc),
        'etcd dynamic config',
      );
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'refusing dynamic config; keeping the current one');
      return;
    }
    const prev = this.cfg;
    this.cfg = {
      ...next,
      cluster: prev.cluster,
      instance: prev.instance,
      mesh: prev.mesh,
      etcd: prev.etcd,
      metrics: prev.metrics,
      replication: { ...next.replication, address: prev.replication.address, port: prev.replication.port },
    };
    this.table.maxSessions = this.cfg.ingress.maxSessions;
    this.admission = new Admission(this.cfg.ingress.allowCidrs, this.cfg.ingress.denyCidrs);
    this.table.idleMs = this.cfg.ingress.sessionIdleTimeoutMs;
    if (JSON.stringify(prev.delivery) !== JSON.stringify(this.cfg.delivery)) {
      void this.pool.configure(
        this.cfg.delivery.backends,
        this.cfg.delivery.dns,
        this.cfg.delivery.dnsRefreshMs,
      );
    }
    for (const p of this.cfg.replication.peers) this.upsertLink(this.peerFromConfig(p), true);
    this.rebuildTargets();
    this.log.info({ keys: Object.keys(doc) }, 'applied dynamic config');
  }

  /** A rotated Secret shows up as new file content: sign with the new key, still accept the old one. */
  private reloadKeys(): void {
    try {
      const next = loadKeyRing(this.cfg.replication.auth);
      if (
        next.accepted.map((k) => k.key.toString('hex')).join() !==
        this.keyRing.accepted.map((k) => k.key.toString('hex')).join()
      ) {
        this.keyRing = next;
        // Keep signing for each peer with its key if we still accept it; otherwise the current key.
        for (const [member, k] of this.peerKeys) {
          const same = next.accepted.find((a) => a.key.equals(k.key));
          if (same) this.peerKeys.set(member, same);
          else this.peerKeys.delete(member);
        }
        this.log.info({ keys: next.accepted.length }, 'cluster keys reloaded');
      }
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot reload cluster keys; keeping the current ones');
    }
  }

  // ---------------------------------------------------------------- timers

  private tick(): void {
    const now = performance.now();
    for (const e of this.links.values()) {
      const before = e.link.state;
      e.link.tick(now);
      if (e.link.state !== before) {
        this.targetsVersion++;
        this.log.warn({ peer: e.link.peer.id, state: e.link.state, lag: e.link.lag }, `peer ${e.link.state}`);
      }
    }
    for (const entry of this.ackDirty) this.sendAck(entry);
  }

  private slowTick(): void {
    const now = performance.now();
    for (const e of this.inbound.values()) e.stream.expireGaps(now);
  }

  private sweep(): void {
    const now = performance.now();
    this.table.sweep(now);
    if (this.retainedBackendsVersion !== this.pool.version) {
      this.backendSockets.retain(this.pool.backends);
      this.retainedBackendsVersion = this.pool.version;
    }
    const idle = this.cfg.ingress.sessionIdleTimeoutMs;
    for (const [k, e] of this.inbound) {
      e.stream.sweepSessions(now, idle);
      if (
        now - e.stream.lastActivity > Math.max(idle, protocolParams.peerRetentionMs) &&
        e.stream.pendingCount === 0
      )
        this.retireInbound(k, e, now);
    }
    for (const [id, e] of this.links) {
      if (e.departedAt !== undefined && now - e.departedAt > protocolParams.peerRetentionMs) {
        const lost = e.link.close();
        this.stats.retiredLinks.set(id, { ...e.link.counters });
        this.links.delete(id);
        this.peerKeys.delete(id);
        this.log.warn({ peer: id, lost }, 'peer gone for longer than the retention: backlog dropped');
        this.rebuildTargets();
      }
    }
  }

  // ---------------------------------------------------------------- stats, drain, stop

  private drop(reason: DropReason): void {
    this.stats.dropped.set(reason, (this.stats.dropped.get(reason) ?? 0) + 1);
  }

  private countDelivered(origin: string): void {
    this.stats.delivered.set(origin, (this.stats.delivered.get(origin) ?? 0) + 1);
  }

  get etcdRequests(): number {
    return this.coordinator?.requests ?? 0;
  }

  snapshot(): ReplicatorSnapshot {
    const dropped = new Map(this.stats.dropped);
    const add = (reason: string, n: number) => n > 0 && dropped.set(reason, (dropped.get(reason) ?? 0) + n);
    for (const [r, n] of this.stats.retiredDropped) add(r, n);
    let duplicates = this.stats.retiredDuplicates;
    let reorderBuffered = 0;
    for (const e of this.inbound.values()) {
      duplicates += e.stream.counters.duplicates;
      reorderBuffered += e.stream.pendingCount;
      for (const [r, n] of this.streamDrops(e.stream)) add(r, n);
    }
    let backlogDropped = 0;
    for (const e of this.links.values()) backlogDropped += e.link.counters.backlogDropped;
    for (const c of this.stats.retiredLinks.values()) backlogDropped += c.backlogDropped;
    add(DropReason.PeerBacklogOverflow, backlogDropped);
    return {
      cluster: this.cluster,
      member: this.member,
      epoch: this.epoch,
      ready: this.ready && !this.draining,
      draining: this.draining,
      etcdUp: this.coordinator ? this.coordinator.etcdUp : false,
      ingressDatagrams: this.stats.ingressDatagrams,
      ingressBytes: this.stats.ingressBytes,
      repliesRelayed: this.stats.repliesRelayed,
      remoteRepliesDiscarded: this.stats.remoteRepliesDiscarded,
      sessionsActive: this.table.size,
      sessionsEvicted: Object.fromEntries(this.stats.evicted),
      delivered: Object.fromEntries(this.stats.delivered),
      duplicatesDropped: duplicates,
      dropped: Object.fromEntries(dropped),
      reorderBuffered,
      inboundStreams: this.inbound.size,
      etcdRequests: this.etcdRequests,
      io: {
        mode: this.io.kind,
        reason: this.io.reason,
        ...this.io.totals(),
        buffers: [
          ...(this.replSocket ? [{ socket: 'replication', ...this.replSocket.bufferSizes() }] : []),
          ...this.listeners.map((l) => ({ socket: `ingress:${l.port}`, ...l.socket.bufferSizes() })),
        ],
      },
      peers: [...this.links.values()].map(({ link, departedAt }) => ({
        id: link.peer.id,
        cluster: link.peer.cluster,
        address: link.peer.address,
        port: link.peer.port,
        up: link.state === 'up',
        departed: departedAt !== undefined,
        lagDatagrams: link.lag,
        backlogBytes: link.bytes,
        rttSeconds: link.rtt.srttMs / 1000,
        replicated: link.counters.replicated,
        retransmits: link.counters.retransmits,
        spuriousRetransmits: link.spuriousRetransmits,
        backlogDropped: link.counters.backlogDropped,
      })),
    };
  }

  /**
   * Graceful drain: stop taking new sessions (readiness fails so load balancers move away), keep serving
   * existing ones, and retransmit until every live peer acknowledged everything or the deadline passes.
   */
  async drain(
    deadlineMs = this.cfg.drain.deadlineMs,
  ): Promise<{ complete: boolean; unacknowledged: number }> {
    this.draining = true;
    const until = performance.now() + deadlineMs;
    this.log.info({ deadlineMs }, 'draining');
    for (;;) {
      const now = performance.now();
      let pending = 0;
      for (const e of this.links.values()) if (e.link.state === 'up') pending += e.link.lag;
      const quiet = now - this.lastIngressAt > 200;
      if (pending === 0 && quiet) return { complete: true, unacknowledged: 0 };
      if (now >= until) return { complete: false, unacknowledged: pending };
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    this.ready = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.pool.stop();
    this.table.clear();
    for (const l of this.listeners) l.socket.close();
    this.listeners = [];
    this.backendSockets.close();
    this.replSocket?.close();
    this.replSocket = undefined;
    await this.coordinator?.stop();
  }
}
