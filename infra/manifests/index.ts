// One pure function for everything udpmesh deploys into a cluster. The Pulumi program registers exactly
// these objects (through the cluster's k8s.Provider) and infra/render.ts prints them as YAML for GitOps.
import type { Cloud, StackConfig } from '../config/schema.ts';
import { etcdMembers } from '../config/network.ts';
import { udpReplicatorCrd } from './crd.ts';
import { etcdManifests } from './etcd.ts';
import { monitoringManifests } from './monitoring.ts';
import { replicatorManifests } from './replicator.ts';
import type { ClusterSecrets, K8sObject } from './types.ts';

export type { ClusterSecrets, K8sObject } from './types.ts';

export function clusterManifests<S>(
  spec: StackConfig,
  cloud: Cloud,
  secrets: ClusterSecrets<S>,
): K8sObject[] {
  return [
    udpReplicatorCrd(),
    ...replicatorManifests(spec, cloud, secrets),
    ...etcdManifests(spec, cloud, secrets),
    ...monitoringManifests(spec, cloud),
  ];
}

/** Placeholder secrets for rendering: GitOps users supply real ones (e.g. sealed-secrets / external-secrets). */
export function placeholderSecrets(spec: StackConfig, cloud: Cloud): ClusterSecrets<string> {
  const p = (what: string) => `REPLACE_ME(${what})`;
  return {
    clusterKey: p('udpmesh cluster key'),
    etcdCaCert: p('etcd CA certificate PEM'),
    etcdMembers: Object.fromEntries(
      etcdMembers(spec)
        .filter((m) => m.cloud === cloud)
        .map((m) => [
          m.name,
          {
            cert: p(`${m.name} certificate PEM`),
            key: p(`${m.name} private key PEM`),
            peerClientCert: p(`${m.name} peer client certificate PEM`),
            peerClientKey: p(`${m.name} peer client private key PEM`),
          },
        ]),
    ),
    etcdClient: { cert: p('etcd client certificate PEM'), key: p('etcd client private key PEM') },
  };
}

/** Stable id of an object within a cluster: kind/namespace/name. */
export function objectId(o: K8sObject): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}
