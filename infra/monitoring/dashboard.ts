// The Grafana dashboard for udpmesh, as data. Shipped in a ConfigMap labelled grafana_dashboard=1 so
// kube-prometheus-stack's dashboard sidecar loads it.

interface Panel {
  id: number;
  title: string;
  type: 'timeseries' | 'stat';
  gridPos: { x: number; y: number; w: number; h: number };
  datasource: { type: 'prometheus'; uid: '${datasource}' };
  targets: { expr: string; legendFormat: string; refId: string }[];
  fieldConfig: { defaults: { unit: string }; overrides: never[] };
}

const PANELS: { title: string; type: Panel['type']; unit: string; targets: [string, string][] }[] = [
  {
    title: 'Ingress datagrams/s',
    type: 'timeseries',
    unit: 'pps',
    targets: [['sum by (pod) (rate(udpmesh_ingress_datagrams_total[1m]))', '{{pod}}']],
  },
  {
    title: 'Delivered datagrams/s by origin',
    type: 'timeseries',
    unit: 'pps',
    targets: [['sum by (origin) (rate(udpmesh_delivered_datagrams_total[1m]))', '{{origin}}']],
  },
  {
    title: 'Replicated datagrams/s by peer',
    type: 'timeseries',
    unit: 'pps',
    targets: [['sum by (peer) (rate(udpmesh_replicated_datagrams_total[1m]))', '{{peer}}']],
  },
  {
    title: 'Retransmits/s by peer',
    type: 'timeseries',
    unit: 'pps',
    targets: [['sum by (peer) (rate(udpmesh_retransmits_total[1m]))', '{{peer}}']],
  },
  {
    title: 'Dropped datagrams/s by reason',
    type: 'timeseries',
    unit: 'pps',
    targets: [
      ['sum by (reason) (rate(udpmesh_dropped_datagrams_total[1m]))', '{{reason}}'],
      ['sum(rate(udpmesh_duplicates_dropped_total[1m]))', 'duplicates'],
    ],
  },
  {
    title: 'Replication lag (datagrams)',
    type: 'timeseries',
    unit: 'short',
    targets: [['max by (peer) (udpmesh_replication_lag_datagrams)', '{{peer}}']],
  },
  {
    title: 'Replication RTT',
    type: 'timeseries',
    unit: 's',
    targets: [['max by (peer) (udpmesh_replication_rtt_seconds)', '{{peer}}']],
  },
  {
    title: 'Active sessions',
    type: 'stat',
    unit: 'short',
    targets: [['sum(udpmesh_sessions_active)', 'sessions']],
  },
  {
    title: 'Peers up',
    type: 'stat',
    unit: 'short',
    targets: [['max by (peer) (udpmesh_peer_up)', '{{peer}}']],
  },
  {
    title: 'etcd reachable',
    type: 'stat',
    unit: 'short',
    targets: [
      ['min(udpmesh_etcd_up)', 'etcd'],
      ['max(etcd_server_has_leader)', 'leader'],
    ],
  },
];

export function udpmeshDashboard(): Record<string, unknown> {
  const panels: Panel[] = PANELS.map((p, i) => ({
    id: i + 1,
    title: p.title,
    type: p.type,
    gridPos: { x: (i % 2) * 12, y: Math.floor(i / 2) * 8, w: 12, h: 8 },
    datasource: { type: 'prometheus', uid: '${datasource}' },
    targets: p.targets.map(([expr, legendFormat], n) => ({
      expr,
      legendFormat,
      refId: String.fromCharCode(65 + n),
    })),
    fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
  }));
  return {
    uid: 'udpmesh-overview',
    title: 'udpmesh overview',
    tags: ['udpmesh'],
    timezone: 'utc',
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    templating: {
      list: [
        {
          name: 'datasource',
          type: 'datasource',
          query: 'prometheus',
          current: { text: 'Prometheus', value: 'prometheus' },
        },
      ],
    },
    panels,
  };
}
