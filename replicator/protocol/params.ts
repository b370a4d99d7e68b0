// Protocol timers and bounds in one place (as node-coap gathers its retransmission parameters), so the
// trade-offs between latency, bandwidth and memory are visible and tunable together.

export const protocolParams = {
  /** Wire format version carried in every frame; a receiver drops other versions (counted). */
  version: 2,
  /** A receiver acknowledges after this many new datagrams or this delay, whichever comes first. */
  ackEveryDatagrams: 64,
  ackDelayMs: 4,
  /** Most selective-ack ranges carried in one ACK frame. */
  maxAckRanges: 32,
  /** RTT before the first sample (RFC 9002 uses 333 ms; inter-cloud links are usually faster). */
  initialRttMs: 100,
  /** Bounds on the retransmission timeout. The floor stops spurious retransmits on jittery links. */
  minRtoMs: 15,
  maxRtoMs: 2000,
  /** Each probe timeout without progress stretches the next one (KCP backs off by 1.5). */
  rtoBackoff: 1.5,
  /** Lost once a frame sent this many frames after its own was acknowledged (RFC 9002 kPacketThreshold). */
  packetThreshold: 3,
  /** The adaptive reordering window (spurious retransmissions widen it) never exceeds this many frames. */
  maxReorderFrames: 256,
  /**
   * Timer granularity (RFC 9002 kGranularity): the floor of the RTO's variance term and of the loss delay,
   * and the least time between two alarms of one replicator (each link's timers fire at their own
   * deadline, docs/protocol.md "Timers"; work due sooner than this after an alarm waits for the next one,
   * so a busy link is serviced at most every granularity, never in a loop). Node's timers have 1 ms
   * resolution; 2 ms is the period the v1 tick polled at, so pacing and RTO floors did not change.
   */
  timerGranularityMs: 2,
  /** Liveness probes and RTT samples while a link is idle. */
  pingIntervalMs: 250,
  /** A peer silent this long is marked down: no data is sent to it, its backlog is kept (bounded). */
  peerDownAfterMs: 2000,
  /**
   * A replica down this long, with another live replica in its cluster, has its backlog moved there
   * (hand-over). Also the bound assumed on how long the network may hold a frame (docs/protocol.md).
   */
  handoverAfterMs: 5000,
  /** Packet numbers remembered per sender for anti-replay (a sliding bitmap). */
  replayWindowPackets: 4096,
  /** A peer that left the membership keeps its backlog this long, so a restarted replica can catch up. */
  peerRetentionMs: 300_000,
  /** Receive window: the dedupe bitmap size, and the most datagrams a sender has in flight to a peer. */
  windowDatagrams: 65536,
  /** At most this many datagrams leave for one peer per flush. */
  maxSendPerTick: 8192,
  /**
   * Retransmissions (losses, and the backlog resent to a peer that came back) are paced by a token bucket,
   * so a catch-up does not hit the peer, and through it the peer's backends, as one burst.
   */
  resendDatagramsPerSecond: 20_000,
  resendBurst: 512,
} as const;

export type ProtocolParams = typeof protocolParams;
