// Prometheus alert rules for the replicator (udpmesh_* metrics) and udpmesh's etcd (adapted from etcd's
// upstream etcd3_alert.rules / mixin). Pure data: the PrometheusRule manifest, `promtool check rules`
// and the promtool unit tests in test/infra all use these same groups.
//
// The etcd alerts are named UdpmeshEtcd* and select only job="etcd" (udpmesh's ServiceMonitor), so they
// are never confused with kube-prometheus-stack's own etcd* rules for the Kubernetes etcd (turned off on
// managed clusters anyway). Each cloud's Prometheus scrapes only that cloud's members, so quorum is judged
// from what the members report about the whole cluster (etcd_network_active_peers, has_leader) against
// quorum of the configured total, never from local `up` counts (2 of a 2/2/1 layout down in one cloud is
// not a lost quorum; 1 local member seeing no peers is).

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: 'warning' | 'critical' };
  annotations: { summary: string; description: string; runbook_url?: string };
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export interface AlertThresholds {
  /** Fraction of ingress datagrams dropped (any reason) that pages. */
  packetLossRatio: number;
  /** Unacknowledged datagrams to one peer. */
  replicationLagDatagrams: number;
  /** Retransmits per replicated datagram. */
  retransmitRatio: number;
  /** p99 etcd peer round trip (s); cross-cloud members sit one VPN RTT apart. */
  etcdPeerRttSeconds: number;
}

export function defaultThresholds(interCloudRttMs: number): AlertThresholds {
  return {
    packetLossRatio: 0.01,
    replicationLagDatagrams: 10_000,
    retransmitRatio: 0.05,
    etcdPeerRttSeconds: Math.max(0.15, (3 * interCloudRttMs) / 1000),
  };
}

const ETCD = 'job="etcd"';
/** udpmesh_dropped_datagrams_total reasons that mean an accepted datagram was lost. */
export const LOSS_REASONS =
  'abandoned|gap_timeout|sender_skipped|peer_backlog_overflow|no_backend|send_error|late|identity_table_full';

/**
 * Where each alert's runbook lives: one section per alert in docs/operations.md, anchored by the alert's
 * name in lower case (GitHub's heading anchors). Forks point it at their own copy.
 */
export const RUNBOOK_BASE_URL = 'https://github.com/udpmesh/udpmesh/blob/main/docs/operations.md';

export function runbookUrl(alert: string): string {
  return `${RUNBOOK_BASE_URL}#${alert.toLowerCase()}`;
}

export function replicatorRules(t: AlertThresholds): RuleGroup {
  return {
    name: 'udpmesh-replicator',
    rules: [
      {
        alert: 'UdpmeshPacketLoss',
        // Loss only: datagrams accepted and then not delivered. Policy drops (rate limit, CIDR lists,
        // oversize, draining), flow control (reorder_full, beyond_window: retransmitted later) and
        // rejected frames are visible on the dashboard by reason but are not packet loss.
        expr: `sum by (namespace) (rate(udpmesh_dropped_datagrams_total{reason=~"${LOSS_REASONS}"}[5m])) / clamp_min(sum by (namespace) (rate(udpmesh_ingress_datagrams_total[5m])), 1e-9) > ${t.packetLossRatio}`,
        for: '5m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'Replicators are dropping datagrams',
          description:
            'More than {{ $value | humanizePercentage }} of ingress datagrams in {{ $labels.namespace }} were dropped (see udpmesh_dropped_datagrams_total by reason).',
        },
      },
      {
        alert: 'UdpmeshReplicationLag',
        expr: `max by (namespace, peer) (udpmesh_replication_lag_datagrams) > ${t.replicationLagDatagrams}`,
        for: '5m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Replication to a peer is lagging',
          description:
            '{{ $value }} datagrams are unacknowledged by peer {{ $labels.peer }}; check the interconnect and the peer replicators.',
        },
      },
      {
        alert: 'UdpmeshRetransmitRateHigh',
        expr: `sum by (namespace, peer) (rate(udpmesh_retransmits_total[5m])) / clamp_min(sum by (namespace, peer) (rate(udpmesh_replicated_datagrams_total[5m])), 1e-9) > ${t.retransmitRatio}`,
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'High retransmit rate to a peer',
          description:
            'Retransmits to {{ $labels.peer }} are {{ $value | humanizePercentage }} of replicated datagrams: the VPN path is losing packets.',
        },
      },
      {
        alert: 'UdpmeshPeerDown',
        expr: 'max by (namespace, peer) (udpmesh_peer_up) == 0',
        for: '2m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'A replication peer is down',
          description:
            'No replicator in {{ $labels.namespace }} reaches peer {{ $labels.peer }}; datagrams for it are buffered until the retransmit buffer overflows.',
        },
      },
      {
        alert: 'UdpmeshClusterWithoutMembers',
        // Datagrams wait at origins for a cluster of the mesh none of whose members they know (every
        // record lapsed, or a decommissioned cluster whose epoch keys were left in etcd).
        expr: 'max by (namespace, cluster) (udpmesh_waiting_for_member_datagrams) > 0',
        for: '5m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'A cluster of the mesh has no member known',
          description:
            'Replicators in {{ $labels.namespace }} keep {{ $value }} datagrams for cluster {{ $labels.cluster }}, of which no member is registered in etcd.',
        },
      },
      {
        alert: 'UdpmeshEtcdUnreachable',
        expr: 'max by (namespace) (udpmesh_etcd_up) == 0',
        for: '5m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Replicators cannot reach etcd',
          description:
            'Replicators in {{ $labels.namespace }} lost etcd; membership is frozen and only static peers are used.',
        },
      },
    ],
  };
}

export function etcdRules(t: AlertThresholds, members: number): RuleGroup {
  return {
    name: 'udpmesh-etcd',
    rules: [
      {
        alert: 'UdpmeshEtcdMembersDown',
        expr: `max without (endpoint) (sum without (instance, pod) (up{${ETCD}} == bool 0) or count without (To) (sum without (instance, pod) (rate(etcd_network_peer_sent_failures_total{${ETCD}}[2m])) > 0.01)) > 0`,
        for: '10m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'udpmesh etcd members in this cloud are down',
          description:
            'etcd cluster "{{ $labels.job }}": {{ $value }} members in this cloud are down or failing to send to peers.',
        },
      },
      {
        alert: 'UdpmeshEtcdQuorumLost',
        // The best-connected local member sees fewer than quorum members (itself + active peers), or no
        // local member has a leader.
        expr: `(max(count by (instance) (etcd_network_active_peers{${ETCD}} > 0) + 1) < ${quorumOf(members)}) or (max(etcd_server_has_leader{${ETCD}}) == 0)`,
        for: '2m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'udpmesh etcd has lost quorum',
          description: `No member in this cloud reaches ${quorumOf(members)} of the ${members} etcd members: writes (membership, sessions) stop everywhere.`,
        },
      },
      {
        alert: 'UdpmeshEtcdMembersUnreachable',
        expr: `${members} - max(count by (instance) (etcd_network_active_peers{${ETCD}} > 0) + 1) > 0`,
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'udpmesh etcd members are unreachable',
          description: `{{ $value }} of the ${members} etcd members are unreachable from this cloud; the cluster tolerates ${members - quorumOf(members)}.`,
        },
      },
      {
        alert: 'UdpmeshEtcdNoLeader',
        expr: `etcd_server_has_leader{${ETCD}} == 0`,
        for: '1m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'etcd cluster has no leader',
          description: 'etcd cluster "{{ $labels.job }}": member {{ $labels.instance }} has no leader.',
        },
      },
      {
        alert: 'UdpmeshEtcdHighNumberOfLeaderChanges',
        expr: `increase((max without (instance, pod) (etcd_server_leader_changes_seen_total{${ETCD}}) or 0 * absent(etcd_server_leader_changes_seen_total{${ETCD}}))[15m:1m]) >= 4`,
        for: '5m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'etcd cluster has high number of leader changes',
          description:
            'etcd cluster "{{ $labels.job }}": {{ $value }} leader changes within the last 15 minutes; check election timeouts against the inter-cloud RTT.',
        },
      },
      {
        alert: 'UdpmeshEtcdHighNumberOfFailedGRPCRequests',
        expr: `100 * sum without (grpc_type, grpc_code) (rate(grpc_server_handled_total{${ETCD}, grpc_code=~"Unknown|FailedPrecondition|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded"}[5m])) / sum without (grpc_type, grpc_code) (rate(grpc_server_handled_total{${ETCD}}[5m])) > 5`,
        for: '5m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'etcd cluster has high number of failed grpc requests',
          description:
            'etcd cluster "{{ $labels.job }}": {{ $value }}% of requests for {{ $labels.grpc_method }} failed on {{ $labels.instance }}.',
        },
      },
      {
        alert: 'UdpmeshEtcdMemberCommunicationSlow',
        expr: `histogram_quantile(0.99, rate(etcd_network_peer_round_trip_time_seconds_bucket{${ETCD}}[5m])) > ${t.etcdPeerRttSeconds}`,
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'etcd cluster member communication is slow',
          description:
            'etcd cluster "{{ $labels.job }}": member communication with {{ $labels.To }} is taking {{ $value }}s on {{ $labels.instance }}.',
        },
      },
      {
        alert: 'UdpmeshEtcdHighFsyncDurations',
        expr: `histogram_quantile(0.99, rate(etcd_disk_wal_fsync_duration_seconds_bucket{${ETCD}}[5m])) > 0.5`,
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'etcd cluster 99th percentile fsync durations are too high',
          description:
            'etcd cluster "{{ $labels.job }}": 99th percentile fsync durations are {{ $value }}s on {{ $labels.instance }}.',
        },
      },
      {
        alert: 'UdpmeshEtcdHighCommitDurations',
        expr: `histogram_quantile(0.99, rate(etcd_disk_backend_commit_duration_seconds_bucket{${ETCD}}[5m])) > 0.25`,
        for: '10m',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'etcd cluster 99th percentile commit durations are too high',
          description:
            'etcd cluster "{{ $labels.job }}": 99th percentile commit durations {{ $value }}s on {{ $labels.instance }}.',
        },
      },
      {
        alert: 'UdpmeshEtcdDatabaseQuotaLowSpace',
        expr: `(last_over_time(etcd_mvcc_db_total_size_in_bytes{${ETCD}}[5m]) / last_over_time(etcd_server_quota_backend_bytes{${ETCD}}[5m])) * 100 > 95`,
        for: '10m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'etcd cluster database is running full',
          description:
            'etcd cluster "{{ $labels.job }}": database size exceeds 95% of the quota on {{ $labels.instance }}; compact and defragment.',
        },
      },
    ],
  };
}

const quorumOf = (n: number) => Math.floor(n / 2) + 1;

/** `etcdMembers`: total members of the etcd cluster across every cloud (the quorum base). */
export function alertRuleGroups(interCloudRttMs: number, etcdMembers = 3): RuleGroup[] {
  const t = defaultThresholds(interCloudRttMs);
  return [replicatorRules(t), etcdRules(t, etcdMembers)].map(withRunbooks);
}

/** Every rule links its runbook section (docs/operations.md), which Alertmanager shows with the alert. */
function withRunbooks(g: RuleGroup): RuleGroup {
  return {
    ...g,
    rules: g.rules.map((r) => ({
      ...r,
      annotations: { ...r.annotations, runbook_url: runbookUrl(r.alert) },
    })),
  };
}
