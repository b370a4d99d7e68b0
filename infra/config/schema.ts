// The stack's configuration: one zod schema is the type, the validator and (via z.toJSONSchema) the
// reference used by Pulumi.yaml, the automation API and docs/infra.md. Cross-field rules (CIDR overlap,
// ASN uniqueness, etcd quorum layout, port clashes, unknown clouds) are checked in parseStackConfig and
// every failure names the offending key and how to fix it.
import * as pulumi from '@pulumi/pulumi';
import { isIP } from 'node:net';
import { z } from 'zod';
import { cidrContains, cidrsOverlap, parseCidr } from './cidr.ts';

export const CLOUDS = ['aws', 'gcp', 'azure'] as const;
export type Cloud = (typeof CLOUDS)[number];

const port = z.number().int().min(1).max(65535);
const cidr = z.string().refine((s) => parseCidr(s) !== undefined, {
  message: 'expected an IPv4 CIDR with no host bits set, e.g. 10.10.0.0/16',
});
const quantity = z
  .string()
  .regex(
    /^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/,
    'expected a Kubernetes quantity, e.g. 250m, 1, 512Mi or 2Gi',
  );
/** Private 16-bit (64512-65534) or 32-bit (4200000000-4294967294) ASN. */
const privateAsn = z
  .number()
  .int()
  .refine((n) => (n >= 64512 && n <= 65534) || (n >= 4_200_000_000 && n <= 4_294_967_294), {
    message: 'use a private ASN: 64512-65534 or 4200000000-4294967294',
  });
const k8sVersion = z.string().regex(/^1\.\d{2}(\.\d+)?$/, 'expected a Kubernetes minor version such as 1.33');
const name = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/,
    'use 1-32 lowercase letters, digits or dashes, e.g. udpmesh',
  );

const nodePool = (machineDefault: string) =>
  z
    .strictObject({
      machineType: z.string().min(1).default(machineDefault),
      minNodes: z.number().int().min(1).max(100).default(2),
      maxNodes: z.number().int().min(1).max(100).default(4),
      desiredNodes: z.number().int().min(1).max(100).default(2),
      diskSizeGb: z.number().int().min(20).max(2000).default(50),
    })
    .prefault({});

export const awsSchema = z
  .strictObject({
    region: z.string().min(1).default('us-east-1'),
    /** Availability zones for subnets; defaults to the region's a, b and c zones. */
    availabilityZones: z.array(z.string().min(1)).min(2).max(6).optional(),
    /** VPC CIDR. Pods get VPC addresses (VPC CNI), so this is also the pod range. */
    vpcCidr: cidr.default('10.10.0.0/16'),
    serviceCidr: cidr.default('10.12.0.0/16'),
    /** ASN of the AWS virtual private gateway (amazonSideAsn). */
    asn: privateAsn.default(64512),
    kubernetesVersion: k8sVersion.default('1.33'),
    nodePool: nodePool('t3.large'),
    /**
     * One global DNS name for the UDP endpoints of every enabled cloud (Route 53 weighted records with
     * health checks on the replicator's /readyz). Uses this AWS account even when aws is not in clouds.
     */
    globalDns: z
      .strictObject({
        hostedZoneId: z
          .string()
          .regex(/^Z[A-Z0-9]{5,32}$/, 'expected a Route 53 hosted zone ID, e.g. Z0123456789ABC'),
        /** A name inside the zone (not the apex of another zone), e.g. udp.example.com. */
        name: z
          .string()
          .regex(
            /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?$/,
            'expected a DNS name, e.g. udp.example.com',
          ),
        ttl: z.number().int().min(5).max(3600).default(30),
        /** Route 53 health check interval: 10 (fast, billed extra) or 30 seconds. */
        healthCheckIntervalSeconds: z.union([z.literal(10), z.literal(30)]).default(10),
        failureThreshold: z.number().int().min(1).max(10).default(3),
      })
      .optional(),
    /**
     * CIDRs allowed to reach the Kubernetes API server (whoever runs Pulumi must be inside). 0.0.0.0/0
     * leaves it open; set your office/CI ranges for production.
     */
    apiServerAuthorizedCidrs: z.array(cidr).min(1).default(['0.0.0.0/0']),
    /**
     * Use an existing EKS cluster instead of creating one (docs/infra.md, "Existing clusters"): its
     * kubeconfig and the VPC parts the interconnect attaches to. vpcCidr must be the VPC's CIDR.
     */
    existingCluster: z
      .strictObject({
        /** Cluster name (for outputs and the AWS LB controller's cluster tag). */
        name: z.string().min(1),
        /** Kubeconfig of the cluster (set as a secret: pulumi config set --secret --path ...). */
        kubeconfig: z.string().min(1),
        vpcId: z.string().regex(/^vpc-[0-9a-f]+$/, 'expected a VPC ID, e.g. vpc-0abc123'),
        /** Route tables of the cluster's subnets: the VPN gateway propagates the other clouds' routes into them. */
        routeTableIds: z.array(z.string().regex(/^rtb-[0-9a-f]+$/, 'expected a route table ID')).min(1),
        /** Security group of the nodes/pods (the EKS cluster security group): opened to the other clouds. */
        clusterSecurityGroupId: z.string().regex(/^sg-[0-9a-f]+$/, 'expected a security group ID'),
        /** Private subnets (one per zone) for the etcd members' internal NLBs. */
        privateSubnets: z
          .array(
            z.strictObject({ id: z.string().regex(/^subnet-[0-9a-f]+$/), cidr, zone: z.string().min(1) }),
          )
          .min(2),
      })
      .optional(),
  })
  .prefault({});

export const gcpSchema = z
  .strictObject({
    project: z.string().min(1).default('udpmesh-dev'),
    region: z.string().min(1).default('us-central1'),
    vpcCidr: cidr.default('10.20.0.0/16'),
    podCidr: cidr.default('10.21.0.0/16'),
    serviceCidr: cidr.default('10.22.0.0/20'),
    /** ASN of the Cloud Router that terminates every HA VPN BGP session. */
    asn: privateAsn.default(64514),
    kubernetesVersion: k8sVersion.default('1.33'),
    nodePool: nodePool('e2-standard-4'),
    /**
     * CIDRs allowed to reach the Kubernetes API server (whoever runs Pulumi must be inside). 0.0.0.0/0
     * leaves it open; set your office/CI ranges for production.
     */
    apiServerAuthorizedCidrs: z.array(cidr).min(1).default(['0.0.0.0/0']),
    /** /28 for the GKE control plane's private endpoint (private nodes); disjoint from every mesh range. */
    masterCidr: cidr.default('172.16.0.32/28'),
    /** Use an existing GKE cluster; the interconnect attaches to its VPC network (vpcCidr = its node subnet). */
    existingCluster: z
      .strictObject({
        /** Cluster name (for outputs and the AWS LB controller's cluster tag). */
        name: z.string().min(1),
        /** Kubeconfig of the cluster (set as a secret: pulumi config set --secret --path ...). */
        kubeconfig: z.string().min(1),
        /** The cluster's VPC network, e.g. projects/my-project/global/networks/my-network. */
        networkId: z
          .string()
          .regex(/^projects\/[^/]+\/global\/networks\/[^/]+$/, 'expected projects/<p>/global/networks/<n>'),
      })
      .optional(),
  })
  .prefault({});

export const azureSchema = z
  .strictObject({
    location: z.string().min(1).default('eastus'),
    vpcCidr: cidr.default('10.30.0.0/16'),
    /** AKS node subnet, inside vpcCidr. Azure CNI gives pods addresses from this subnet, so it is the pod range. */
    nodeSubnetCidr: cidr.default('10.30.0.0/20'),
    /** The VNet's GatewaySubnet for the VPN gateway, inside vpcCidr, /27 or larger. */
    gatewaySubnetCidr: cidr.default('10.30.255.0/27'),
    serviceCidr: cidr.default('10.32.0.0/16'),
    /** ASN of the active-active VPN gateway (65515 is Azure's default). */
    asn: privateAsn.default(65515),
    kubernetesVersion: k8sVersion.default('1.33'),
    nodePool: nodePool('Standard_D4s_v5'),
    /**
     * CIDRs allowed to reach the Kubernetes API server (whoever runs Pulumi must be inside). 0.0.0.0/0
     * leaves it open; set your office/CI ranges for production.
     */
    apiServerAuthorizedCidrs: z.array(cidr).min(1).default(['0.0.0.0/0']),
    /** Private API server (reachable only from the VNet and peered networks; run Pulumi from there). */
    privateApiServer: z.boolean().default(false),
    /** AKS pricing tier: Free has no uptime SLA; Standard (default) and Premium have one. */
    skuTier: z.enum(['Free', 'Standard', 'Premium']).default('Standard'),
    /**
     * Suffix that makes the UDP endpoint's DNS label (<mesh>-udp-<suffix>.<location>.cloudapp.azure.com)
     * unique: the label is global in the region across all Azure customers. Default: derived from the
     * mesh, location and VNet range; set your own (6-12 lowercase letters/digits) to be sure.
     */
    dnsLabelSuffix: z
      .string()
      .regex(/^[a-z0-9]{6,12}$/, 'use 6-12 lowercase letters or digits')
      .optional(),
    /**
     * Use an existing AKS cluster; its VNet must contain a GatewaySubnet (/27 or larger, = gatewaySubnetCidr)
     * and the node subnet (= nodeSubnetCidr) named nodeSubnetName.
     */
    existingCluster: z
      .strictObject({
        /** Cluster name (for outputs and the AWS LB controller's cluster tag). */
        name: z.string().min(1),
        /** Kubeconfig of the cluster (set as a secret: pulumi config set --secret --path ...). */
        kubeconfig: z.string().min(1),
        resourceGroupName: z.string().min(1),
        vnetId: z
          .string()
          .regex(
            /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+$/i,
            'expected a VNet resource ID',
          ),
        nodeSubnetName: z.string().min(1),
      })
      .optional(),
  })
  .prefault({});

const resources = z.strictObject({ cpu: quantity, memory: quantity });

export const replicatorSchema = z
  .strictObject({
    image: z.string().min(1).default('ghcr.io/udpmesh/replicator:0.1.0'),
    replicas: z.number().int().min(1).max(100).default(2),
    /** reusePort worker processes per pod (replicator `workers`); match it to the CPU limit. */
    workers: z.number().int().min(1).max(64).default(1),
    maxReplicas: z.number().int().min(1).max(500).default(6),
    /** Target average CPU utilisation for the HorizontalPodAutoscaler. */
    targetCpuUtilization: z.number().int().min(10).max(95).default(70),
    ingressPorts: z.array(port).min(1).max(16).default([7001]),
    replicationPort: port.default(7946),
    metricsPort: port.default(9100),
    resources: z
      .strictObject({
        requests: resources.default({ cpu: '250m', memory: '256Mi' }),
        limits: resources.default({ cpu: '1', memory: '512Mi' }),
      })
      .prefault({}),
    drainDeadlineMs: z.number().int().min(0).max(600_000).default(10_000),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    /** Where replicated datagrams are delivered in each cluster (host:port of a headless Service). */
    deliveryDns: z.string().min(1).default('udp-backend.udpmesh-apps.svc.cluster.local:5353'),
    /** Source ranges allowed to reach the UDP load balancers (loadBalancerSourceRanges). */
    allowedSourceRanges: z.array(cidr).min(1).default(['0.0.0.0/0']),
  })
  .prefault({});

export const etcdSchema = z
  .strictObject({
    /** Total members when `layout` is not given; spread round-robin over the enabled clouds. */
    members: z.number().int().min(1).max(9).default(3),
    /** Explicit members per cloud, e.g. {"aws":2,"gcp":2,"azure":1}. Overrides `members`. */
    layout: z.record(z.string(), z.number().int().min(0).max(9)).optional(),
    image: z.string().min(1).default('quay.io/coreos/etcd:v3.5.21'),
    storageSize: quantity.default('10Gi'),
    /** Measured round trip between clouds over the VPN; drives heartbeat and election timeouts. */
    interCloudRttMs: z.number().int().min(1).max(2000).default(60),
    clientPort: port.default(2379),
    peerPort: port.default(2380),
    /**
     * Two-cloud stacks cannot keep etcd quorum when the cloud holding the majority fails (no layout
     * can). Set true to accept that explicitly; otherwise enable a third cloud.
     */
    allowQuorumLossOnCloudFailure: z.boolean().default(false),
    /**
     * Members being replaced after a loss: run `etcdctl member add <name> --peer-urls=<its peer URL>` first,
     * then list the name here so its pod starts with --initial-cluster-state=existing (docs/infra.md).
     */
    replaceMembers: z.array(z.string().min(1)).default([]),
  })
  .prefault({});

export const istioSchema = z
  .strictObject({
    version: z.string().min(1).default('1.27.1'),
  })
  .prefault({});

export const monitoringSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    chartVersion: z.string().min(1).default('77.5.0'),
    retention: z
      .string()
      .regex(/^\d+[hdwy]$/, 'expected a duration such as 15d')
      .default('15d'),
    /** Expose Grafana through a LoadBalancer (otherwise ClusterIP, reach it with kubectl port-forward). */
    exposeGrafana: z.boolean().default(false),
    /** PVC size for Prometheus' TSDB (and a tenth of it, at least 1Gi, for Alertmanager). */
    storageSize: quantity.default('50Gi'),
    /**
     * Alertmanager receivers; alerts go to every one of them. Without any, alerts are only visible in
     * the Alertmanager UI (the program warns). URLs and keys may be set as secrets.
     */
    alertReceivers: z
      .array(
        z.strictObject({
          name: z.string().regex(/^[a-z0-9-]{1,40}$/, 'use 1-40 lowercase letters, digits or dashes'),
          webhookUrl: z.url().optional(),
          slackApiUrl: z.url().optional(),
          slackChannel: z.string().min(1).optional(),
          pagerdutyRoutingKey: z.string().min(1).optional(),
        }),
      )
      .default([]),
  })
  .prefault({});

const ipAddress = z
  .string()
  .refine((s) => isIP(s) !== 0, { message: 'expected an IP address, e.g. 127.0.0.2' });
const backendEndpoint = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:5353');

/**
 * The `local` target (`clouds: [local]`): the mesh as processes on this machine (infra/local). Each
 * simulated cloud gets its own loopback address, so every cloud uses the same ports as in Kubernetes
 * (replicator.ingressPorts/replicationPort/metricsPort, etcd.clientPort/peerPort) and the outputs keep
 * the cloud stacks' shape. Linux routes all of 127.0.0.0/8 to loopback; macOS needs
 * `sudo ifconfig lo0 alias 127.0.0.2 up` (and .3).
 */
export const localSchema = z
  .strictObject({
    addresses: z
      .strictObject({
        aws: ipAddress.default('127.0.0.1'),
        gcp: ipAddress.default('127.0.0.2'),
        azure: ipAddress.default('127.0.0.3'),
      })
      .prefault({}),
    /** Your UDP service per simulated cloud; a cloud without one gets an echo backend on echoPort. */
    backends: z
      .strictObject({
        aws: backendEndpoint.optional(),
        gcp: backendEndpoint.optional(),
        azure: backendEndpoint.optional(),
      })
      .prefault({}),
    echoPort: port.default(5353),
    prometheus: z
      .strictObject({ address: ipAddress.default('127.0.0.1'), port: port.default(9090) })
      .prefault({}),
    /** Pid files, logs, configs and data; default $XDG_STATE_HOME/udpmesh/<project>/<stack>. */
    stateDir: z.string().min(1).optional(),
    /** How long create/update wait for a process to become ready. */
    readyTimeoutMs: z.number().int().min(1000).max(600_000).default(60_000),
  })
  .prefault({});

export const stackConfigSchema = z.strictObject({
  /** Enabled clouds: any non-empty subset of aws, gcp, azure. */
  clouds: z.array(z.string()).min(1, 'enable at least one cloud, e.g. ["aws"]'),
  /** Mesh name: the etcd key prefix /udpmesh/<mesh>/ and a prefix of resource names. */
  mesh: name.default('udpmesh'),
  /** Kubernetes namespace for the replicator and etcd. */
  namespace: name.default('udpmesh'),
  aws: awsSchema,
  gcp: gcpSchema,
  azure: azureSchema,
  replicator: replicatorSchema,
  etcd: etcdSchema,
  istio: istioSchema,
  monitoring: monitoringSchema,
  local: localSchema,
});

export type StackConfigInput = z.input<typeof stackConfigSchema>;
export type StackConfig = z.output<typeof stackConfigSchema>;
export type AwsConfig = StackConfig['aws'];
export type GcpConfig = StackConfig['gcp'];
export type AzureConfig = StackConfig['azure'];

/** JSON Schema of the stack config input, for OpenAPI documents and Pulumi.yaml. */
export const stackConfigJsonSchema = z.toJSONSchema(stackConfigSchema, {
  io: 'input',
  unrepresentable: 'any',
});

export interface StackConfigIssue {
  key: string;
  message: string;
}

export class StackConfigError extends Error {
  readonly issues: StackConfigIssue[];
  constructor(issues: StackConfigIssue[]) {
    super(`invalid udpmesh stack config:\n${issues.map((i) => `  ${i.key}: ${i.message}`).join('\n')}`);
    this.name = 'StackConfigError';
    this.issues = issues;
  }
}

export function isCloud(s: string): s is Cloud {
  return (CLOUDS as readonly string[]).includes(s);
}

/** The `local` target: not a cloud, the whole mesh on this machine (infra/local). */
export const LOCAL_TARGET = 'local';

/** True for a `clouds: [local]` stack. */
export function isLocalTarget(spec: Pick<StackConfig, 'clouds'>): boolean {
  return spec.clouds.includes(LOCAL_TARGET);
}

/** Enabled clouds in canonical order (aws, gcp, azure). */
export function enabledClouds(spec: Pick<StackConfig, 'clouds'>): Cloud[] {
  return CLOUDS.filter((c) => spec.clouds.includes(c));
}

/** etcd members per enabled cloud: the explicit layout, or `members` spread round-robin. */
export function etcdLayout(spec: Pick<StackConfig, 'clouds' | 'etcd'>): Record<Cloud, number> {
  const clouds = enabledClouds(spec);
  const out: Record<Cloud, number> = { aws: 0, gcp: 0, azure: 0 };
  if (spec.etcd.layout) {
    for (const [k, v] of Object.entries(spec.etcd.layout)) if (isCloud(k)) out[k] = v;
    return out;
  }
  for (let i = 0; i < spec.etcd.members; i++) out[clouds[i % clouds.length]]++;
  return out;
}

export function quorum(members: number): number {
  return Math.floor(members / 2) + 1;
}

/** Clouds whose loss would leave etcd without quorum. */
export function cloudsBreakingQuorum(layout: Record<Cloud, number>, clouds: Cloud[]): Cloud[] {
  const total = clouds.reduce((s, c) => s + layout[c], 0);
  return clouds.filter((c) => total - layout[c] < quorum(total));
}

/** Heartbeat and election timeouts (ms) from the inter-cloud RTT, per the etcd tuning guide. */
export function etcdTimeouts(rttMs: number): { heartbeatMs: number; electionMs: number } {
  const heartbeatMs = Math.max(100, Math.round(rttMs * 1.5));
  const electionMs = Math.min(50_000, Math.max(1000, 10 * rttMs, 5 * heartbeatMs));
  return { heartbeatMs, electionMs };
}

/** Istio sidecar ports that an application port must not use. */
export const ISTIO_RESERVED_PORTS = [15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090];
/** Azure reserves these private ASNs; they cannot be used by the far side of an Azure VPN. */
export const AZURE_RESERVED_ASNS = [65515, 65517, 65518, 65519, 65520];

function crossFieldIssues(spec: StackConfig): StackConfigIssue[] {
  const issues: StackConfigIssue[] = [];
  const clouds: Cloud[] = [];
  const seen = new Set<string>();
  spec.clouds.forEach((c, i) => {
    if (c === LOCAL_TARGET) {
      if (spec.clouds.length > 1)
        issues.push({
          key: `clouds[${i}]`,
          message: `"local" runs the whole mesh on this machine and cannot be combined with other clouds; use clouds: [local] alone`,
        });
    } else if (!isCloud(c)) {
      issues.push({
        key: `clouds[${i}]`,
        message: `unknown cloud "${c}"; use any of aws, gcp, azure (or local alone)`,
      });
    } else if (seen.has(c)) {
      issues.push({ key: `clouds[${i}]`, message: `"${c}" is listed twice; list each cloud once` });
    } else clouds.push(c);
    seen.add(c);
  });

  // CIDRs: every range of every enabled cloud must be disjoint (they are routed to each other over the VPN).
  const ranges: { key: string; text: string }[] = [];
  if (clouds.includes('aws')) {
    ranges.push(
      { key: 'aws.vpcCidr', text: spec.aws.vpcCidr },
      { key: 'aws.serviceCidr', text: spec.aws.serviceCidr },
    );
  }
  if (clouds.includes('gcp')) {
    ranges.push(
      { key: 'gcp.vpcCidr', text: spec.gcp.vpcCidr },
      { key: 'gcp.podCidr', text: spec.gcp.podCidr },
      { key: 'gcp.serviceCidr', text: spec.gcp.serviceCidr },
    );
  }
  if (clouds.includes('azure')) {
    ranges.push(
      { key: 'azure.vpcCidr', text: spec.azure.vpcCidr },
      { key: 'azure.serviceCidr', text: spec.azure.serviceCidr },
    );
    const vnet = parseCidr(spec.azure.vpcCidr);
    const nodes = parseCidr(spec.azure.nodeSubnetCidr);
    const gw = parseCidr(spec.azure.gatewaySubnetCidr);
    if (vnet && nodes && !cidrContains(vnet, nodes)) {
      issues.push({
        key: 'azure.nodeSubnetCidr',
        message: `${nodes.text} must lie inside azure.vpcCidr ${vnet.text}`,
      });
    }
    if (vnet && gw && !cidrContains(vnet, gw)) {
      issues.push({
        key: 'azure.gatewaySubnetCidr',
        message: `${gw.text} must lie inside azure.vpcCidr ${vnet.text}`,
      });
    }
    if (gw && gw.prefix > 27) {
      issues.push({
        key: 'azure.gatewaySubnetCidr',
        message: `${gw.text} is too small; Azure needs a /27 or larger GatewaySubnet`,
      });
    }
    if (nodes && gw && cidrsOverlap(nodes, gw)) {
      issues.push({
        key: 'azure.gatewaySubnetCidr',
        message: `${gw.text} overlaps azure.nodeSubnetCidr ${nodes.text}; pick a disjoint range inside the VNet`,
      });
    }
  }
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const a = parseCidr(ranges[i].text);
      const b = parseCidr(ranges[j].text);
      if (a && b && cidrsOverlap(a, b)) {
        issues.push({
          key: ranges[j].key,
          message: `${b.text} overlaps ${ranges[i].key} ${a.text}; every VPC, pod and service range is routed across the interconnect, so choose disjoint ranges (e.g. 10.10.0.0/16, 10.20.0.0/16, 10.30.0.0/16)`,
        });
      }
    }
  }

  // ASNs: one per cloud, all distinct (BGP drops routes whose AS path contains its own ASN).
  if (clouds.length > 1) {
    const asns = clouds.map((c) => ({ key: `${c}.asn`, asn: spec[c].asn }));
    for (let i = 0; i < asns.length; i++) {
      for (let j = i + 1; j < asns.length; j++) {
        if (asns[i].asn === asns[j].asn) {
          issues.push({
            key: asns[j].key,
            message: `ASN ${asns[j].asn} is also used by ${asns[i].key}; every cloud needs its own private ASN (e.g. aws 64512, gcp 64514, azure 65515)`,
          });
        }
      }
    }
    if (clouds.includes('azure')) {
      for (const c of clouds) {
        if (c !== 'azure' && AZURE_RESERVED_ASNS.includes(spec[c].asn)) {
          issues.push({
            key: `${c}.asn`,
            message: `ASN ${spec[c].asn} is reserved by Azure (${AZURE_RESERVED_ASNS.join(', ')}); choose another private ASN`,
          });
        }
      }
    }
  }

  // Node pools.
  for (const c of clouds) {
    const p = spec[c].nodePool;
    if (p.minNodes > p.maxNodes) {
      issues.push({
        key: `${c}.nodePool.minNodes`,
        message: `${p.minNodes} is above maxNodes ${p.maxNodes}; lower minNodes or raise maxNodes`,
      });
    }
    if (p.desiredNodes < p.minNodes || p.desiredNodes > p.maxNodes) {
      issues.push({
        key: `${c}.nodePool.desiredNodes`,
        message: `${p.desiredNodes} must lie between minNodes ${p.minNodes} and maxNodes ${p.maxNodes}`,
      });
    }
  }

  // Replicator ports: no clashes among themselves or with the Istio sidecar.
  const r = spec.replicator;
  const portKeys: { key: string; port: number }[] = [
    ...r.ingressPorts.map((p, i) => ({ key: `replicator.ingressPorts[${i}]`, port: p })),
    { key: 'replicator.replicationPort', port: r.replicationPort },
    // Worker i of `workers` binds replicationPort + i (replicator/workers.ts): each one must be free too.
    ...Array.from({ length: r.workers - 1 }, (_, i) => ({
      key: `replicator.workers (worker ${i + 1} replication port)`,
      port: r.replicationPort + i + 1,
    })),
    { key: 'replicator.metricsPort', port: r.metricsPort },
  ];
  if (r.replicationPort + r.workers - 1 > 65535) {
    issues.push({
      key: 'replicator.workers',
      message: `workers bind replicationPort..replicationPort+${r.workers - 1}, past 65535; lower replicator.replicationPort`,
    });
  }
  for (let i = 0; i < portKeys.length; i++) {
    for (let j = 0; j < i; j++) {
      if (portKeys[i].port === portKeys[j].port) {
        issues.push({
          key: portKeys[i].key,
          message: `port ${portKeys[i].port} clashes with ${portKeys[j].key}; give every ingress, replication and metrics port its own number`,
        });
        break;
      }
    }
    if (ISTIO_RESERVED_PORTS.includes(portKeys[i].port)) {
      issues.push({
        key: portKeys[i].key,
        message: `port ${portKeys[i].port} is used by the Istio sidecar (${ISTIO_RESERVED_PORTS.join(', ')}); pick another port`,
      });
    }
  }
  if (spec.etcd.clientPort === spec.etcd.peerPort) {
    issues.push({
      key: 'etcd.peerPort',
      message: `port ${spec.etcd.peerPort} clashes with etcd.clientPort; use e.g. 2379 for clients and 2380 for peers`,
    });
  }
  if (r.replicas > r.maxReplicas) {
    issues.push({
      key: 'replicator.replicas',
      message: `${r.replicas} is above replicator.maxReplicas ${r.maxReplicas}; raise maxReplicas`,
    });
  }

  // etcd layout.
  if (clouds.length > 0) {
    if (spec.etcd.layout) {
      for (const k of Object.keys(spec.etcd.layout)) {
        if (!isCloud(k))
          issues.push({
            key: `etcd.layout.${k}`,
            message: `unknown cloud "${k}"; use any of aws, gcp, azure`,
          });
        else if (!clouds.includes(k) && spec.etcd.layout[k] > 0) {
          issues.push({
            key: `etcd.layout.${k}`,
            message: `cloud "${k}" is not enabled; add it to clouds or remove it from etcd.layout`,
          });
        }
      }
    }
    const layout = etcdLayout(spec);
    const total = clouds.reduce((s, c) => s + layout[c], 0);
    const key = spec.etcd.layout ? 'etcd.layout' : 'etcd.members';
    if (total === 0) {
      issues.push({ key, message: 'etcd needs at least one member; use 3 (or 5)' });
    } else if (total % 2 === 0) {
      issues.push({
        key,
        message: `${total} members: an even size adds no fault tolerance over ${total - 1}; use 3 or 5`,
      });
    } else if (clouds.length === 1) {
      // A single-cloud stack cannot survive losing its only cloud anyway; three members survive one member.
      if (total < 3)
        issues.push({
          key,
          message: `${total} member(s) cannot survive losing a member; use 3 (single-cloud stacks keep all members in one cloud, the survive-a-cloud rule applies only to multi-cloud stacks)`,
        });
    } else {
      const breaking = cloudsBreakingQuorum(layout, clouds);
      if (breaking.length > 0 && clouds.length === 2 && !spec.etcd.allowQuorumLossOnCloudFailure) {
        issues.push({
          key,
          message: `with two clouds no etcd layout survives the loss of either cloud (losing ${breaking.join(' or ')} loses quorum); enable a third cloud (e.g. 3 members as 1/1/1), or set etcd.allowQuorumLossOnCloudFailure=true to accept that`,
        });
      } else if (breaking.length > 0 && clouds.length > 2) {
        const desc = clouds.map((c) => `${c}=${layout[c]}`).join(', ');
        issues.push({
          key,
          message: `layout ${desc} loses quorum (${quorum(total)} of ${total}) if ${breaking.join(' or ')} fails; no cloud may hold ${quorum(total)} or more members: use 3 as 1/1/1 or 5 as 2/2/1`,
        });
      }
    }
  }
  // Existing EKS cluster: its subnets lie in aws.vpcCidr (the range the other clouds route to).
  const ex = spec.aws.existingCluster;
  if (clouds.includes('aws') && ex) {
    const vpc = parseCidr(spec.aws.vpcCidr);
    ex.privateSubnets.forEach((sn, i) => {
      const c = parseCidr(sn.cidr);
      if (vpc && c && !cidrContains(vpc, c))
        issues.push({
          key: `aws.existingCluster.privateSubnets[${i}].cidr`,
          message: `${sn.cidr} is outside aws.vpcCidr ${vpc.text}; set aws.vpcCidr to the existing VPC's CIDR`,
        });
    });
  }

  // Alertmanager receivers: unique names, exactly one destination each.
  const seenReceivers = new Set<string>();
  spec.monitoring.alertReceivers.forEach((rc, i) => {
    const targets = [rc.webhookUrl, rc.slackApiUrl, rc.pagerdutyRoutingKey].filter((x) => x !== undefined);
    if (targets.length !== 1)
      issues.push({
        key: `monitoring.alertReceivers[${i}]`,
        message: 'give exactly one of webhookUrl, slackApiUrl (with slackChannel) or pagerdutyRoutingKey',
      });
    if (seenReceivers.has(rc.name))
      issues.push({ key: `monitoring.alertReceivers[${i}].name`, message: `"${rc.name}" is used twice` });
    seenReceivers.add(rc.name);
  });

  // Member replacement: names of planned members, and the rest must still hold quorum.
  if (clouds.length > 0 && spec.etcd.replaceMembers.length > 0) {
    const layout = etcdLayout(spec);
    const names: string[] = [];
    for (const c of clouds) for (let i = 0; i < layout[c]; i++) names.push(`etcd-${c}-${i}`);
    spec.etcd.replaceMembers.forEach((n, i) => {
      if (!names.includes(n))
        issues.push({
          key: `etcd.replaceMembers[${i}]`,
          message: `no etcd member is named "${n}"; members are ${names.join(', ')}`,
        });
    });
    const total = names.length;
    if (total - spec.etcd.replaceMembers.length < quorum(total))
      issues.push({
        key: 'etcd.replaceMembers',
        message: `replacing ${spec.etcd.replaceMembers.length} of ${total} members at once leaves fewer than quorum (${quorum(total)}); replace one member at a time (member add needs a live quorum)`,
      });
  }
  if (isLocalTarget(spec)) issues.push(...localIssues(spec));
  return issues;
}

/** Local target: distinct addresses, and no two listeners of this machine on one address:port. */
function localIssues(spec: StackConfig): StackConfigIssue[] {
  const issues: StackConfigIssue[] = [];
  const l = spec.local;
  if (spec.etcd.layout !== undefined || spec.etcd.members !== 3) {
    issues.push({
      key: spec.etcd.layout !== undefined ? 'etcd.layout' : 'etcd.members',
      message: 'the local target runs 3 etcd members, one per simulated cloud; remove this key',
    });
  }
  const seenAddr = new Map<string, string>();
  for (const c of CLOUDS) {
    const other = seenAddr.get(l.addresses[c]);
    if (other)
      issues.push({
        key: `local.addresses.${c}`,
        message: `${l.addresses[c]} is also local.addresses.${other}; give every simulated cloud its own loopback address (127.0.0.1, 127.0.0.2, 127.0.0.3)`,
      });
    seenAddr.set(l.addresses[c], c);
  }
  const taken = new Map<string, string>();
  const claim = (address: string, p: number, key: string): void => {
    const where = `${address}:${p}`;
    const other = taken.get(where);
    if (other && other !== key)
      issues.push({
        key,
        message: `port ${p} on ${address} clashes with ${other}; give every listener its own port`,
      });
    else taken.set(where, key);
  };
  const r = spec.replicator;
  for (const c of CLOUDS) {
    const a = l.addresses[c];
    r.ingressPorts.forEach((p, i) => claim(a, p, `replicator.ingressPorts[${i}]`));
    claim(a, r.replicationPort, 'replicator.replicationPort');
    claim(a, r.metricsPort, 'replicator.metricsPort');
    claim(a, spec.etcd.clientPort, 'etcd.clientPort');
    claim(a, spec.etcd.peerPort, 'etcd.peerPort');
    if (!l.backends[c]) claim(a, l.echoPort, 'local.echoPort');
  }
  if (spec.monitoring.enabled) claim(l.prometheus.address, l.prometheus.port, 'local.prometheus.port');
  return issues;
}

function zodIssues(error: z.ZodError): StackConfigIssue[] {
  return error.issues.map((i) => {
    const key =
      i.path
        .map((p, n) => (typeof p === 'number' ? `[${p}]` : `${n === 0 ? '' : '.'}${String(p)}`))
        .join('') || '(root)';
    let message = i.message;
    if (i.code === 'unrecognized_keys') {
      const unknown = i.keys;
      const isTop = i.path.length === 0;
      message =
        isTop && unknown.some((k) => !isCloud(k))
          ? `unknown key(s) ${unknown.join(', ')}; valid top-level keys are ${Object.keys(stackConfigSchema.shape).join(', ')}`
          : `unknown key(s) ${unknown.join(', ')}; remove them or check the spelling against docs/infra.md`;
    }
    return { key, message };
  });
}

/** Validates raw config (shape and cross-field rules); throws StackConfigError listing every issue. */
export function parseStackConfig(raw: unknown): StackConfig {
  const result = stackConfigSchema.safeParse(raw);
  if (!result.success) throw new StackConfigError(zodIssues(result.error));
  const issues = crossFieldIssues(result.data);
  if (issues.length > 0) throw new StackConfigError(issues);
  return result.data;
}

/** Top-level stack config keys (all in the `udpmesh:` namespace); objects are stored as JSON. */
export const CONFIG_KEYS = Object.keys(stackConfigSchema.shape) as (keyof StackConfig)[];
export const CONFIG_NAMESPACE = 'udpmesh';

/** Maps a spec to `pulumi config set` values: `udpmesh:<key>` -> JSON (or plain string) value. */
export function toPulumiConfig(
  spec: StackConfigInput | StackConfig,
): Record<string, { value: string; secret?: boolean }> {
  const out: Record<string, { value: string; secret?: boolean }> = {};
  for (const key of CONFIG_KEYS) {
    const v = (spec as Record<string, unknown>)[key];
    if (v === undefined) continue;
    out[`${CONFIG_NAMESPACE}:${key}`] = { value: typeof v === 'string' ? v : JSON.stringify(v) };
  }
  return out;
}

/** Reads the same keys toPulumiConfig writes and validates them. */
export function readStackConfig(cfg: pulumi.Config = new pulumi.Config(CONFIG_NAMESPACE)): StackConfig {
  const raw: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const text = cfg.get(key);
    if (text === undefined) continue;
    if (key === 'mesh' || key === 'namespace') {
      raw[key] = text;
      continue;
    }
    try {
      raw[key] = JSON.parse(text);
    } catch {
      throw new StackConfigError([
        {
          key,
          message: `udpmesh:${key} is not valid JSON; set it with pulumi config set --path or as a YAML object in the stack file`,
        },
      ]);
    }
  }
  if (raw.clouds === undefined) {
    throw new StackConfigError([
      { key: 'clouds', message: 'required; e.g. pulumi config set --path "udpmesh:clouds[0]" aws' },
    ]);
  }
  return parseStackConfig(raw);
}
