// What the data plane counts, as plain numbers on the hot path; metrics and /status read snapshots of it.
import type { IoKind, IoTotals } from '../io/udpIo.ts';

export const DropReason = {
  Oversize: 'oversize',
  Draining: 'draining',
  MalformedFrame: 'malformed_frame',
  UnknownStream: 'unknown_stream',
  PeerBacklogOverflow: 'peer_backlog_overflow',
  /** v1 only (the receiver no longer skips gaps on its own); kept so dashboards keep their series. */
  GapTimeout: 'gap_timeout',
  SenderSkipped: 'sender_skipped',
  /** Held at a receiver below the sender's abandoning low-water mark: discarded (counted at the origin too). */
  SenderAbandoned: 'sender_abandoned',
  /** A frame addressed to another member, or our own frame looped back. */
  Misdirected: 'misdirected',
  Looped: 'looped',
  /** A frame from a sender that is not a member: no state is created for it. */
  UnknownSender: 'unknown_sender',
  /** A frame of an older (or not yet announced) incarnation of either end. */
  StaleEpoch: 'stale_epoch',
  /** A packet number already seen on its link. */
  Replay: 'replay',
  /** Positions the origin gave up for a peer (counted per peer and reason in udpmesh_abandoned_total). */
  Abandoned: 'abandoned',
  /** Refused while the reorder buffer was full; the sender retransmits it (flow control, not loss). */
  ReorderFull: 'reorder_full',
  BeyondWindow: 'beyond_window',
  NoBackend: 'no_backend',
  Late: 'late',
  SendError: 'send_error',
  Unauthenticated: 'unauthenticated',
  BadMac: 'bad_mac',
  /** A member whose record has no usable public key (an older replicator): nothing to or from it. */
  NoPeerKey: 'no_peer_key',
  RateLimited: 'rate_limited',
  Denied: 'denied',
  NotAllowed: 'not_allowed',
  SessionCap: 'session_cap',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

export interface PeerStatus {
  id: string;
  cluster: string;
  address: string;
  port: number;
  up: boolean;
  departed: boolean;
  lagDatagrams: number;
  backlogBytes: number;
  rttSeconds: number;
  replicated: number;
  retransmits: number;
  /** Retransmissions that turned out unnecessary (the original was reordered, not lost). */
  spuriousRetransmits: number;
  backlogDropped: number;
  /** Positions abandoned for this peer, per reason (overflow, peer_gone, shutdown, held_overflow; handover = moved). */
  abandoned: Record<string, number>;
}

/** The data plane's socket I/O (config `io`); totals are per process, as the addon's ring and queue are. */
export interface IoStatus extends IoTotals {
  mode: IoKind;
  /** Why this mode (auto says why it fell back to dgram). */
  reason: string;
  /** Achieved kernel buffer sizes, bytes (Linux reports twice the request). */
  buffers: Array<{ socket: string; receive: number; send: number }>;
}

export interface ReplicatorSnapshot {
  cluster: string;
  member: string;
  epoch: number;
  ready: boolean;
  draining: boolean;
  etcdUp: boolean;
  ingressDatagrams: number;
  ingressBytes: number;
  repliesRelayed: number;
  /** Replies from local backends to datagrams that entered in another cluster: expected, discarded. */
  remoteRepliesDiscarded: number;
  sessionsActive: number;
  sessionsEvicted: Record<string, number>;
  /** Per-session delivery sockets / identities (delivery.sessionIdentity), in every cluster. */
  deliverySessions: {
    mode: string;
    active: number;
    opened: number;
    evicted: Record<string, number>;
    /** proxy-v2 datagrams delivered before their session's address was known (UNSPEC header). */
    identityUnknown: number;
  };
  delivered: Record<string, number>;
  duplicatesDropped: number;
  dropped: Record<string, number>;
  reorderBuffered: number;
  peers: PeerStatus[];
  /**
   * Abandonment that no live peer shows: peers removed after their retention (their totals live on, so
   * counters never go back) and clusters with no member known (`peer` is `<cluster>/*`, reason no_member).
   */
  abandonedElsewhere: Array<{ peer: string; reason: string; count: number }>;
  /** Datagrams waiting at this origin for a member of a cluster that has none. */
  waitingForMember: Array<{ cluster: string; datagrams: number }>;
  inboundStreams: number;
  etcdRequests: number;
  /**
   * Timer wake-ups per timer (alarm: the replication alarm at the next link/ACK deadline; sweep; keys),
   * and how often the alarm was armed (each one a setTimeout).
   */
  timers: { wakeups: Record<string, number>; rearms: number };
  io: IoStatus;
}
