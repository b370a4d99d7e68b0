// promtool check + unit tests that fire every alert on synthetic series.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { alertRuleGroups, runbookUrl } from '../../infra/monitoring/alertRules.ts';

function promtool(): string | undefined {
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'promtool' : undefined;
}

const E = 'job="etcd",instance="10.0.0.1:2381",namespace="udpmesh"';
/** Synthetic input series (1m interval) and the expected alert labels per alert. */
const FIRES: Record<
  string,
  { series: { series: string; values: string }[]; evalAt: string; labels: Record<string, string> }
> = {
  UdpmeshPacketLoss: {
    series: [
      { series: 'udpmesh_ingress_datagrams_total{namespace="udpmesh",pod="a"}', values: '0+1000x30' },
      {
        series: 'udpmesh_dropped_datagrams_total{namespace="udpmesh",pod="a",reason="peer_backlog_overflow"}',
        values: '0+50x30',
      },
    ],
    evalAt: '20m',
    labels: { namespace: 'udpmesh', severity: 'critical' },
  },
  UdpmeshReplicationLag: {
    series: [
      {
        series: 'udpmesh_replication_lag_datagrams{namespace="udpmesh",pod="a",peer="gcp"}',
        values: '50000x30',
      },
    ],
    evalAt: '20m',
    labels: { namespace: 'udpmesh', peer: 'gcp', severity: 'warning' },
  },
  UdpmeshRetransmitRateHigh: {
    series: [
      {
        series: 'udpmesh_replicated_datagrams_total{namespace="udpmesh",pod="a",peer="azure"}',
        values: '0+1000x30',
      },
      { series: 'udpmesh_retransmits_total{namespace="udpmesh",pod="a",peer="azure"}', values: '0+200x30' },
    ],
    evalAt: '25m',
    labels: { namespace: 'udpmesh', peer: 'azure', severity: 'warning' },
  },
  UdpmeshPeerDown: {
    series: [
      { series: 'udpmesh_peer_up{namespace="udpmesh",pod="a",peer="gcp"}', values: '0x30' },
      { series: 'udpmesh_peer_up{namespace="udpmesh",pod="b",peer="gcp"}', values: '0x30' },
    ],
    evalAt: '10m',
    labels: { namespace: 'udpmesh', peer: 'gcp', severity: 'critical' },
  },
  UdpmeshClusterWithoutMembers: {
    series: [
      {
        series: 'udpmesh_waiting_for_member_datagrams{namespace="udpmesh",pod="a",cluster="azure"}',
        values: '40+10x30',
      },
    ],
    evalAt: '10m',
    labels: { namespace: 'udpmesh', cluster: 'azure', severity: 'warning' },
  },
  UdpmeshEtcdUnreachable: {
    series: [{ series: 'udpmesh_etcd_up{namespace="udpmesh",pod="a"}', values: '0x30' }],
    evalAt: '10m',
    labels: { namespace: 'udpmesh', severity: 'warning' },
  },
  UdpmeshEtcdMembersDown: {
    series: [{ series: `up{${E}}`, values: '0x30' }],
    evalAt: '20m',
    labels: { job: 'etcd', namespace: 'udpmesh', severity: 'critical' },
  },
  // 5 members (2/2/1); the local member sees 1 active peer: 2 < quorum 3.
  UdpmeshEtcdQuorumLost: {
    series: [
      { series: 'etcd_network_active_peers{job="etcd",instance="a",Local="1",Remote="2"}', values: '1x30' },
      { series: 'etcd_network_active_peers{job="etcd",instance="a",Local="1",Remote="3"}', values: '0x30' },
      { series: 'etcd_server_has_leader{job="etcd",instance="a"}', values: '1x30' },
    ],
    evalAt: '10m',
    labels: { severity: 'critical' },
  },
  UdpmeshEtcdMembersUnreachable: {
    series: [
      { series: 'etcd_network_active_peers{job="etcd",instance="a",Local="1",Remote="2"}', values: '1x30' },
      { series: 'etcd_network_active_peers{job="etcd",instance="a",Local="1",Remote="3"}', values: '1x30' },
    ],
    evalAt: '20m',
    labels: { severity: 'warning' },
  },
  UdpmeshEtcdNoLeader: {
    series: [{ series: `etcd_server_has_leader{${E}}`, values: '0x30' }],
    evalAt: '5m',
    labels: { job: 'etcd', instance: '10.0.0.1:2381', namespace: 'udpmesh', severity: 'critical' },
  },
  UdpmeshEtcdHighNumberOfLeaderChanges: {
    series: [{ series: `etcd_server_leader_changes_seen_total{${E}}`, values: '0+1x30' }],
    evalAt: '25m',
    labels: { job: 'etcd', namespace: 'udpmesh', severity: 'warning' },
  },
  UdpmeshEtcdHighNumberOfFailedGRPCRequests: {
    series: [
      {
        series: `grpc_server_handled_total{${E},grpc_method="Put",grpc_code="OK",grpc_type="unary"}`,
        values: '0+10x30',
      },
      {
        series: `grpc_server_handled_total{${E},grpc_method="Put",grpc_code="Unavailable",grpc_type="unary"}`,
        values: '0+10x30',
      },
    ],
    evalAt: '20m',
    labels: {
      job: 'etcd',
      instance: '10.0.0.1:2381',
      namespace: 'udpmesh',
      grpc_method: 'Put',
      severity: 'critical',
    },
  },
};
for (const [alert, metric, le] of [
  ['UdpmeshEtcdMemberCommunicationSlow', 'etcd_network_peer_round_trip_time_seconds_bucket', '0.2'],
  ['UdpmeshEtcdHighFsyncDurations', 'etcd_disk_wal_fsync_duration_seconds_bucket', '1'],
  ['UdpmeshEtcdHighCommitDurations', 'etcd_disk_backend_commit_duration_seconds_bucket', '0.5'],
] as const) {
  const extra = alert === 'UdpmeshEtcdMemberCommunicationSlow' ? ',To="peer1"' : '';
  FIRES[alert] = {
    series: [
      { series: `${metric}{${E}${extra},le="${le}"}`, values: '0x40' },
      { series: `${metric}{${E}${extra},le="+Inf"}`, values: '0+10x40' },
    ],
    evalAt: '30m',
    labels: {
      job: 'etcd',
      instance: '10.0.0.1:2381',
      namespace: 'udpmesh',
      severity: 'warning',
      ...(extra ? { To: 'peer1' } : {}),
    },
  };
}
FIRES.UdpmeshEtcdDatabaseQuotaLowSpace = {
  series: [
    { series: `etcd_mvcc_db_total_size_in_bytes{${E}}`, values: '990x30' },
    { series: `etcd_server_quota_backend_bytes{${E}}`, values: '1000x30' },
  ],
  evalAt: '20m',
  labels: { job: 'etcd', instance: '10.0.0.1:2381', namespace: 'udpmesh', severity: 'critical' },
};

describe('alert rules (promtool)', function () {
  this.timeout(60_000);
  const groups = alertRuleGroups(60, 5);
  const dir = mkdtempSync(join(tmpdir(), 'udpmesh-rules-'));
  const rulesFile = join(dir, 'rules.yaml');
  let reported = false;
  /** Skips (visibly, with the reason) when promtool is missing; never passes silently. */
  function requirePromtool(ctx: Mocha.Context): void {
    if (promtool()) return;
    if (!reported) {
      console.log(
        '    [skipped] promtool not on PATH: install Debian/Ubuntu package "prometheus" (apt-get install prometheus) to run the alert rule tests',
      );
      reported = true;
    }
    ctx.skip();
  }
  before(() => writeFileSync(rulesFile, YAML.stringify({ groups })));

  it('has a firing test for every alert', () => {
    const names = groups.flatMap((g) => g.rules.map((r) => r.alert)).sort();
    assert.deepEqual(Object.keys(FIRES).sort(), names);
  });

  it('passes promtool check rules', function () {
    requirePromtool(this);
    const out = execFileSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
    assert.match(out, /SUCCESS: \d+ rules found/);
  });

  it('fires each alert on synthetic series (promtool test rules), and stays quiet on healthy series', function () {
    requirePromtool(this);
    const tests = Object.entries(FIRES).map(([alert, t]) => ({
      interval: '1m',
      input_series: t.series,
      // At the start every alert is at most pending (each has a `for`); at evalAt it fires with exactly these labels.
      alert_rule_test: [
        { eval_time: '0m', alertname: alert, exp_alerts: [] },
        { eval_time: t.evalAt, alertname: alert, exp_alerts: [{ exp_labels: t.labels }] },
      ],
    }));
    // Healthy series: nothing fires.
    tests.push({
      interval: '1m',
      input_series: [
        { series: 'udpmesh_peer_up{namespace="udpmesh",pod="a",peer="gcp"}', values: '1x30' },
        { series: 'udpmesh_etcd_up{namespace="udpmesh",pod="a"}', values: '1x30' },
        { series: `etcd_server_has_leader{${E}}`, values: '1x30' },
        // GCP's view of a 2/2/1 cluster with its other member down: 3 of 5 reachable, quorum kept.
        { series: 'up{job="etcd",instance="b",namespace="udpmesh"}', values: '0x30' },
        {
          series: 'etcd_network_active_peers{job="etcd",instance="10.0.0.1:2381",Local="1",Remote="2"}',
          values: '1x30',
        },
        {
          series: 'etcd_network_active_peers{job="etcd",instance="10.0.0.1:2381",Local="1",Remote="3"}',
          values: '1x30',
        },
        {
          series: 'etcd_network_active_peers{job="etcd",instance="10.0.0.1:2381",Local="1",Remote="4"}',
          values: '0x30',
        },
        { series: 'udpmesh_ingress_datagrams_total{namespace="udpmesh",pod="a"}', values: '0+1000x30' },
        {
          series:
            'udpmesh_dropped_datagrams_total{namespace="udpmesh",pod="a",reason="peer_backlog_overflow"}',
          values: '0+1x30',
        },
      ],
      alert_rule_test: [
        'UdpmeshPeerDown',
        'UdpmeshEtcdUnreachable',
        'UdpmeshEtcdNoLeader',
        'UdpmeshPacketLoss',
        'UdpmeshEtcdQuorumLost',
      ].map((alertname) => ({ eval_time: '20m', alertname, exp_alerts: [] })),
    } as never);
    // promtool compares annotations exactly; the unit tests check expressions, labels and `for`, so they
    // run against the same rules with annotations removed (check rules above covers the real file).
    const bare = join(dir, 'rules-bare.yaml');
    writeFileSync(
      bare,
      YAML.stringify({
        groups: groups.map((g) => ({ ...g, rules: g.rules.map(({ annotations: _a, ...r }) => r) })),
      }),
    );
    const testFile = join(dir, 'tests.yaml');
    writeFileSync(testFile, YAML.stringify({ rule_files: [bare], evaluation_interval: '1m', tests }));
    const r = spawnSync('promtool', ['test', 'rules', testFile], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  });
});

describe('alert runbooks', () => {
  it('every rule links a runbook section of docs/operations.md that exists', () => {
    const doc = readFileSync('docs/operations.md', 'utf8');
    const anchors = new Set([...doc.matchAll(/^#{2,4} (.+)$/gm)].map((m) => m[1]!.trim().toLowerCase()));
    for (const g of alertRuleGroups(60, 5)) {
      for (const r of g.rules) {
        assert.equal(r.annotations.runbook_url, runbookUrl(r.alert), r.alert);
        assert.ok(
          anchors.has(r.alert.toLowerCase()),
          `docs/operations.md has no runbook section "### ${r.alert}"`,
        );
      }
    }
  });
});
