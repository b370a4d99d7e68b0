// Pure manifests for this cluster's etcd members. One single-replica StatefulSet per member (each
// member has its own fixed identity and advertised address, and the distroless etcd image has no shell
// to derive them from an ordinal), each with a persistent volume and an *internal* load balancer holding
// a fixed private address that peers reach over the interconnect. Never internet-facing: internal LB
// annotations, source ranges limited to the mesh's private ranges, and a NetworkPolicy.
//
// Peer TLS across clusters: each member dials its peers with a SAN-less client certificate (CN
// <mesh>-etcd-peer) because etcd checks a peer client certificate's SANs against the connection's remote
// IP, which across clouds is a node/NAT address (components/etcdPki.ts). --peer-cert-allowed-cn keeps
// peer access to that CN under the mesh CA. Chosen over --experimental-peer-skip-client-san-verification
// because it keeps a positive identity check and uses only stable flags (etcd >= 3.5).
//
// Placement: members of one cloud never share a node (required anti-affinity), prefer distinct zones, and
// one PodDisruptionBudget lets a drain take one member at a time.
//
// Replacing a lost member: `etcdctl member remove` + `member add`, then list the member in
// etcd.replaceMembers so its pod starts with --initial-cluster-state=existing (docs/infra.md).
import type { Cloud, StackConfig } from '../config/schema.ts';
import type { EtcdMemberPlan } from '../config/network.ts';
import { etcdInitialCluster, etcdMembers, etcdTimeouts } from '../config/network.ts';
import { meshPrivateRanges, REPLICATOR } from './replicator.ts';
import type { ClusterSecrets, K8sObject } from './types.ts';
import { labels, selector } from './types.ts';

export const ETCD = 'etcd';
export const ETCD_METRICS_PORT = 2381;
const TLS_DIR = '/etc/etcd/tls';

/** CN of every member's peer client certificate; members accept only this CN (--peer-cert-allowed-cn). */
export function etcdPeerCn(mesh: string): string {
  return `${mesh}-etcd-peer`;
}

/** Internal (never public) LB annotations per cloud, pinning the member's fixed private address. */
export function internalLbAnnotations(spec: StackConfig, member: EtcdMemberPlan): Record<string, string> {
  switch (member.cloud) {
    case 'aws':
      return {
        'service.beta.kubernetes.io/aws-load-balancer-type': 'external',
        'service.beta.kubernetes.io/aws-load-balancer-nlb-target-type': 'ip',
        'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internal',
        'service.beta.kubernetes.io/aws-load-balancer-subnets':
          member.subnetName ?? `${spec.mesh}-aws-private-0`,
        'service.beta.kubernetes.io/aws-load-balancer-private-ipv4-addresses': member.address,
      };
    case 'gcp':
      return { 'networking.gke.io/load-balancer-type': 'Internal' };
    case 'azure':
      return {
        'service.beta.kubernetes.io/azure-load-balancer-internal': 'true',
        'service.beta.kubernetes.io/azure-load-balancer-internal-subnet':
          spec.azure.existingCluster?.nodeSubnetName ?? `${spec.mesh}-aks-nodes`,
        'service.beta.kubernetes.io/azure-load-balancer-ipv4': member.address,
      };
  }
}

function memberManifests<S>(
  spec: StackConfig,
  member: EtcdMemberPlan,
  tls: { cert: S; key: S; peerClientCert: S; peerClientKey: S },
  caCert: S,
): K8sObject[] {
  const ns = spec.namespace;
  const e = spec.etcd;
  const l = { ...labels(ETCD, member.cloud), 'udpmesh.io/etcd-member': member.name };
  const { heartbeatMs, electionMs } = etcdTimeouts(e.interCloudRttMs);
  const podName = `${member.name}-0`;
  const secret: K8sObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `${member.name}-tls`, namespace: ns, labels: l },
    type: 'Opaque',
    stringData: {
      'ca.crt': caCert,
      'tls.crt': tls.cert,
      'tls.key': tls.key,
      'peer-client.crt': tls.peerClientCert,
      'peer-client.key': tls.peerClientKey,
    },
  };
  const service: K8sObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: member.name,
      namespace: ns,
      labels: l,
      annotations: internalLbAnnotations(spec, member),
    },
    spec: {
      type: 'LoadBalancer',
      ...(member.cloud === 'gcp' ? { loadBalancerIP: member.address } : {}),
      // Peers must reach a member before it is ready (bootstrap, quorum loss).
      publishNotReadyAddresses: true,
      loadBalancerSourceRanges: meshPrivateRanges(spec),
      selector: { 'statefulset.kubernetes.io/pod-name': podName },
      ports: [
        { name: 'tls-client', protocol: 'TCP', port: e.clientPort, targetPort: e.clientPort },
        { name: 'tls-peer', protocol: 'TCP', port: e.peerPort, targetPort: e.peerPort },
      ],
    },
  };
  const flags = [
    `--name=${member.name}`,
    '--data-dir=/var/lib/etcd/data',
    `--listen-client-urls=https://0.0.0.0:${e.clientPort}`,
    `--listen-peer-urls=https://0.0.0.0:${e.peerPort}`,
    `--listen-metrics-urls=http://0.0.0.0:${ETCD_METRICS_PORT}`,
    `--advertise-client-urls=${member.clientUrl}`,
    `--initial-advertise-peer-urls=${member.peerUrl}`,
    `--initial-cluster=${etcdInitialCluster(spec)}`,
    `--initial-cluster-state=${e.replaceMembers.includes(member.name) ? 'existing' : 'new'}`,
    `--initial-cluster-token=${spec.mesh}-etcd`,
    `--heartbeat-interval=${heartbeatMs}`,
    `--election-timeout=${electionMs}`,
    '--client-cert-auth=true',
    `--trusted-ca-file=${TLS_DIR}/ca.crt`,
    `--cert-file=${TLS_DIR}/tls.crt`,
    `--key-file=${TLS_DIR}/tls.key`,
    '--peer-client-cert-auth=true',
    `--peer-trusted-ca-file=${TLS_DIR}/ca.crt`,
    `--peer-cert-file=${TLS_DIR}/tls.crt`,
    `--peer-key-file=${TLS_DIR}/tls.key`,
    `--peer-client-cert-file=${TLS_DIR}/peer-client.crt`,
    `--peer-client-key-file=${TLS_DIR}/peer-client.key`,
    `--peer-cert-allowed-cn=${etcdPeerCn(spec.mesh)}`,
    '--auto-compaction-mode=periodic',
    '--auto-compaction-retention=1h',
    `--quota-backend-bytes=${2 * 1024 * 1024 * 1024}`,
  ];
  const statefulSet: K8sObject = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: member.name, namespace: ns, labels: l },
    spec: {
      serviceName: `${ETCD}-headless`,
      replicas: 1,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: { ...selector(ETCD), 'udpmesh.io/etcd-member': member.name } },
      template: {
        metadata: {
          labels: l,
          // etcd does its own mutual TLS with program-generated certificates, across clusters that do not
          // share an Istio trust domain; the sidecar would only get in the way of peer traffic.
          annotations: { 'sidecar.istio.io/inject': 'false' },
        },
        spec: {
          terminationGracePeriodSeconds: 30,
          affinity: {
            ...(member.zone
              ? {
                  nodeAffinity: {
                    requiredDuringSchedulingIgnoredDuringExecution: {
                      nodeSelectorTerms: [
                        {
                          matchExpressions: [
                            { key: 'topology.kubernetes.io/zone', operator: 'In', values: [member.zone] },
                          ],
                        },
                      ],
                    },
                  },
                }
              : {}),
            podAntiAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: [
                { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector(ETCD) } },
              ],
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 100,
                  podAffinityTerm: {
                    topologyKey: 'topology.kubernetes.io/zone',
                    labelSelector: { matchLabels: selector(ETCD) },
                  },
                },
              ],
            },
          },
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            fsGroup: 65532,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'etcd',
              image: e.image,
              command: ['/usr/local/bin/etcd', ...flags],
              ports: [
                { name: 'tls-client', containerPort: e.clientPort, protocol: 'TCP' },
                { name: 'tls-peer', containerPort: e.peerPort, protocol: 'TCP' },
                { name: 'http-metrics', containerPort: ETCD_METRICS_PORT, protocol: 'TCP' },
              ],
              resources: { requests: { cpu: '200m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } },
              startupProbe: {
                httpGet: { path: '/health?serializable=true', port: 'http-metrics' },
                periodSeconds: 5,
                failureThreshold: 60,
              },
              livenessProbe: {
                httpGet: { path: '/health?serializable=true', port: 'http-metrics' },
                periodSeconds: 10,
                timeoutSeconds: 5,
                failureThreshold: 6,
              },
              readinessProbe: {
                httpGet: { path: '/health', port: 'http-metrics' },
                periodSeconds: 5,
                timeoutSeconds: 5,
                failureThreshold: 3,
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'data', mountPath: '/var/lib/etcd' },
                { name: 'tls', mountPath: TLS_DIR, readOnly: true },
              ],
            },
          ],
          volumes: [{ name: 'tls', secret: { secretName: `${member.name}-tls`, defaultMode: 0o440 } }],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: e.storageSize } } },
        },
      ],
    },
  };
  return [secret, service, statefulSet];
}

export function etcdManifests<S>(spec: StackConfig, cloud: Cloud, secrets: ClusterSecrets<S>): K8sObject[] {
  const ns = spec.namespace;
  const e = spec.etcd;
  const local = etcdMembers(spec).filter((m) => m.cloud === cloud);
  if (local.length === 0) return [];
  const l = labels(ETCD, cloud);
  const headless: K8sObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `${ETCD}-headless`, namespace: ns, labels: l },
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selector(ETCD),
      ports: [
        { name: 'tls-client', protocol: 'TCP', port: e.clientPort, targetPort: e.clientPort },
        { name: 'http-metrics', protocol: 'TCP', port: ETCD_METRICS_PORT, targetPort: ETCD_METRICS_PORT },
      ],
    },
  };
  const networkPolicy: K8sObject = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: ETCD, namespace: ns, labels: l },
    spec: {
      podSelector: { matchLabels: selector(ETCD) },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: selector(REPLICATOR) } }],
          ports: [{ protocol: 'TCP', port: e.clientPort }],
        },
        {
          from: meshPrivateRanges(spec).map((cidr) => ({ ipBlock: { cidr } })),
          ports: [
            { protocol: 'TCP', port: e.clientPort },
            { protocol: 'TCP', port: e.peerPort },
          ],
        },
        { ports: [{ protocol: 'TCP', port: ETCD_METRICS_PORT }] },
      ],
    },
  };
  const members = local.flatMap((m) => {
    const tls = secrets.etcdMembers[m.name];
    if (!tls) throw new Error(`missing TLS material for etcd member ${m.name}`);
    return memberManifests(spec, m, tls, secrets.etcdCaCert);
  });
  const pdb: K8sObject = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: ETCD, namespace: ns, labels: l },
    spec: { maxUnavailable: 1, selector: { matchLabels: selector(ETCD) } },
  };
  return [headless, networkPolicy, pdb, ...members];
}
