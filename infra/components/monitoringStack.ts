// kube-prometheus-stack through Helm: Prometheus, Alertmanager and Grafana (admin password generated,
// secret, exported as the grafanaAdminPassword stack output). ServiceMonitors, rules and the dashboard
// ConfigMap come from manifests/monitoring.ts. Managed clusters (EKS/GKE/AKS) hide the control plane, so
// the chart's controller-manager/scheduler/etcd scrapes and rules are off (their Down alerts would fire
// forever, prometheus-community/helm-charts #4106), kube-proxy too (localhost-bound on EKS, absent under
// GKE Dataplane V2); the chart's etcd rules are about the Kubernetes etcd, not udpmesh's, so they are off
// and udpmesh's etcd alerts have their own names. Prometheus and Alertmanager keep data on PVCs, and
// Alertmanager routes to the receivers in udpmesh:monitoring.alertReceivers.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import type { StackConfig } from '../config/schema.ts';
import { MONITORING_NAMESPACE } from '../manifests/monitoring.ts';

export interface MonitoringStackArgs {
  spec: StackConfig;
  provider: k8s.Provider;
  /** Add-ons the release waits for (default StorageClass, LB controller when Grafana is exposed). */
  dependsOn?: pulumi.Resource[];
}

type Receiver = StackConfig['monitoring']['alertReceivers'][number];

/** Alertmanager config: every alert to every configured receiver; Watchdog (the always-firing heartbeat) nowhere. */
export function alertmanagerConfig(receivers: Receiver[]): Record<string, unknown> {
  const toReceiver = (r: Receiver): Record<string, unknown> => {
    if (r.webhookUrl) return { name: r.name, webhook_configs: [{ url: r.webhookUrl, send_resolved: true }] };
    if (r.slackApiUrl)
      return {
        name: r.name,
        slack_configs: [{ api_url: r.slackApiUrl, channel: r.slackChannel, send_resolved: true }],
      };
    return { name: r.name, pagerduty_configs: [{ routing_key: r.pagerdutyRoutingKey, send_resolved: true }] };
  };
  return {
    route: {
      receiver: 'null',
      group_by: ['alertname', 'namespace'],
      routes: [
        { receiver: 'null', matchers: ['alertname = "Watchdog"'] },
        ...receivers.map((r) => ({
          receiver: r.name,
          matchers: ['severity =~ "warning|critical"'],
          continue: true,
        })),
      ],
    },
    receivers: [{ name: 'null' }, ...receivers.map(toReceiver)],
  };
}

/** A tenth of the Prometheus volume, at least 1Gi, for Alertmanager's silences and notification log. */
function alertmanagerSize(prometheusSize: string): string {
  const m = /^(\d+)(Gi|Ti)$/.exec(prometheusSize);
  if (!m) return '2Gi';
  const gi = Number(m[1]) * (m[2] === 'Ti' ? 1024 : 1);
  return `${Math.max(1, Math.ceil(gi / 10))}Gi`;
}

const pvc = (size: string) => ({
  volumeClaimTemplate: {
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } } },
  },
});

export class MonitoringStack extends pulumi.ComponentResource {
  readonly release: k8s.helm.v3.Release;
  readonly grafanaAdminPassword: pulumi.Output<string>;
  readonly grafanaUrl: pulumi.Output<string>;

  constructor(name: string, args: MonitoringStackArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:MonitoringStack', name, {}, opts);
    const m = args.spec.monitoring;
    const password = new random.RandomPassword(
      `${name}-grafana-admin`,
      { length: 32, special: false },
      { parent: this },
    );
    this.grafanaAdminPassword = pulumi.secret(password.result);
    this.release = new k8s.helm.v3.Release(
      `${name}-kube-prometheus-stack`,
      {
        name: 'kube-prometheus-stack',
        chart: 'kube-prometheus-stack',
        version: m.chartVersion,
        namespace: MONITORING_NAMESPACE,
        createNamespace: true,
        repositoryOpts: { repo: 'https://prometheus-community.github.io/helm-charts' },
        values: {
          kubeControllerManager: { enabled: false },
          kubeScheduler: { enabled: false },
          kubeEtcd: { enabled: false },
          kubeProxy: { enabled: false },
          defaultRules: {
            rules: {
              etcd: false,
              kubeControllerManager: false,
              kubeSchedulerAlerting: false,
              kubeSchedulerRecording: false,
              kubeProxy: false,
            },
          },
          alertmanager: {
            config: pulumi.secret(alertmanagerConfig(m.alertReceivers)),
            alertmanagerSpec: { storage: pvc(alertmanagerSize(m.storageSize)) },
          },
          prometheus: {
            prometheusSpec: {
              retention: m.retention,
              storageSpec: pvc(m.storageSize),
              // Pick up udpmesh's ServiceMonitors/PrometheusRules without the chart's release label.
              serviceMonitorSelectorNilUsesHelmValues: false,
              ruleSelectorNilUsesHelmValues: false,
              podMonitorSelectorNilUsesHelmValues: false,
            },
          },
          grafana: {
            adminPassword: this.grafanaAdminPassword,
            sidecar: { dashboards: { enabled: true, label: 'grafana_dashboard', searchNamespace: 'ALL' } },
            service: { type: m.exposeGrafana ? 'LoadBalancer' : 'ClusterIP' },
          },
        },
      },
      { parent: this, provider: args.provider, dependsOn: args.dependsOn ?? [] },
    );
    if (m.alertReceivers.length === 0)
      void pulumi.log.warn(
        'udpmesh:monitoring.alertReceivers is empty: alerts are visible in Alertmanager but sent nowhere',
        this,
      );
    if (m.exposeGrafana) {
      // Read the chart's Grafana Service back to learn its load balancer address.
      const svc = k8s.core.v1.Service.get(
        `${name}-grafana`,
        pulumi.interpolate`${this.release.status.namespace}/${this.release.status.name}-grafana`,
        { parent: this, provider: args.provider, dependsOn: [this.release] },
      );
      this.grafanaUrl = svc.status.apply((st) => {
        const ing = st?.loadBalancer?.ingress?.[0];
        return `http://${ing?.hostname ?? ing?.ip ?? 'pending'}`;
      });
    } else {
      this.grafanaUrl = pulumi.output(
        'http://localhost:3000 (run: kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80)',
      );
    }
    this.registerOutputs({ grafanaUrl: this.grafanaUrl });
  }
}
