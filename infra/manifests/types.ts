// Plain Kubernetes objects as produced by the pure manifest functions. `S` is the type of generated
// secret material: strings when rendering YAML (placeholders) or in tests, pulumi Outputs in the program.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** Generated secret material one cluster's manifests need. */
export interface ClusterSecrets<S> {
  /** Inter-cluster key (frame HMAC), same in every cluster. */
  clusterKey: S;
  /** PEM of the etcd CA certificate (public). */
  etcdCaCert: S;
  /**
   * etcd member certificates for this cluster's members, by member name: `cert`/`key` serve clients and
   * peers (SANs = the member's addresses); `peerClientCert`/`peerClientKey` is what the member presents
   * when it dials a peer, with no SAN at all (see manifests/etcd.ts for why).
   */
  etcdMembers: Record<string, { cert: S; key: S; peerClientCert: S; peerClientKey: S }>;
  /** Client certificate the replicators present to etcd. */
  etcdClient: { cert: S; key: S };
}

export const PART_OF = 'udpmesh';

export function labels(component: string, cloud: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': component,
    'app.kubernetes.io/part-of': PART_OF,
    'app.kubernetes.io/managed-by': 'pulumi',
    'udpmesh.io/cloud': cloud,
  };
}

export function selector(component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': component, 'app.kubernetes.io/part-of': PART_OF };
}
