// Pure manifests for the replicator in one cluster. Why the Istio annotations: Istio does not proxy
// UDP (istio/istio#1430), so the UDP ingress and replication ports are excluded from the sidecar's
// iptables capture and go straight between the cloud L4 load balancer / the interconnect and the pod;
// the TCP traffic (metrics, health, etcd client, Kubernetes API) stays inside the mesh with STRICT mTLS.
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import type { Cloud, StackConfig } from '../config/schema.ts';
import { enabledClouds } from '../config/schema.ts';
import { etcdMembers } from '../config/network.ts';
import { advertisedRanges } from '../interconnect/plan.ts';
import { CRD_GROUP, CRD_PLURAL, CRD_VERSION } from './crd.ts';
import type { ClusterSecrets, K8sObject } from './types.ts';
import { labels, selector } from './types.ts';

export const REPLICATOR = 'udpmesh-replicator';
export const CONFIG_PATH = '/etc/udpmesh/config.yaml';
export const ETCD_CLIENT_TLS_DIR = '/etc/udpmesh-etcd';
/** Istio's sidecar agent serves merged app + Envoy metrics here (plaintext, for Prometheus). */
export const ISTIO_MERGED_METRICS_PORT = 15020;

/** The UDP replication ports of one pod: worker i binds replicationPort + i (replicator/workers.ts). */
export function replicationPorts(spec: StackConfig): number[] {
  const r = spec.replicator;
  return Array.from({ length: r.workers }, (_, i) => r.replicationPort + i);
}

/**
 * The UDP endpoint's DNS label on Azure. Labels are global within a region across all Azure customers
 * (<label>.<location>.cloudapp.azure.com), so the mesh name alone collides with anyone else's: add the
 * configured suffix, or one derived from the mesh, location and VNet range.
 */
export function azureDnsLabel(spec: StackConfig): string {
  const suffix =
    spec.azure.dnsLabelSuffix ??
    createHash('sha256')
      .update(`${spec.mesh}|${spec.azure.location}|${spec.azure.vpcCidr}`)
      .digest('hex')
      .slice(0, 8);
  return `${spec.mesh}-udp-${suffix}`;
}

/** The replicator config file (shape: replicator/config/schema.ts) for one cluster. */
export function replicatorConfig(spec: StackConfig, cloud: Cloud): Record<string, unknown> {
  const r = spec.replicator;
  const members = etcdMembers(spec);
  // Local members first: the client tries endpoints in order.
  const endpoints = [
    ...members.filter((m) => m.cloud === cloud),
    ...members.filter((m) => m.cloud !== cloud),
  ].map((m) => m.clientUrl);
  return {
    cluster: cloud,
    mesh: spec.mesh,
    // The cloud load balancers preserve client addresses (NLB UDP, externalTrafficPolicy Local), so the
    // replicator enforces the same allow-list as loadBalancerSourceRanges (empty = everyone).
    ingress: {
      ports: r.ingressPorts,
      addresses: ['0.0.0.0'],
      allowCidrs: r.allowedSourceRanges.includes('0.0.0.0/0') ? [] : r.allowedSourceRanges,
    },
    replication: { address: '0.0.0.0', port: r.replicationPort, peers: [] },
    delivery: { dns: r.deliveryDns },
    workers: r.workers,
    etcd: {
      endpoints,
      tls: {
        caFile: `${ETCD_CLIENT_TLS_DIR}/ca.crt`,
        certFile: `${ETCD_CLIENT_TLS_DIR}/tls.crt`,
        keyFile: `${ETCD_CLIENT_TLS_DIR}/tls.key`,
      },
    },
    metrics: { address: '0.0.0.0', port: r.metricsPort },
    log: { level: r.logLevel },
    drain: { deadlineMs: r.drainDeadlineMs },
  };
}

/** Cloud-specific annotations of the public UDP load balancer. */
export function udpServiceAnnotations(spec: StackConfig, cloud: Cloud): Record<string, string> {
  switch (cloud) {
    case 'aws': {
      // AWS Load Balancer Controller NLB with ip targets. UDP target groups cannot be probed over UDP: the
      // health check is HTTP /readyz on the metrics port, which the sidecar does not intercept, so it asks
      // the replicator itself (a TCP check on a captured port would only test Envoy). Deregistration waits
      // the drain deadline, then ends the remaining UDP flows so clients re-hash to live targets.
      const drainSeconds = Math.ceil(spec.replicator.drainDeadlineMs / 1000);
      return {
        'service.beta.kubernetes.io/aws-load-balancer-type': 'external',
        'service.beta.kubernetes.io/aws-load-balancer-nlb-target-type': 'ip',
        'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internet-facing',
        'service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol': 'HTTP',
        'service.beta.kubernetes.io/aws-load-balancer-healthcheck-path': '/readyz',
        'service.beta.kubernetes.io/aws-load-balancer-healthcheck-port': String(spec.replicator.metricsPort),
        'service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval': '10',
        'service.beta.kubernetes.io/aws-load-balancer-healthcheck-healthy-threshold': '2',
        'service.beta.kubernetes.io/aws-load-balancer-healthcheck-unhealthy-threshold': '2',
        'service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled': 'true',
        'service.beta.kubernetes.io/aws-load-balancer-target-group-attributes': `deregistration_delay.timeout_seconds=${drainSeconds},deregistration_delay.connection_termination.enabled=true`,
      };
    }
    case 'gcp':
      // Backend-service-based external passthrough Network LB (supports UDP).
      return { 'cloud.google.com/l4-rbs': 'enabled' };
    case 'azure':
      // Azure LB cannot probe UDP: the Service sets externalTrafficPolicy Local, so the LB probes kube-proxy's
      // health node port (HTTP) and only nodes running a replicator receive traffic. The DNS label gives a stable FQDN.
      return { 'service.beta.kubernetes.io/azure-dns-label-name': azureDnsLabel(spec) };
  }
}

/** Private ranges of every enabled cloud (VPC/VNet, pods, services): the interconnect's address space. */
export function meshPrivateRanges(spec: StackConfig): string[] {
  return enabledClouds(spec).flatMap((c) => advertisedRanges(spec, c));
}

export function replicatorManifests<S>(
  spec: StackConfig,
  cloud: Cloud,
  secrets: ClusterSecrets<S>,
): K8sObject[] {
  const ns = spec.namespace;
  const r = spec.replicator;
  const l = labels(REPLICATOR, cloud);
  const sel = selector(REPLICATOR);
  const udpPorts = [...r.ingressPorts, ...replicationPorts(spec)].join(',');
  // The metrics port serves /healthz and /readyz: keep it out of the sidecar so load balancer health
  // checks reach the replicator, not Envoy (kubelet probes are rewritten through the agent anyway).
  const inboundExcluded = [...r.ingressPorts, ...replicationPorts(spec), r.metricsPort].join(',');
  const graceSeconds = Math.ceil(r.drainDeadlineMs / 1000) + 15;
  const remoteRanges = meshPrivateRanges(spec);

  const namespace: K8sObject = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: ns,
      labels: {
        ...labels('udpmesh', cloud),
        'istio-injection': 'enabled',
        // NLB ip targets: pods get the controller's readiness gate, so a rolling update waits until the
        // new pod is a healthy target before the old one goes (no datagrams into a not-yet-registered pod).
        ...(cloud === 'aws' ? { 'elbv2.k8s.aws/pod-readiness-gate-inject': 'enabled' } : {}),
      },
    },
  };
  const serviceAccount: K8sObject = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: REPLICATOR, namespace: ns, labels: l },
    automountServiceAccountToken: true,
  };
  const role: K8sObject = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: `${REPLICATOR}-status`, namespace: ns, labels: l },
    rules: [
      { apiGroups: [CRD_GROUP], resources: [CRD_PLURAL], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [CRD_GROUP], resources: [`${CRD_PLURAL}/status`], verbs: ['get', 'patch'] },
    ],
  };
  const roleBinding: K8sObject = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: `${REPLICATOR}-status`, namespace: ns, labels: l },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${REPLICATOR}-status` },
    subjects: [{ kind: 'ServiceAccount', name: REPLICATOR, namespace: ns }],
  };
  const configYaml = YAML.stringify(replicatorConfig(spec, cloud));
  const configMap: K8sObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `${REPLICATOR}-config`, namespace: ns, labels: l },
    data: { 'config.yaml': configYaml },
  };
  const keySecret: K8sObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'udpmesh-cluster-key', namespace: ns, labels: l },
    type: 'Opaque',
    stringData: { key: secrets.clusterKey },
  };
  const etcdClientSecret: K8sObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'udpmesh-etcd-client-tls', namespace: ns, labels: l },
    type: 'Opaque',
    stringData: {
      'ca.crt': secrets.etcdCaCert,
      'tls.crt': secrets.etcdClient.cert,
      'tls.key': secrets.etcdClient.key,
    },
  };
  const httpProbe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: 'http-metrics' },
    periodSeconds,
    timeoutSeconds: 2,
    failureThreshold,
  });
  const deployment: K8sObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: REPLICATOR, namespace: ns, labels: l },
    spec: {
      // No `replicas`: the HPA owns the scale (a field manager setting it would fight kube-controller-manager).
      selector: { matchLabels: sel },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: l,
          annotations: {
            // Roll the pods when the config file changes.
            'checksum/config': createHash('sha256').update(configYaml).digest('hex'),
            // Istio cannot proxy UDP: keep the UDP ports out of the sidecar's capture.
            'traffic.sidecar.istio.io/excludeInboundPorts': inboundExcluded,
            'traffic.sidecar.istio.io/excludeOutboundPorts': udpPorts,
            // Metrics merging: the sidecar agent re-serves /metrics on 15020 for Prometheus (9100 itself is STRICT mTLS).
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(r.metricsPort),
            'prometheus.io/path': '/metrics',
          },
        },
        spec: {
          serviceAccountName: REPLICATOR,
          terminationGracePeriodSeconds: graceSeconds,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 10001,
            runAsGroup: 10001,
            fsGroup: 10001,
            seccompProfile: { type: 'RuntimeDefault' },
            // Reply mode holds one upstream socket (an ephemeral port) per client session: the default
            // range (~28k ports) would cap sessions per pod. A namespaced, Kubernetes-"safe" sysctl.
            sysctls: [{ name: 'net.ipv4.ip_local_port_range', value: '10240 65535' }],
          },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 100,
                  podAffinityTerm: {
                    topologyKey: 'kubernetes.io/hostname',
                    labelSelector: { matchLabels: sel },
                  },
                },
              ],
            },
          },
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: 'topology.kubernetes.io/zone',
              whenUnsatisfiable: 'ScheduleAnyway',
              labelSelector: { matchLabels: sel },
            },
          ],
          containers: [
            {
              name: 'replicator',
              image: r.image,
              imagePullPolicy: 'IfNotPresent',
              command: ['node', '--import', 'tsx', 'replicator/main.ts', '--config', CONFIG_PATH],
              ports: [
                ...r.ingressPorts.map((p, i) => ({
                  name: `udp-ingress-${i}`,
                  containerPort: p,
                  protocol: 'UDP',
                })),
                ...replicationPorts(spec).map((p, i) => ({
                  name: i === 0 ? 'udp-replication' : `udp-repl-${i}`,
                  containerPort: p,
                  protocol: 'UDP',
                })),
                { name: 'http-metrics', containerPort: r.metricsPort, protocol: 'TCP' },
              ],
              env: [
                { name: 'UDPMESH_INSTANCE', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                {
                  name: 'UDPMESH_REPLICATION__ADVERTISE_ADDRESS',
                  valueFrom: { fieldRef: { fieldPath: 'status.podIP' } },
                },
                {
                  name: 'UDPMESH_CLUSTER_KEY',
                  valueFrom: { secretKeyRef: { name: 'udpmesh-cluster-key', key: 'key' } },
                },
                { name: 'UDPREPLICATOR_NAME', value: cloud },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              ],
              resources: { requests: { ...r.resources.requests }, limits: { ...r.resources.limits } },
              startupProbe: httpProbe('/healthz', 2, 30),
              livenessProbe: httpProbe('/healthz', 10, 3),
              readinessProbe: httpProbe('/readyz', 5, 2),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'config', mountPath: '/etc/udpmesh', readOnly: true },
                { name: 'etcd-client-tls', mountPath: ETCD_CLIENT_TLS_DIR, readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            { name: 'config', configMap: { name: `${REPLICATOR}-config` } },
            {
              name: 'etcd-client-tls',
              secret: { secretName: 'udpmesh-etcd-client-tls', defaultMode: 0o440 },
            },
            { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
          ],
        },
      },
    },
  };
  const pdb: K8sObject = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: REPLICATOR, namespace: ns, labels: l },
    spec: { maxUnavailable: 1, selector: { matchLabels: sel } },
  };
  const hpa: K8sObject = {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: REPLICATOR, namespace: ns, labels: l },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: REPLICATOR },
      minReplicas: r.replicas,
      maxReplicas: r.maxReplicas,
      metrics: [
        {
          type: 'Resource',
          resource: {
            name: 'cpu',
            target: { type: 'Utilization', averageUtilization: r.targetCpuUtilization },
          },
        },
      ],
      // Scale down slowly: every scale-down drains sessions.
      behavior: {
        scaleDown: {
          stabilizationWindowSeconds: 300,
          policies: [{ type: 'Pods', value: 1, periodSeconds: 120 }],
        },
      },
    },
  };
  const networkPolicy: K8sObject = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: REPLICATOR, namespace: ns, labels: l },
    spec: {
      podSelector: { matchLabels: sel },
      policyTypes: ['Ingress'],
      ingress: [
        // Client datagrams arrive from anywhere through the load balancer.
        { ports: r.ingressPorts.map((p) => ({ protocol: 'UDP', port: p })) },
        // Replication only from the mesh's private ranges (over the interconnect).
        {
          from: remoteRanges.map((cidr) => ({ ipBlock: { cidr } })),
          ports: [
            {
              protocol: 'UDP',
              port: r.replicationPort,
              ...(r.workers > 1 ? { endPort: r.replicationPort + r.workers - 1 } : {}),
            },
          ],
        },
        // Metrics/health: kubelet probes, Prometheus and the LB health check.
        {
          ports: [
            { protocol: 'TCP', port: r.metricsPort },
            { protocol: 'TCP', port: ISTIO_MERGED_METRICS_PORT },
          ],
        },
      ],
    },
  };
  const udpService: K8sObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'udpmesh-ingress',
      namespace: ns,
      labels: l,
      annotations: udpServiceAnnotations(spec, cloud),
    },
    spec: {
      type: 'LoadBalancer',
      selector: sel,
      ...(cloud === 'aws' ? {} : { externalTrafficPolicy: 'Local' }),
      loadBalancerSourceRanges: r.allowedSourceRanges,
      ports: [
        ...r.ingressPorts.map((p, i) => ({
          name: `udp-ingress-${i}`,
          protocol: 'UDP',
          port: p,
          targetPort: p,
        })),
        // With a global DNS name, Route 53 health checks ask /readyz through this same load balancer.
        ...(spec.aws.globalDns
          ? [{ name: 'tcp-health', protocol: 'TCP', port: r.metricsPort, targetPort: r.metricsPort }]
          : []),
      ],
    },
  };
  const metricsService: K8sObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `${REPLICATOR}-metrics`, namespace: ns, labels: l },
    spec: {
      type: 'ClusterIP',
      selector: sel,
      ports: [
        { name: 'http-metrics', protocol: 'TCP', port: r.metricsPort, targetPort: r.metricsPort },
        {
          name: 'http-envoy-prom',
          protocol: 'TCP',
          port: ISTIO_MERGED_METRICS_PORT,
          targetPort: ISTIO_MERGED_METRICS_PORT,
        },
      ],
    },
  };
  const peerAuthentication: K8sObject = {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'default', namespace: ns, labels: l },
    spec: { mtls: { mode: 'STRICT' } },
  };
  const members = etcdMembers(spec);
  const udpReplicator: K8sObject = {
    apiVersion: `${CRD_GROUP}/${CRD_VERSION}`,
    kind: 'UdpReplicator',
    metadata: { name: cloud, namespace: ns, labels: l },
    spec: {
      cloud,
      mesh: spec.mesh,
      image: r.image,
      replicas: r.replicas,
      maxReplicas: r.maxReplicas,
      ingressPorts: r.ingressPorts,
      replicationPort: r.replicationPort,
      metricsPort: r.metricsPort,
      peers: enabledClouds(spec).filter((c) => c !== cloud),
      etcdEndpoints: members.map((m) => m.clientUrl),
    },
  };
  return [
    namespace,
    serviceAccount,
    role,
    roleBinding,
    configMap,
    keySecret,
    etcdClientSecret,
    deployment,
    pdb,
    hpa,
    networkPolicy,
    udpService,
    metricsService,
    peerAuthentication,
    udpReplicator,
  ];
}
