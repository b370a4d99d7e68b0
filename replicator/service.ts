// The replicator: ingress -> positions -> local delivery + replication to one replica of every other
// cluster; inbound replication -> dedupe/order -> local delivery; replies back to clients. This file owns
// the I/O: sockets (ingress listeners, the replication Transport, backend sockets), timers, etcd and the
// ingress session table. Everything about replication lives in the I/O-free ReplicationCore
// (core/replicationCore.ts), which the simulator runs on a virtual network and clock.
//
// Timers: one replication alarm (a setTimeout, unref'd: sockets keep the process alive, not timers) armed
// at the core's next deadline, re-armed at the end of every event-loop turn that had replication events,
// and only when the deadline moved at least 1 ms earlier than the armed one (Node's timer resolution: a
// later deadline just lets the armed timer fire early, service nothing or what is due, and re-arm). So an
// idle replicator wakes up for pings and sweeps only, and a busy one does not create a timer per datagram.
// Datagrams queued during a turn leave at its end (setImmediate), never on a timer.
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ReplicatorConfig } from './config/schema.ts';
import { validateConfig } from './config/load.ts';
import { Coordinator, deepMerge } from './coordination/coordinator.ts';
import { BackendPool, type Backend } from './delivery/backendPool.ts';
import { hashString } from './delivery/hashRing.ts';
import type { ClientSession } from './ingress/clientSession.ts';
import { bindListeners, type Listener } from './ingress/listeners.ts';
import { SessionTable, type EvictReason } from './ingress/sessionTable.ts';
import type { PeerEndpoint } from './replication/peerLink.ts';
import { NO_MEMBER, sessionHashKey } from './replication/peerSet.ts';
import { DropReason, type ReplicatorSnapshot } from './observability/stats.ts';
import type { KeyRing } from './protocol/frameAuth.ts';
import { generateMemberKeyPair } from './protocol/memberKeys.ts';
import { loadKeyRing, requireKey } from './replication/clusterKeys.ts';
import { BackendSockets } from './delivery/backendSockets.ts';
import { ReplicationCore, streamDrops } from './core/replicationCore.ts';
import { UdpTransport } from './core/transport.ts';
import type { RecvBatch, UdpIo, UdpSocketIo } from './io/udpIo.ts';
import { selectIo } from './io/select.ts';
import { CONTROL_SESSION, type DeliverySink, type ReplicatedSession } from './core/deliverySink.ts';
import { SessionDelivery, type SessionOrigin } from './delivery/sessionDelivery.ts';

export { sessionHashKey };

const UPSTREAM_QUEUE_LIMIT = 256;
/**
 * How long a drain waits at most for origins to stop sending replicated datagrams here once it left the
 * membership (they move to another replica of this cluster; with none, they resend to a successor).
 */
const DRAIN_INBOUND_GRACE_MS = 3000;
import { Admission, takeToken } from './ingress/admission.ts';

export class Replicator {
  readonly cluster: string;
  readonly instance: string;
  readonly member: string;
  epoch = 0;
  private cfg: ReplicatorConfig;
  private readonly baseCfg: ReplicatorConfig;
  private listeners: Listener[] = [];
  private transport: UdpTransport | undefined;
  /** The sockets' implementation (config `io`): batched (udp_batch addon) or Node's dgram. */
  readonly io: UdpIo;
  private core: ReplicationCore | undefined;
  private readonly backendSockets: BackendSockets;
  /** Session identity at the backends (delivery.sessionIdentity): every delivery goes through it. */
  private readonly sessions: SessionDelivery;
  private selfOrigin: SessionOrigin;
  /** Sequence of this incarnation's control records (session announcements). */
  private controlSeq = 0;
  private retainedBackendsVersion = 0;
  /** One handler per event for every session's upstream socket (no closures per session). */
  private readonly upstreamHandlers: {
    batch: (replies: RecvBatch, up: UdpSocketIo) => void;
    connect: (up: UdpSocketIo) => void;
    error: (err: Error, up: UdpSocketIo) => void;
  };
  private readonly pool: BackendPool;
  private readonly table: SessionTable<ClientSession>;
  private flushScheduled = false;
  private nextSessionId = 1;
  private readonly selfHash: number;
  private coordinator: Coordinator | undefined;
  private timers: NodeJS.Timeout[] = [];
  /** The replication alarm and the core time it is armed for (Infinity: not armed). */
  private alarm: NodeJS.Timeout | undefined;
  private alarmAt = Infinity;
  private stopped = false;
  /** Timer wake-ups per timer, and how often the alarm was (re)armed: the cost of timers, at scrape time. */
  private readonly timerStats = { wakeups: { alarm: 0, sweep: 0, keys: 0 }, rearms: 0 };
  private ready = false;
  private keyRing: KeyRing;
  /** This incarnation's X25519 key pair: in memory only; its public half goes into the member record. */
  private readonly keyPair = generateMemberKeyPair();
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
    requireKey(this.keyRing, config.replication);
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
        // A reply establishes the session (protocol v2, D10: a client's own datagrams prove nothing).
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
    this.sessions = new SessionDelivery(
      this.sessionOptions(config),
      this.backendSockets,
      {
        onReply: () => this.stats.remoteRepliesDiscarded++,
        onDrop: (reason) => this.drop(reason as DropReason),
        onError: (err) => this.log.warn({ err: err.message }, 'delivery session socket error'),
      },
      this.io,
    );
    this.selfOrigin = { cluster: this.cluster, member: this.member, memberHash: this.selfHash, epoch: 0 };
    this.admission = new Admission(config.ingress.allowCidrs, config.ingress.denyCidrs);
    this.table = new SessionTable<ClientSession>(
      config.ingress.maxSessions,
      config.ingress.sessionIdleTimeoutMs,
      (s, reason) => this.onEvict(s, reason),
    );
  }

  /** Called when etcd says a newer incarnation of this member exists (issue 10 D5). */
  onFenced: (() => void) | undefined;

  get config(): ReplicatorConfig {
    return this.cfg;
  }

  private sessionOptions(c: ReplicatorConfig) {
    return {
      mode: c.delivery.sessionIdentity,
      maxSessions: c.ingress.maxSessions,
      idleMs: c.ingress.sessionIdleTimeoutMs,
    };
  }

  /** Binds sockets, obtains an epoch, joins the membership. Ready once all of that holds. */
  async start(): Promise<void> {
    const cfg = this.cfg;
    await this.pool.configure(cfg.delivery.backends, cfg.delivery.dns, cfg.delivery.dnsRefreshMs);
    if (this.io.reason.includes('fell back')) this.log.warn({ io: this.io.kind }, this.io.reason);
    else this.log.info({ io: this.io.kind }, this.io.reason);
    this.transport = await UdpTransport.bind(
      this.io,
      cfg.replication.address,
      cfg.replication.port,
      (msg) => {
        this.core?.onFrame(msg);
        this.endOfTurn();
      },
      () => this.drop(DropReason.SendError),
      (err) => this.log.error({ err: err.message }, 'replication socket error'),
    );
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
            publicKey: this.keyPair.publicKey,
          },
        },
        this.log.child({ component: 'coordinator' }),
      );
      this.coordinator.on('members', (m) => this.applyMembers(m));
      this.coordinator.on('clusters', (c) => {
        for (const name of c) this.pendingClusters.add(name);
        this.core?.peers.applyClusters(c);
      });
      this.coordinator.on('fenced', () => {
        // Stop taking traffic at once; the process owner (main.ts) exits so a supervisor starts a new
        // incarnation with a new epoch.
        this.ready = false;
        this.draining = true;
        this.onFenced?.();
      });
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
    this.selfOrigin = { ...this.selfOrigin, epoch: this.epoch };
    this.core = this.newCore(this.transport);
    // Members seen before the epoch was known are applied now: every link carries the epoch in its frames.
    this.core.peers.applyClusters(this.pendingClusters);
    if (this.pendingMembers) this.core.peers.applyMembers(this.pendingMembers, performance.now());
    this.pendingMembers = undefined;
    // Static peers join once the epoch is known.
    for (const p of cfg.replication.peers)
      this.core.peers.upsert(this.peerFromConfig(p), true, performance.now());
    this.core.peers.rebuildTargets();

    this.listeners = await bindListeners(this.io, cfg.ingress.addresses, cfg.ingress.ports, this.reusePort);
    for (const [index, l] of this.listeners.entries()) {
      // Clients of different ingress sockets are different sessions (the listener index is in the key).
      l.socket.onBatch = (b) => {
        for (let i = 0; i < b.count; i++) this.onClientDatagram(l.socket, index, b, i);
      };
      l.socket.onError = (err) => this.log.error({ err: err.message, port: l.port }, 'ingress socket error');
    }
    this.timers.push(
      setInterval(() => {
        this.timerStats.wakeups.sweep++;
        this.sweep();
      }, 1000),
    );
    if (cfg.replication.auth.keyFiles.length > 0) {
      this.timers.push(
        setInterval(() => {
          this.timerStats.wakeups.keys++;
          this.reloadKeys();
        }, cfg.replication.auth.reloadMs),
      );
    }
    this.rearm();
    this.ready = true;
    this.log.info(
      {
        member: this.member,
        epoch: this.epoch,
        ingress: this.listeners.map((l) => `${l.address}:${l.port}`),
        replication: `${cfg.replication.address}:${this.transport.port}`,
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
    return this.transport?.port ?? 0;
  }

  /** The replication core: frames in and out, peers, inbound streams (I/O-free; the simulator runs it too). */
  private newCore(transport: UdpTransport): ReplicationCore {
    const sink: DeliverySink = {
      deliver: (s, _seq, payload) => this.deliverReplicated(s, payload),
      control: (origin, payload) => this.sessions.control(origin, payload, performance.now()),
    };
    return new ReplicationCore({
      member: this.member,
      cluster: this.cluster,
      epoch: this.epoch,
      now: () => performance.now(),
      transport,
      sink,
      keyRing: () => this.keyRing,
      keyPair: this.keyPair,
      legacyLinkKeys: () => this.cfg.replication.auth.legacyLinkKeys,
      reorderBufferDatagrams: () => this.cfg.delivery.reorderBufferDatagrams,
      sessionIdleMs: () => this.cfg.ingress.sessionIdleTimeoutMs,
      retransmitBufferBytes: () => this.cfg.replication.retransmitBufferBytes,
      maxFrameBytes: () => this.cfg.replication.maxFrameBytes,
      drop: (reason, n = 1) => this.drop(reason as DropReason, n),
      delivered: (origin) => this.countDelivered(origin),
      log: (level, obj, msg) => this.log[level](obj, msg),
      announce: (s) => {
        // The peer set passes back the sessions the ingress gave it (ClientSession objects).
        const payload = this.sessions.announceNow(s as ClientSession);
        return payload && { seq: this.controlSeq++, payload };
      },
    });
  }

  private pendingMembers: Parameters<ReplicationCore['peers']['applyMembers']>[0] | undefined;
  /** The mesh's clusters as etcd said before the core existed. */
  private readonly pendingClusters = new Set<string>();

  private advertisedEndpoint(): { address: string; port: number } {
    const r = this.cfg.replication;
    const bound = this.transport?.port ?? r.port;
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
    const peers = this.core!.peers;
    const placements = peers.placementsOf(s);
    if (placements.length > 0) {
      // proxy-v2: the session's client address travels ahead of its datagrams (a control record).
      const announce = this.sessions.announcement(s, now, placements);
      if (announce) peers.replicateControl(s, CONTROL_SESSION, this.controlSeq++, announce);
      // The retransmit buffer keeps the payload: one copy (dgram: its own Buffer) shared by every peer.
      peers.replicate(s, seq, b.copy(i));
    }
    if (!this.flushScheduled && peers.dirty.size > 0) {
      this.flushScheduled = true;
      setImmediate(this.flushLinks);
    }
  }

  /** Replication events happened in this turn: flush and re-arm at its end (once per turn, not per frame). */
  private endOfTurn(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushLinks);
  }

  /** Frames are built once per event-loop turn, so datagrams that arrived together share frames. */
  private readonly flushLinks = (): void => {
    this.flushScheduled = false;
    this.core?.flush(performance.now());
    this.transport?.flush(); // this runs in an immediate: the frames leave now (one sendmmsg), not a turn later
    this.rearm();
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
      placements: [],
      placementsVersion: -1,
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
    this.core?.peers.releaseSession(s);
    this.closeUpstream(s);
  }

  private deliverAtOrigin(s: ClientSession, rb: RecvBatch, i: number): void {
    if (s.backendVersion !== this.pool.version) {
      s.backend = this.pool.pick(s.hashKey);
      s.backendVersion = this.pool.version;
    }
    const b = s.backend;
    if (!b) {
      this.drop(DropReason.NoBackend);
      return;
    }
    const identity = this.sessions.mode;
    if (this.cfg.ingress.mode === 'reply') {
      // The session's own socket, connected to its backend (of the backend's address family).
      if (s.upstreamBackend !== b) this.openUpstream(s, b);
      if (identity === 'proxy-v2') {
        const wrapped = this.sessions.wrapAtOrigin(this.selfOrigin, s, rb.payload(i));
        if (s.upstreamConnected) s.upstream!.send(wrapped, 0, undefined);
        else if ((s.upstreamQueue ??= []).length < UPSTREAM_QUEUE_LIMIT) s.upstreamQueue.push(wrapped);
        else {
          this.drop(DropReason.SendError);
          return;
        }
      } else if (s.upstreamConnected) s.upstream!.send(rb.data, 0, undefined, rb.offset(i), rb.length(i));
      else if ((s.upstreamQueue ??= []).length < UPSTREAM_QUEUE_LIMIT) s.upstreamQueue.push(rb.copy(i));
      else {
        this.drop(DropReason.SendError);
        return;
      }
    } else if (identity === 'none') {
      this.backendSockets.send(b, rb.data, rb.offset(i), rb.length(i));
    } else if (!this.sessions.deliver(this.selfOrigin, s.id, b, rb.copy(i), performance.now(), s)) {
      // Its own socket per session (or a PROXY header): a Buffer that outlives the batched ring.
      return;
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

  private deliverReplicated(r: ReplicatedSession, payload: Buffer): boolean {
    const b = this.pool.pick(r.hashKey);
    if (!b) {
      this.drop(DropReason.NoBackend);
      return false;
    }
    // Session identity: its own source socket or a PROXY v2 header (a full table is counted there).
    return this.sessions.deliver(r.incarnation, r.session, b, payload, performance.now());
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

  private applyMembers(members: Parameters<ReplicationCore['peers']['applyMembers']>[0]): void {
    if (!this.core) {
      this.pendingMembers = members; // applied once the core (and the epoch) exist
      return;
    }
    this.core.peers.applyMembers(members, performance.now());
    this.rearm();
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
    this.sessions.configure(this.sessionOptions(this.cfg));
    if (JSON.stringify(prev.delivery) !== JSON.stringify(this.cfg.delivery)) {
      void this.pool.configure(
        this.cfg.delivery.backends,
        this.cfg.delivery.dns,
        this.cfg.delivery.dnsRefreshMs,
      );
    }
    const core = this.core;
    if (core) {
      for (const p of this.cfg.replication.peers)
        core.peers.upsert(this.peerFromConfig(p), true, performance.now());
      core.peers.rebuildTargets();
      this.rearm();
    }
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
        const peerKeys = this.core?.peerKeys ?? new Map();
        for (const [member, k] of peerKeys) {
          const same = next.accepted.find((a) => a.key.equals(k.key));
          if (same) peerKeys.set(member, same);
          else peerKeys.delete(member);
        }
        this.log.info({ keys: next.accepted.length }, 'cluster keys reloaded');
      }
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot reload cluster keys; keeping the current ones');
    }
  }

  // ---------------------------------------------------------------- timers

  /**
   * Arms the alarm at the core's next deadline when that is at least 1 ms earlier than the armed one.
   * Node timers count whole milliseconds of libuv's clock from a truncated start, so a timer may fire up
   * to 1 ms before `delay` has passed on performance.now(): the delay is rounded up plus 1 ms, so the
   * alarm never fires before its deadline (where it would service nothing, and the next alarm could come
   * no sooner than timerGranularityMs later) and is at most about 1 ms late.
   */
  private rearm(): void {
    const core = this.core;
    if (!core || this.stopped) return;
    const at = core.nextDeadline();
    if (at === Infinity || at > this.alarmAt - 1) return;
    if (this.alarm !== undefined) clearTimeout(this.alarm);
    this.alarmAt = at;
    const delay = Math.min(0x7fffffff, Math.max(0, Math.ceil(at - performance.now())) + 1);
    this.alarm = setTimeout(this.onAlarm, delay);
    this.alarm.unref();
    this.timerStats.rearms++;
  }

  private readonly onAlarm = (): void => {
    this.alarm = undefined;
    this.alarmAt = Infinity;
    this.timerStats.wakeups.alarm++;
    if (!this.core || this.stopped) return;
    this.core.onAlarm(performance.now());
    this.transport?.flush();
    this.rearm();
  };

  private sweep(): void {
    const now = performance.now();
    this.table.sweep(now);
    this.sessions.sweep(now);
    if (this.retainedBackendsVersion !== this.pool.version) {
      this.backendSockets.retain(this.pool.backends);
      this.retainedBackendsVersion = this.pool.version;
    }
    this.core?.sweep();
    this.transport?.flush();
    this.rearm();
  }

  // ---------------------------------------------------------------- stats, drain, stop

  private drop(reason: DropReason, n = 1): void {
    this.stats.dropped.set(reason, (this.stats.dropped.get(reason) ?? 0) + n);
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
    const core = this.core;
    let duplicates = core?.retiredDuplicates ?? 0;
    let reorderBuffered = 0;
    let inboundStreams = 0;
    const links = core ? [...core.peers.links.values()] : [];
    /** Abandonment not shown per live peer: removed peers' totals and clusters without members. */
    const abandonedBy: ReplicatorSnapshot['abandonedElsewhere'] = [];
    const waitingForMember: ReplicatorSnapshot['waitingForMember'] = [];
    if (core) {
      for (const [r, n] of core.retiredDropped) add(r, n);
      for (const e of core.inbound()) {
        inboundStreams++;
        duplicates += e.stream.counters.duplicates;
        reorderBuffered += e.stream.pendingCount;
        for (const [r, n] of streamDrops(e.stream)) add(r, n);
      }
      let overflow = 0;
      let abandoned = 0;
      // handover moved datagrams to another replica: not a loss, so not in the dropped totals.
      for (const e of links) {
        overflow += e.link.counters.abandoned.overflow;
        abandoned += e.link.counters.backlogDropped - e.link.counters.abandoned.handover;
      }
      for (const [id, c] of core.peers.retired) {
        overflow += c.abandoned.overflow ?? 0;
        abandoned += c.backlogDropped - (c.abandoned.handover ?? 0);
        for (const [reason, n] of Object.entries(c.abandoned))
          if (n > 0) abandonedBy.push({ peer: id, reason, count: n });
      }
      for (const [cluster, n] of core.peers.noMemberAbandoned) {
        abandoned += n;
        abandonedBy.push({ peer: `${cluster}/*`, reason: NO_MEMBER, count: n });
      }
      for (const [cluster, n] of core.peers.waitingCount)
        if (n > 0) waitingForMember.push({ cluster, datagrams: n });
      add(DropReason.PeerBacklogOverflow, overflow);
      add(DropReason.Abandoned, abandoned);
    }
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
      deliverySessions: {
        mode: this.sessions.mode,
        active: this.sessions.sessionsActive,
        opened: this.sessions.counters.sessionsOpened,
        evicted: Object.fromEntries(this.sessions.counters.evicted),
        identityUnknown: this.sessions.counters.identityUnknown,
      },
      delivered: Object.fromEntries(this.stats.delivered),
      duplicatesDropped: duplicates,
      dropped: Object.fromEntries(dropped),
      reorderBuffered,
      inboundStreams,
      etcdRequests: this.etcdRequests,
      timers: { wakeups: { ...this.timerStats.wakeups }, rearms: this.timerStats.rearms },
      io: {
        mode: this.io.kind,
        reason: this.io.reason,
        ...this.io.totals(),
        buffers: [
          ...(this.transport ? [{ socket: 'replication', ...this.transport.bufferSizes() }] : []),
          ...this.listeners.map((l) => ({ socket: `ingress:${l.port}`, ...l.socket.bufferSizes() })),
        ],
      },
      abandonedElsewhere: abandonedBy,
      waitingForMember,
      peers: links.map(({ link, departedAt }) => ({
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
        abandoned: { ...link.counters.abandoned },
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
    const start = performance.now();
    const until = start + deadlineMs;
    this.log.info({ deadlineMs }, 'draining');
    // Leave the membership first: origins stop choosing this replica for their sessions (they move to
    // another replica of this cluster behind a barrier) while it still acknowledges what they sent it.
    // Stopping at once left their last datagrams unacknowledged until the hand-over timeout (chaos: a
    // SIGTERM stalled the replica's sessions ~5 s and some were delivered twice).
    await this.coordinator?.leave();
    for (;;) {
      const now = performance.now();
      // Every peer counts, down ones too: their backlog is not delivered by stopping (D12); so do the
      // datagrams waiting for a member of a cluster that has none.
      const peers = this.core?.peers;
      const pending = peers ? peers.unacknowledged + peers.waitingForMembers + peers.heldBehindBarriers : 0;
      const quiet = now - this.lastIngressAt > 200;
      // Inbound: no replicated datagram for 200 ms and every ACK sent (origins have moved on), or a
      // bounded grace when they have nowhere else to go (a single replica: they resend to its successor).
      const inboundQuiet =
        now - start > DRAIN_INBOUND_GRACE_MS ||
        (now - this.lastInboundAt() > 200 && (this.core?.ackDirty.size ?? 0) === 0);
      if (pending === 0 && quiet && inboundQuiet) return { complete: true, unacknowledged: 0 };
      if (now >= until) return { complete: false, unacknowledged: pending };
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** When this replicator last received a replicated datagram from any origin. */
  private lastInboundAt(): number {
    let last = -Infinity;
    if (this.core) for (const e of this.core.inbound()) last = Math.max(last, e.stream.lastActivity);
    return last;
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.alarm !== undefined) clearTimeout(this.alarm);
    this.alarm = undefined;
    this.pool.stop();
    this.table.clear();
    for (const l of this.listeners) l.socket.close();
    this.listeners = [];
    this.sessions.close();
    this.backendSockets.close();
    // What no peer acknowledged is abandoned now, counted per peer (reason shutdown).
    const left = this.core?.peers.close() ?? 0;
    if (left > 0) this.log.warn({ abandoned: left }, 'stopping with unacknowledged datagrams');
    this.transport?.close();
    this.transport = undefined;
    await this.coordinator?.stop();
  }
}
