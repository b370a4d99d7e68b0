// The one place a replicated datagram leaves the replication core for the local backends. The core says
// which session it belongs to; the sink picks the backend (the same consistent hash as the origin's
// cluster, so equal backend lists give the same backend index) and sends. The simulator records instead.
// Session identity at the backends (delivery/sessionDelivery.ts) lives behind this seam too: the sink gets
// the origin incarnation with every datagram, and the session announcements the origin replicates.

/** An origin incarnation: the member that accepted the session and its epoch (one object per stream). */
export interface OriginIncarnation {
  /** Origin member, cluster/instance. */
  member: string;
  cluster: string;
  /** hashString(member), for sessionHashKey and the PROXY v2 session TLV. */
  memberHash: number;
  epoch: number;
}

/** The identity of a replicated session, equal in every cluster. */
export interface ReplicatedSession {
  /** Origin member (cluster/instance) and its epoch. */
  origin: string;
  originCluster: string;
  originEpoch: number;
  session: number;
  /** sessionHashKey(origin, epoch, session): the backend choice. */
  hashKey: number;
  /** The same origin as one object per inbound stream. */
  incarnation: OriginIncarnation;
}

/**
 * Records of this session number are control records, not datagrams: session announcements
 * (delivery/sessionAnnounce.ts; docs/protocol.md, "Control records"). The ingress numbers sessions from 1.
 */
export const CONTROL_SESSION = 0;

export interface DeliverySink {
  /** Hands one datagram to local delivery; false when it could not (counted by the sink's owner). */
  deliver(session: ReplicatedSession, seq: number, payload: Buffer): boolean;
  /**
   * A control record of the stream (never delivered to a backend). Optional: a sink without session
   * identity (the simulator's) ignores them; no origin sends any unless delivery.sessionIdentity asks.
   */
  control?(origin: OriginIncarnation, payload: Buffer): void;
}
