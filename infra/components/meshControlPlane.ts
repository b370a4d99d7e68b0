// Istio (base + istiod) through Helm in one cluster. Istio does not proxy UDP, so the replicator's UDP
// ports bypass the sidecar (pod annotations in manifests/replicator.ts); the TCP traffic (metrics,
// health, etcd client, API) is mTLS-only via a STRICT PeerAuthentication.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { Cloud, StackConfig } from '../config/schema.ts';

export interface MeshControlPlaneArgs {
  spec: StackConfig;
  cloud: Cloud;
  provider: k8s.Provider;
}

export class MeshControlPlane extends pulumi.ComponentResource {
  readonly base: k8s.helm.v3.Release;
  readonly istiod: k8s.helm.v3.Release;

  constructor(name: string, args: MeshControlPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:MeshControlPlane', name, {}, opts);
    const p = { parent: this, provider: args.provider };
    const repositoryOpts = { repo: 'https://istio-release.storage.googleapis.com/charts' };
    const version = args.spec.istio.version;
    this.base = new k8s.helm.v3.Release(
      `${name}-istio-base`,
      { chart: 'base', version, namespace: 'istio-system', createNamespace: true, repositoryOpts },
      p,
    );
    this.istiod = new k8s.helm.v3.Release(
      `${name}-istiod`,
      {
        chart: 'istiod',
        version,
        namespace: 'istio-system',
        repositoryOpts,
        values: {
          global: {
            meshID: args.spec.mesh,
            network: `${args.spec.mesh}-${args.cloud}`,
            multiCluster: { clusterName: `${args.spec.mesh}-${args.cloud}` },
          },
          // Prometheus scrapes the merged app + Envoy metrics from the sidecar agent (plaintext port 15020).
          meshConfig: { enablePrometheusMerge: true },
          pilot: { resources: { requests: { cpu: '100m', memory: '256Mi' } } },
        },
      },
      { ...p, dependsOn: [this.base] },
    );
    this.registerOutputs({});
  }
}
