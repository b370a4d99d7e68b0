// Session identity at the backend (`delivery.sessionIdentity`). Replication exists so that the service in
// every cloud holds the same per-client state; that only works if every backend can tell the sessions
// apart, not just the origin's (whose reply-mode upstream sockets give one source per session).
//   socket    every cluster delivers a session from its own source socket for the session's lifetime:
//             the backend sees one stable source address:port per client session, as at the origin.
//             The sockets live in a table bounded and idle-expired like the ingress session table;
//             replies that arrive on them belong to clients of another cloud: counted and discarded.
//   proxy-v2  every delivered datagram starts with a PROXY v2 header (proxyV2.ts) carrying the client's
//             real address and port and the origin/session TLVs, at the origin too, so every cluster
//             sees identical input. Remote clusters learn the address from session announcements
//             (sessionAnnounce.ts) that travel in the replication stream.
//   none      the behaviour before identity existed: remote deliveries share one socket per backend.
// The replicator talks to this module through five calls (announcement, wrapAtOrigin, deliverOneway,
// deliver, control) so the per-datagram path in service.ts stays one hook per delivery point.
import { createSocket } from 'node:dgram';
import type { UdpIo } from '../io/udpIo.ts';
import type { Backend } from './backendPool.ts';
import type { BackendSockets } from './backendSockets.ts';
import { SessionTable, type EvictReason, type TableEntry } from '../ingress/sessionTable.ts';
import { encodeProxyV2, sessionTlv, TLV_ORIGIN_CLUSTER, TLV_SESSION, type Endpoint } from './proxyV2.ts';
import {
  ANNOUNCE_REFRESH_MS,
  announceable,
  decodeAnnounce,
  encodeAnnounce,
  type SessionEndpoint,
} from './sessionAnnounce.ts';

export type SessionIdentity = 'socket' | 'proxy-v2' | 'none';

/** Where a stream of sessions comes from: the origin replicator (member) and its epoch. */
export interface SessionOrigin {
  cluster: string;
  member: string;
  memberHash: number;
  epoch: number;
}

/** What the origin knows about a client session (a subset of the ingress ClientSession). */
export interface OriginSession {
  id: number;
  address: string;
  port: number;
  /** The replica links the session's datagrams go to, when the session carries them itself. */
  targets?: readonly unknown[];
  /** The ingress socket the client talked to (the PROXY header's destination). */
  listener: { address(): { address: string; port: number } };
}

export interface SessionDeliveryOptions {
  mode: SessionIdentity;
  maxSessions: number;
  idleMs: number;
}

export const IdentityDrop = {
  /** The delivery-session table was full of established sessions: the datagram was not delivered. */
  TableFull: 'identity_table_full',
  /** A session announcement that could not be decoded (counted, ignored). */
  BadAnnouncement: 'bad_announcement',
} as const;

export interface SessionDeliveryCounters {
  sessionsOpened: number;
  evicted: Map<EvictReason, number>;
  /** proxy-v2 deliveries of a session whose address was not (yet) announced: sent with an UNSPEC header. */
  identityUnknown: number;
  announcementsSent: number;
  announcementsReceived: number;
}

/** What a delivery socket needs: an io-seam socket (batched or dgram) or, without one, Node's dgram. */
interface DeliverySocket {
  send(buf: Buffer, port: number, address: string): void;
  close(): void;
}

interface DeliverySession extends TableEntry {
  socket: DeliverySocket | undefined;
  endpoint: SessionEndpoint | undefined;
  header: Buffer | undefined;
}

interface Announced {
  at: number;
  targets: readonly unknown[];
}

export class SessionDelivery {
  private opts: SessionDeliveryOptions;
  private readonly table: SessionTable<DeliverySession>;
  /** Origin side: when each live session was last announced, and to which targets (no cleanup needed). */
  private readonly announced = new WeakMap<OriginSession, Announced>();
  private readonly originHeaders = new WeakMap<OriginSession, Buffer>();
  readonly counters: SessionDeliveryCounters = {
    sessionsOpened: 0,
    evicted: new Map(),
    identityUnknown: 0,
    announcementsSent: 0,
    announcementsReceived: 0,
  };

  constructor(
    opts: SessionDeliveryOptions,
    private readonly shared: BackendSockets,
    private readonly hooks: {
      /** A reply from a backend on a delivery socket: counted and discarded. */
      onReply: () => void;
      /** A datagram or announcement dropped for the given reason. */
      onDrop: (reason: string) => void;
      onError: (err: Error) => void;
    },
    /** The data plane's socket seam (config `io`): the per-session sockets come from it when given. */
    private readonly io?: UdpIo,
  ) {
    this.opts = { ...opts };
    this.table = new SessionTable<DeliverySession>(opts.maxSessions, opts.idleMs, (s, reason) => {
      this.counters.evicted.set(reason, (this.counters.evicted.get(reason) ?? 0) + 1);
      s.socket?.close();
      s.socket = undefined;
    });
  }

  get mode(): SessionIdentity {
    return this.opts.mode;
  }

  get sessionsActive(): number {
    return this.table.size;
  }

  /** Dynamic config: a mode change takes effect for new datagrams; existing sockets expire normally. */
  configure(opts: SessionDeliveryOptions): void {
    this.opts = { ...opts };
    this.table.maxSessions = opts.maxSessions;
    this.table.idleMs = opts.idleMs;
  }

  // ------------------------------------------------------------------------------------- origin side

  /**
   * An announcement to replicate (as a record of session 0) before this datagram of session `s` to its
   * replicas `targets` (compared element-wise with the last announcement's), or undefined. Only in proxy-v2 mode: the other modes need no client address at the remote side.
   */
  announcement(
    s: OriginSession,
    now: number,
    targets: readonly unknown[] = s.targets ?? [],
  ): Buffer | undefined {
    if (this.opts.mode !== 'proxy-v2' || targets.length === 0 || !announceable(s.address)) return undefined;
    const last = this.announced.get(s);
    if (last && now - last.at < ANNOUNCE_REFRESH_MS && sameTargets(last.targets, targets)) return undefined;
    this.announced.set(s, { at: now, targets });
    return this.announceNow(s);
  }

  /**
   * The announcement of s now, whatever was sent before (proxy-v2 only): for datagrams of s that the
   * peer set moves to another replica on its own, which must learn the session before them.
   */
  announceNow(s: OriginSession): Buffer | undefined {
    if (this.opts.mode !== 'proxy-v2' || !announceable(s.address)) return undefined;
    this.counters.announcementsSent++;
    return encodeAnnounce({
      session: s.id,
      source: { address: s.address, port: s.port },
      destination: listenerEndpoint(s),
    });
  }

  /** The datagram as the origin's own backend gets it: with the PROXY v2 header in proxy-v2 mode. */
  wrapAtOrigin(origin: SessionOrigin, s: OriginSession, payload: Buffer): Buffer {
    if (this.opts.mode !== 'proxy-v2') return payload;
    let header = this.originHeaders.get(s);
    if (header === undefined) {
      const source = { address: s.address, port: s.port };
      header = proxyHeader(origin, s.id, { session: s.id, source, destination: listenerEndpoint(s) });
      this.originHeaders.set(s, header);
    }
    return Buffer.concat([header, payload]);
  }

  // ------------------------------------------------------------------------------------- remote side

  /** A record of session 0 from `origin`: learn the endpoint it announces. */
  control(origin: SessionOrigin, payload: Buffer, now: number): void {
    const d = decodeAnnounce(payload);
    if (!d.ok) {
      this.hooks.onDrop(IdentityDrop.BadAnnouncement);
      return;
    }
    this.counters.announcementsReceived++;
    const a = d.announce;
    const s = this.session(origin, a.session, now, false);
    if (!s) return;
    const changed =
      !s.endpoint ||
      s.endpoint.source.address !== a.source.address ||
      s.endpoint.source.port !== a.source.port ||
      s.endpoint.destination?.address !== a.destination?.address ||
      s.endpoint.destination?.port !== a.destination?.port;
    if (changed) {
      s.endpoint = a;
      s.header = undefined;
    }
  }

  /**
   * Delivers one datagram of (origin, session) to backend b; false when it was dropped (counted through
   * onDrop). Used for replicated datagrams, and at the origin in oneway mode (no upstream socket there).
   */
  deliver(
    origin: SessionOrigin,
    session: number,
    b: Backend,
    payload: Buffer,
    now: number,
    /** At the origin (oneway mode) the session itself: its address needs no announcement. */
    known?: OriginSession,
  ): boolean {
    const mode = this.opts.mode;
    if (mode === 'none') {
      this.shared.send(b, payload);
      return true;
    }
    const s = this.session(origin, session, now, true);
    if (!s) {
      this.hooks.onDrop(IdentityDrop.TableFull);
      return false;
    }
    let out = payload;
    if (mode === 'proxy-v2') {
      if (known && !s.endpoint)
        s.endpoint = {
          session,
          source: { address: known.address, port: known.port },
          destination: listenerEndpoint(known),
        };
      if (!s.endpoint) this.counters.identityUnknown++;
      const header = s.endpoint
        ? (s.header ??= proxyHeader(origin, session, s.endpoint))
        : proxyHeader(origin, session, undefined);
      out = Buffer.concat([header, payload]);
    }
    const socket = (s.socket ??= this.newSocket(b.family));
    socket.send(out, b.port, b.address);
    return true;
  }

  sweep(now: number): void {
    this.table.sweep(now);
  }

  close(): void {
    this.table.clear();
  }

  private session(
    origin: SessionOrigin,
    session: number,
    now: number,
    datagram: boolean,
  ): DeliverySession | undefined {
    const key = `${origin.member}#${origin.epoch}/${session}`;
    let s = this.table.get(key);
    if (s) {
      if (datagram) {
        this.table.touch(s, now);
        // The ingress table promotes only on a backend reply (protocol v2, D10); this one is fed by
        // authenticated replication, so a session's second datagram establishes it, and a full table
        // refuses (and counts) newcomers instead of taking an active session's socket away.
        if (!s.established && s.datagrams >= 2) this.table.promote(s, now);
      }
      return s;
    }
    s = {
      key,
      lastSeen: now,
      refreshedAt: now,
      datagrams: datagram ? 1 : 0,
      established: false,
      socket: undefined,
      endpoint: undefined,
      header: undefined,
    };
    if (!this.table.add(s, now)) return undefined;
    this.counters.sessionsOpened++;
    return s;
  }

  private newSocket(family: 4 | 6): DeliverySocket {
    if (this.io) {
      const socket = this.io.open(family);
      socket.onBatch = (replies) => {
        for (let i = 0; i < replies.count; i++) this.hooks.onReply();
      };
      socket.onError = (err) => this.hooks.onError(err);
      return socket;
    }
    const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
    socket.on('message', this.hooks.onReply);
    socket.on('error', this.hooks.onError);
    return socket;
  }
}

function listenerEndpoint(s: OriginSession): Endpoint | undefined {
  try {
    const a = s.listener.address();
    return { address: a.address, port: a.port };
  } catch {
    return undefined; // a closed listener: the header says UNSPEC for the destination
  }
}

function sameTargets(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function proxyHeader(origin: SessionOrigin, session: number, e: SessionEndpoint | undefined): Buffer {
  return encodeProxyV2(e?.source, e?.destination, [
    [TLV_ORIGIN_CLUSTER, Buffer.from(origin.cluster, 'utf8')],
    [TLV_SESSION, sessionTlv(origin.memberHash, origin.epoch, session)],
  ]);
}
