// kube-prometheus-stack through Helm: Prometheus, Alertmanager and Grafana (admin password generated,
// secret). ServiceMonitors, rules and the dashboard ConfigMap come from manifests/monitoring.ts.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import type { StackConfig } from '../config/schema.ts';
import { MONITORING_NAMESPACE } from '../manifests/monitoring.ts';

export interface MonitoringStackArgs {
  spec: StackConfig;
  provider: k8s.Provider;
}

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
          prometheus: {
            prometheusSpec: {
              retention: m.retention,
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
      { parent: this, provider: args.provider },
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
