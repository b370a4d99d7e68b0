// Prometheus metrics through prom-client. The hot path only bumps plain counters; every metric here is
// computed from a snapshot at scrape time (prom-client `collect`), so scraping costs nothing per datagram.
import client from 'prom-client';
import type { ReplicatorSnapshot } from './stats.ts';

export function createMetricsRegistry(snapshot: () => ReplicatorSnapshot): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'udpmesh_process_' });
  let snap: ReplicatorSnapshot | undefined;
  // One snapshot per scrape: the first collector takes it, the rest reuse it.
  const get = (): ReplicatorSnapshot => (snap ??= snapshot());
  const reg = { registers: [registry] };

  const counter = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (m: client.Counter, s: ReplicatorSnapshot) => void,
  ) =>
    new client.Counter({
      name,
      help,
      labelNames,
      ...reg,
      collect() {
        this.reset();
        fill(this, get());
      },
    });
  // With several workers the primary aggregates their registries: sums by default, `min` where every
  // worker must agree (ready, etcd up).
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (m: client.Gauge, s: ReplicatorSnapshot) => void,
    aggregator: client.Aggregator = 'sum',
  ) =>
    new client.Gauge({
      name,
      help,
      labelNames,
      aggregator,
      ...reg,
      collect() {
        this.reset();
        fill(this, get());
      },
    });

  // The first metric collected starts a new scrape.
  new client.Gauge({
    name: 'udpmesh_info',
    help: 'Replicator identity (value 1).',
    labelNames: ['cluster', 'member', 'epoch'],
    ...reg,
    collect() {
      snap = undefined;
      const s = get();
      this.reset();
      this.set({ cluster: s.cluster, member: s.member, epoch: String(s.epoch) }, 1);
    },
  });
  counter('udpmesh_ingress_datagrams_total', 'Datagrams accepted from clients at this ingress.', [], (m, s) =>
    m.inc(s.ingressDatagrams),
  );
  counter('udpmesh_ingress_bytes_total', 'Payload bytes accepted from clients.', [], (m, s) =>
    m.inc(s.ingressBytes),
  );
  counter('udpmesh_replies_relayed_total', 'Backend replies sent back to clients.', [], (m, s) =>
    m.inc(s.repliesRelayed),
  );
  counter(
    'udpmesh_remote_replies_discarded_total',
    'Replies from local backends to datagrams that entered in another cluster (the client talks to that ingress).',
    [],
    (m, s) => m.inc(s.remoteRepliesDiscarded),
  );
  counter(
    'udpmesh_delivered_datagrams_total',
    'Datagrams delivered to local backends, by origin cluster.',
    ['origin'],
    (m, s) => {
      for (const [origin, n] of Object.entries(s.delivered)) m.inc({ origin }, n);
    },
  );
  counter(
    'udpmesh_replicated_datagrams_total',
    'Datagrams sent to a peer for the first time.',
    ['peer'],
    (m, s) => {
      for (const p of s.peers) m.inc({ peer: p.id }, p.replicated);
    },
  );
  counter(
    'udpmesh_abandoned_total',
    'Datagrams the origin gave up for a peer, by reason (overflow, peer_gone, shutdown, held_overflow; no_member with peer="<cluster>/*" = a cluster with no member known; handover = moved to another replica of that cluster, not lost).',
    ['peer', 'reason'],
    (m, s) => {
      for (const p of s.peers)
        for (const [reason, n] of Object.entries(p.abandoned)) if (n > 0) m.inc({ peer: p.id, reason }, n);
      for (const a of s.abandonedElsewhere) m.inc({ peer: a.peer, reason: a.reason }, a.count);
    },
  );
  gauge(
    'udpmesh_waiting_for_member_datagrams',
    'Datagrams this origin keeps for a cluster of the mesh that has no member known (sent when one appears).',
    ['cluster'],
    (m, s) => {
      for (const w of s.waitingForMember) m.set({ cluster: w.cluster }, w.datagrams);
    },
  );
  counter('udpmesh_retransmits_total', 'Datagrams sent to a peer again.', ['peer'], (m, s) => {
    for (const p of s.peers) m.inc({ peer: p.id }, p.retransmits);
  });
  counter(
    'udpmesh_spurious_retransmits_total',
    'Retransmissions whose original arrived after all (reordering).',
    ['peer'],
    (m, s) => {
      for (const p of s.peers) m.inc({ peer: p.id }, p.spuriousRetransmits);
    },
  );
  counter(
    'udpmesh_duplicates_dropped_total',
    'Replicated datagrams received more than once and dropped.',
    [],
    (m, s) => m.inc(s.duplicatesDropped),
  );
  counter('udpmesh_dropped_datagrams_total', 'Datagrams dropped, by reason.', ['reason'], (m, s) => {
    for (const [reason, n] of Object.entries(s.dropped)) m.inc({ reason }, n);
  });
  counter('udpmesh_sessions_evicted_total', 'Client sessions removed, by reason.', ['reason'], (m, s) => {
    for (const [reason, n] of Object.entries(s.sessionsEvicted)) m.inc({ reason }, n);
  });
  gauge(
    'udpmesh_delivery_sessions_active',
    'Sessions holding their own delivery socket or identity towards a local backend (delivery.sessionIdentity).',
    [],
    (m, s) => m.set(s.deliverySessions.active),
  );
  counter(
    'udpmesh_delivery_sessions_opened_total',
    'Delivery sessions (one source socket or identity per client session) opened.',
    [],
    (m, s) => m.inc(s.deliverySessions.opened),
  );
  counter(
    'udpmesh_delivery_sessions_evicted_total',
    'Delivery sessions removed, by reason (idle, capacity, closed).',
    ['reason'],
    (m, s) => {
      for (const [reason, n] of Object.entries(s.deliverySessions.evicted)) m.inc({ reason }, n);
    },
  );
  counter(
    'udpmesh_delivery_identity_unknown_total',
    'proxy-v2 datagrams delivered before their session address was announced (UNSPEC PROXY header).',
    [],
    (m, s) => m.inc(s.deliverySessions.identityUnknown),
  );
  counter('udpmesh_etcd_requests_total', 'Requests this replicator made to etcd.', [], (m, s) =>
    m.inc(s.etcdRequests),
  );
  counter(
    'udpmesh_timer_wakeups_total',
    'Timer wake-ups, per timer: alarm (replication timers, armed at the next link or ACK deadline), sweep, keys.',
    ['timer'],
    (m, s) => {
      for (const [timer, n] of Object.entries(s.timers.wakeups)) m.inc({ timer }, n);
    },
  );
  counter(
    'udpmesh_timer_rearms_total',
    'Times the replication alarm was armed (a deadline earlier than the armed one): timer churn.',
    [],
    (m, s) => m.inc(s.timers.rearms),
  );
  gauge(
    'udpmesh_replication_lag_datagrams',
    'Datagrams accepted for a peer and not yet acknowledged.',
    ['peer'],
    (m, s) => {
      for (const p of s.peers) m.set({ peer: p.id }, p.lagDatagrams);
    },
  );
  gauge('udpmesh_replication_backlog_bytes', 'Bytes held for retransmission to a peer.', ['peer'], (m, s) => {
    for (const p of s.peers) m.set({ peer: p.id }, p.backlogBytes);
  });
  gauge('udpmesh_replication_rtt_seconds', 'Smoothed round-trip time to a peer.', ['peer'], (m, s) => {
    for (const p of s.peers) m.set({ peer: p.id }, p.rttSeconds);
  });
  gauge(
    'udpmesh_peer_up',
    '1 while a peer answers, 0 once it is marked down.',
    ['peer', 'cluster'],
    (m, s) => {
      for (const p of s.peers) m.set({ peer: p.id, cluster: p.cluster }, p.up ? 1 : 0);
    },
  );
  gauge('udpmesh_sessions_active', 'Client sessions in the ingress table.', [], (m, s) =>
    m.set(s.sessionsActive),
  );
  gauge('udpmesh_reorder_buffered_datagrams', 'Datagrams held waiting for a gap to fill.', [], (m, s) =>
    m.set(s.reorderBuffered),
  );
  gauge(
    'udpmesh_etcd_up',
    '1 while the etcd lease is alive and membership is current.',
    [],
    (m, s) => m.set(s.etcdUp ? 1 : 0),
    'min',
  );
  gauge('udpmesh_io_mode', 'Socket I/O of the data plane (value 1): batched or dgram.', ['mode'], (m, s) =>
    m.set({ mode: s.io.mode }, 1),
  );
  counter(
    'udpmesh_io_syscalls_total',
    'Socket syscalls of the data plane: recv/send (one per datagram with dgram, one per batch when batched).',
    ['op'],
    (m, s) => {
      m.inc({ op: 'recv' }, s.io.receiveSyscalls);
      m.inc({ op: 'send' }, s.io.sendSyscalls);
    },
  );
  counter(
    'udpmesh_io_datagrams_total',
    'Datagrams through the data plane sockets.',
    ['direction'],
    (m, s) => {
      m.inc({ direction: 'received' }, s.io.receivedDatagrams);
      m.inc({ direction: 'sent' }, s.io.sentDatagrams);
    },
  );
  counter('udpmesh_io_gso_messages_total', 'Sends that carried several datagrams (UDP GSO).', [], (m, s) =>
    m.inc(s.io.gsoMessages),
  );
  counter('udpmesh_io_errors_total', 'Failed socket operations (counted, never fatal).', ['op'], (m, s) => {
    m.inc({ op: 'recv' }, s.io.receiveErrors);
    m.inc({ op: 'send' }, s.io.sendErrors);
    m.inc({ op: 'recv_truncated' }, s.io.receiveTruncated);
  });
  gauge(
    'udpmesh_socket_buffer_bytes',
    'Achieved kernel socket buffer sizes (as the kernel reports them).',
    ['socket', 'direction'],
    (m, s) => {
      for (const b of s.io.buffers) {
        m.set({ socket: b.socket, direction: 'receive' }, b.receive);
        m.set({ socket: b.socket, direction: 'send' }, b.send);
      }
    },
  );
  gauge('udpmesh_ready', '1 while ready to accept traffic.', [], (m, s) => m.set(s.ready ? 1 : 0), 'min');
  gauge('udpmesh_epoch', 'Epoch of this replicator incarnation.', [], (m, s) => m.set(s.epoch), 'max');
  return registry;
}
