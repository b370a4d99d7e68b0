// The stack outputs contract: flat, stable names (documented in docs/infra.md), a zod schema for them,
// and a typed helper consumers use to read them through a StackReference. Bump CONTRACT_VERSION on any
// incompatible change; adding outputs is compatible.
import * as pulumi from '@pulumi/pulumi';
import { z } from 'zod';
import type { Cloud } from './config/schema.ts';
import { CLOUDS } from './config/schema.ts';

export const CONTRACT_VERSION = '1';

/** Per-cloud output names: `${cloud}${Suffix}`, present only for enabled clouds. */
export const PER_CLOUD_OUTPUTS = ['ClusterName', 'Kubeconfig', 'UdpEndpoint'] as const;
/** Per-cloud outputs some stacks add: the replicator's metrics URL (local target). */
export const OPTIONAL_PER_CLOUD_OUTPUTS = ['MetricsUrl'] as const;
/** A local stack (clouds: [local]) has no Kubernetes, hence no kubeconfig. */
const LOCAL_PER_CLOUD_OUTPUTS = ['ClusterName', 'UdpEndpoint'] as const;
/** Outputs that are Pulumi secrets. */
export const SECRET_OUTPUTS = [...CLOUDS.map((c) => `${c}Kubeconfig`), 'grafanaAdminPassword'];

export function perCloudOutput(
  cloud: Cloud,
  suffix: (typeof PER_CLOUD_OUTPUTS)[number] | (typeof OPTIONAL_PER_CLOUD_OUTPUTS)[number],
): string {
  return `${cloud}${suffix}`;
}

export const udpmeshOutputsSchema = z.object({
  contractVersion: z.literal(CONTRACT_VERSION),
  /** Where the mesh runs: "local" for a clouds: [local] stack (absent on cloud stacks). */
  target: z.enum(['cloud', 'local']).optional(),
  mesh: z.string(),
  clouds: z.array(z.enum(CLOUDS)).min(1),
  udpPorts: z.array(z.number().int()),
  etcdClientEndpoints: z.array(z.string()),
  grafanaUrl: z.string().optional(),
  /** Prometheus with the udpmesh alert rules (local target). */
  prometheusUrl: z.string().optional(),
  /** Pid files, logs and data of a local stack's processes. */
  localStateDir: z.string().optional(),
  awsMetricsUrl: z.string().optional(),
  gcpMetricsUrl: z.string().optional(),
  azureMetricsUrl: z.string().optional(),
  /** Grafana's generated admin password (user `admin`), secret; present when monitoring is enabled. */
  grafanaAdminPassword: z.string().optional(),
  /** The global DNS name over every cloud's UDP endpoint (when udpmesh:aws.globalDns is set). */
  udpHostname: z.string().optional(),
  awsClusterName: z.string().optional(),
  awsKubeconfig: z.string().optional(),
  awsUdpEndpoint: z.string().optional(),
  gcpClusterName: z.string().optional(),
  gcpKubeconfig: z.string().optional(),
  gcpUdpEndpoint: z.string().optional(),
  azureClusterName: z.string().optional(),
  azureKubeconfig: z.string().optional(),
  azureUdpEndpoint: z.string().optional(),
});

export type UdpmeshOutputs = z.output<typeof udpmeshOutputsSchema>;
/** The program's return value: the same names, as Outputs. */
export type UdpmeshProgramOutputs = {
  [K in keyof UdpmeshOutputs]: pulumi.Input<NonNullable<UdpmeshOutputs[K]>> | undefined;
};

/** Names every stack has, whatever clouds are enabled. */
export const REQUIRED_OUTPUTS = [
  'contractVersion',
  'mesh',
  'clouds',
  'udpPorts',
  'etcdClientEndpoints',
] as const;

/** Validates a plain outputs object against the contract (throws with the offending names). */
export function parseUdpmeshOutputs(raw: unknown): UdpmeshOutputs {
  const r = udpmeshOutputsSchema.safeParse(raw);
  if (!r.success) {
    throw new Error(
      `stack outputs do not match udpmesh contract v${CONTRACT_VERSION}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const required = r.data.target === 'local' ? LOCAL_PER_CLOUD_OUTPUTS : PER_CLOUD_OUTPUTS;
  for (const cloud of r.data.clouds) {
    for (const suffix of required) {
      if (r.data[perCloudOutput(cloud, suffix) as keyof UdpmeshOutputs] === undefined) {
        throw new Error(
          `stack outputs do not match udpmesh contract v${CONTRACT_VERSION}: ${perCloudOutput(cloud, suffix)} missing for enabled cloud ${cloud}`,
        );
      }
    }
  }
  return r.data;
}

/**
 * Reads a udpmesh stack's outputs (e.g. "acme/udpmesh/prod") as one typed, validated Output.
 * Kubeconfigs stay secret.
 */
export function udpmeshStackOutputs(
  stackName: string,
  opts?: pulumi.CustomResourceOptions,
): pulumi.Output<UdpmeshOutputs> {
  const ref = new pulumi.StackReference(stackName, { name: stackName }, opts);
  const names = [
    ...REQUIRED_OUTPUTS,
    'target',
    'grafanaUrl',
    'grafanaAdminPassword',
    'udpHostname',
    'prometheusUrl',
    'localStateDir',
    ...CLOUDS.flatMap((c) =>
      [...PER_CLOUD_OUTPUTS, ...OPTIONAL_PER_CLOUD_OUTPUTS].map((s) => perCloudOutput(c, s)),
    ),
  ];
  const values = Object.fromEntries(names.map((n) => [n, ref.getOutput(n)]));
  const combined = pulumi.all(values).apply((v) => {
    const defined = Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined && x !== null));
    return parseUdpmeshOutputs(defined);
  });
  return pulumi.secret(combined).apply((o) => o);
}

/** One cloud's endpoint view, for consumers that only need where to send datagrams. */
export function udpEndpoints(o: UdpmeshOutputs): { cloud: Cloud; address: string; ports: number[] }[] {
  return o.clouds.map((cloud) => ({
    cloud,
    address: o[perCloudOutput(cloud, 'UdpEndpoint') as 'awsUdpEndpoint'] ?? '',
    ports: o.udpPorts,
  }));
}
