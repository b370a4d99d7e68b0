// What the data plane counts, as plain numbers on the hot path; metrics and /status read snapshots of it.

export const DropReason = {
  Oversize: 'oversize',
  Draining: 'draining',
  MalformedFrame: 'malformed_frame',
  UnknownStream: 'unknown_stream',
  PeerBacklogOverflow: 'peer_backlog_overflow',
  GapTimeout: 'gap_timeout',
  SenderSkipped: 'sender_skipped',
  /** Refused while the reorder buffer was full; the sender retransmits it (flow control, not loss). */
  ReorderFull: 'reorder_full',
  BeyondWindow: 'beyond_window',
  NoBackend: 'no_backend',
  Late: 'late',
  SendError: 'send_error',
  Unauthenticated: 'unauthenticated',
  BadMac: 'bad_mac',
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
  inboundStreams: number;
  etcdRequests: number;
}
