// Everything udpmesh runs in one cluster: Istio, monitoring (optional) and the manifests from the one
// pure function infra/manifests/index.ts (replicator, CRD + UdpReplicator, etcd members, monitors).
import type * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { Cloud, StackConfig } from '../config/schema.ts';
import { clusterManifests } from '../manifests/index.ts';
import type { ClusterSecrets } from '../manifests/types.ts';
import { applyManifests } from './applyManifests.ts';
import { MeshControlPlane } from './meshControlPlane.ts';
import { MonitoringStack } from './monitoringStack.ts';
import type { ClusterAddons } from './types.ts';

export interface ClusterWorkloadsArgs {
  spec: StackConfig;
  cloud: Cloud;
  provider: k8s.Provider;
  secrets: ClusterSecrets<pulumi.Output<string>>;
  /** Add-ons objects wait for (LB controller, storage, metrics-server, CNI policy). */
  addons?: ClusterAddons;
}

export class ClusterWorkloads extends pulumi.ComponentResource {
  readonly udpService: k8s.core.v1.Service;
  readonly monitoring?: MonitoringStack;
  /** Public address (hostname or IP) of the UDP load balancer. */
  readonly udpEndpoint: pulumi.Output<string>;

  constructor(name: string, args: ClusterWorkloadsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:ClusterWorkloads', name, {}, opts);
    const { spec, cloud, provider } = args;
    const mesh = new MeshControlPlane(`${name}-istio`, { spec, cloud, provider }, { parent: this });
    const crdDependencies: pulumi.Resource[] = [mesh.base, mesh.istiod];
    if (spec.monitoring.enabled) {
      const a = args.addons;
      this.monitoring = new MonitoringStack(
        `${name}-monitoring`,
        {
          spec,
          provider,
          // Its PVCs need the default StorageClass; an exposed Grafana is a LoadBalancer Service.
          dependsOn: [
            ...(a?.storage ?? []),
            ...(spec.monitoring.exposeGrafana ? (a?.loadBalancers ?? []) : []),
          ],
        },
        { parent: this },
      );
      crdDependencies.push(this.monitoring.release);
    }
    const resources = applyManifests(clusterManifests(spec, cloud, args.secrets), {
      prefix: name,
      provider,
      parent: this,
      crdDependencies,
      podDependencies: [mesh.istiod],
      addons: args.addons,
    });
    this.udpService = resources.get(`Service/${spec.namespace}/udpmesh-ingress`) as k8s.core.v1.Service;
    this.udpEndpoint = this.udpService.status.apply((s) => {
      const ing = s?.loadBalancer?.ingress?.[0];
      return ing?.hostname ?? ing?.ip ?? '';
    });
    this.registerOutputs({ udpEndpoint: this.udpEndpoint });
  }
}
