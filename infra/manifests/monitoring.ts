// Pure monitoring manifests: ServiceMonitors (replicator via Istio's merged metrics port, etcd via its
// plaintext metrics listener), the PrometheusRule and the Grafana dashboard ConfigMap.
import type { Cloud, StackConfig } from '../config/schema.ts';
import { etcdLayout } from '../config/schema.ts';
import { alertRuleGroups } from '../monitoring/alertRules.ts';
import { udpmeshDashboard } from '../monitoring/dashboard.ts';
import { ETCD } from './etcd.ts';
import { REPLICATOR } from './replicator.ts';
import type { K8sObject } from './types.ts';
import { labels, selector } from './types.ts';

export const MONITORING_NAMESPACE = 'monitoring';

export function monitoringManifests(spec: StackConfig, cloud: Cloud): K8sObject[] {
  if (!spec.monitoring.enabled) return [];
  const ns = spec.namespace;
  const l = labels('udpmesh-monitoring', cloud);
  return [
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: REPLICATOR, namespace: ns, labels: l },
      spec: {
        selector: { matchLabels: selector(REPLICATOR) },
        namespaceSelector: { matchNames: [ns] },
        endpoints: [{ port: 'http-envoy-prom', path: '/stats/prometheus', interval: '15s' }],
      },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: ETCD, namespace: ns, labels: l },
      spec: {
        jobLabel: 'app.kubernetes.io/name',
        selector: { matchLabels: selector(ETCD) },
        namespaceSelector: { matchNames: [ns] },
        endpoints: [{ port: 'http-metrics', path: '/metrics', interval: '30s' }],
      },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'udpmesh', namespace: ns, labels: l },
      spec: {
        groups: alertRuleGroups(
          spec.etcd.interCloudRttMs,
          Object.values(etcdLayout(spec)).reduce((a, b) => a + b, 0),
        ),
      },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'udpmesh-dashboard',
        namespace: MONITORING_NAMESPACE,
        labels: { ...l, grafana_dashboard: '1' },
      },
      data: { 'udpmesh.json': JSON.stringify(udpmeshDashboard(), null, 2) },
    },
  ];
}
