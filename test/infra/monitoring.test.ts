// The alert rules, dashboard and docs refer only to metrics and names that exist.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONFIG_KEYS, parseStackConfig } from '../../infra/config/schema.ts';
import { monitoringManifests } from '../../infra/manifests/monitoring.ts';
import { alertRuleGroups } from '../../infra/monitoring/alertRules.ts';
import { udpmeshDashboard } from '../../infra/monitoring/dashboard.ts';
import { CLOUDS } from '../../infra/config/schema.ts';
import { PER_CLOUD_OUTPUTS, REQUIRED_OUTPUTS } from '../../infra/outputs.ts';

/** The replicator's metrics contract. */
const REPLICATOR_METRICS = [
  'udpmesh_ingress_datagrams_total',
  'udpmesh_delivered_datagrams_total',
  'udpmesh_replicated_datagrams_total',
  'udpmesh_retransmits_total',
  'udpmesh_duplicates_dropped_total',
  'udpmesh_dropped_datagrams_total',
  'udpmesh_replication_lag_datagrams',
  'udpmesh_replication_rtt_seconds',
  'udpmesh_sessions_active',
  'udpmesh_etcd_up',
  'udpmesh_peer_up',
];

/** Every metric the replicator registers (its metrics module): what alert rules may use. */
const EXPORTED_METRICS = [
  ...readFileSync(new URL('../../replicator/observability/metrics.ts', import.meta.url), 'utf8').matchAll(
    /'(udpmesh_[a-z_]+)'/g,
  ),
].map((m) => m[1]!);

const used = (text: string) => new Set(text.match(/udpmesh_[a-z_]+/g) ?? []);

describe('monitoring content', () => {
  it('alerts cover packet loss, lag, retransmits, peer down and etcd health, using only contract metrics', () => {
    const groups = alertRuleGroups(60);
    const names = groups.flatMap((g) => g.rules.map((r) => r.alert));
    for (const n of [
      'UdpmeshPacketLoss',
      'UdpmeshReplicationLag',
      'UdpmeshRetransmitRateHigh',
      'UdpmeshPeerDown',
      'UdpmeshEtcdNoLeader',
      'UdpmeshEtcdMembersDown',
      'UdpmeshEtcdQuorumLost',
      'UdpmeshEtcdDatabaseQuotaLowSpace',
    ]) {
      assert.ok(names.includes(n), n);
    }
    for (const m of used(JSON.stringify(groups)))
      assert.ok(EXPORTED_METRICS.includes(m), `unknown metric ${m}`);
    // The peer RTT threshold follows the configured inter-cloud RTT.
    const slow = (rtt: number) =>
      alertRuleGroups(rtt)
        .flatMap((g) => g.rules)
        .find((r) => r.alert === 'UdpmeshEtcdMemberCommunicationSlow')!.expr;
    assert.match(slow(60), /> 0\.18$/);
    assert.match(slow(20), /> 0\.15$/);
  });

  it('the dashboard ConfigMap holds valid Grafana JSON charting every contract metric', () => {
    const spec = parseStackConfig({ clouds: ['aws'] });
    const cm = monitoringManifests(spec, 'aws').find((o) => o.kind === 'ConfigMap')!;
    assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
    const dash = JSON.parse((cm.data as Record<string, string>)['udpmesh.json']) as {
      panels: { id: number }[];
    };
    assert.deepEqual(dash, udpmeshDashboard());
    assert.ok(dash.panels.length >= 8);
    assert.equal(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length);
    const charted = used(JSON.stringify(dash.panels));
    assert.deepEqual([...charted].sort(), [...REPLICATOR_METRICS].sort());
    assert.deepEqual(
      monitoringManifests(parseStackConfig({ clouds: ['aws'], monitoring: { enabled: false } }), 'aws'),
      [],
    );
  });

  it('docs/infra.md documents every output and config key', () => {
    const doc = readFileSync('docs/infra.md', 'utf8');
    for (const o of REQUIRED_OUTPUTS) assert.ok(doc.includes(`\`${o}\``), o);
    for (const s of PER_CLOUD_OUTPUTS) assert.ok(doc.includes(`\`<cloud>${s}\``), s);
    for (const c of CLOUDS) assert.ok(doc.includes(`${c}ClusterName`), c);
    for (const k of CONFIG_KEYS) assert.ok(doc.includes(`udpmesh:${k}`), `udpmesh:${k}`);
  });
});
