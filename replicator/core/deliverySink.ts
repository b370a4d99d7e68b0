// The one place a replicated datagram leaves the replication core for the local backends. The core says
// which session it belongs to; the sink picks the backend (the same consistent hash as the origin's
// cluster, so equal backend lists give the same backend index) and sends. The simulator records instead.

/** The identity of a replicated session, equal in every cluster. */
export interface ReplicatedSession {
  /** Origin member (cluster/instance) and its epoch. */
  origin: string;
  originCluster: string;
  originEpoch: number;
  session: number;
  /** sessionHashKey(origin, epoch, session): the backend choice. */
  hashKey: number;
}

export interface DeliverySink {
  /** Hands one datagram to local delivery; false when it could not (counted by the sink's owner). */
  deliver(session: ReplicatedSession, seq: number, payload: Buffer): boolean;
}
