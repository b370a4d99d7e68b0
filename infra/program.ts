// The udpmesh Pulumi program as a function, so it can run as a local program (infra/index.ts) or as an
// Automation API inline program. Returns the documented outputs (infra/outputs.ts).
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import type { Cloud, StackConfig } from './config/schema.ts';
import { enabledClouds, isLocalTarget, readStackConfig } from './config/schema.ts';
import { etcdMembers } from './config/network.ts';
import { AwsCluster } from './components/awsCluster.ts';
import { AzureCluster } from './components/azureCluster.ts';
import { ClusterWorkloads } from './components/clusterWorkloads.ts';
import { EtcdPki } from './components/etcdPki.ts';
import { GcpCluster } from './components/gcpCluster.ts';
import { GlobalDns } from './components/globalDns.ts';
import type { ClusterHandle } from './components/types.ts';
import { Interconnect } from './interconnect/vpnMesh.ts';
import { LocalMesh } from './local/localMesh.ts';
import { localPlan } from './local/plan.ts';
import { localPreflight } from './local/preflight.ts';
import type { UdpmeshProgramOutputs } from './outputs.ts';
import { CONTRACT_VERSION, perCloudOutput } from './outputs.ts';

export interface UdpmeshProgramOptions {
  /** Use this spec instead of reading the stack config (tests, automation). */
  spec?: StackConfig;
  /** Legacy SDK-side transformations applied to every resource (tests use them to inspect inputs). */
  transformations?: pulumi.ResourceTransformation[];
}

/** Root component: every resource of the estate is its descendant. */
export class UdpmeshEstate extends pulumi.ComponentResource {
  readonly outputs: UdpmeshProgramOutputs;

  constructor(name: string, spec: StackConfig, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:Estate', name, {}, opts);
    const clouds = enabledClouds(spec);
    const p = { parent: this };
    const clusters: Partial<{ aws: AwsCluster; gcp: GcpCluster; azure: AzureCluster }> = {};
    if (clouds.includes('aws')) clusters.aws = new AwsCluster('aws', { spec }, p);
    if (clouds.includes('gcp')) clusters.gcp = new GcpCluster('gcp', { spec }, p);
    if (clouds.includes('azure')) clusters.azure = new AzureCluster('azure', { spec }, p);
    const interconnect = new Interconnect('interconnect', { spec, ...clusters }, p);

    const clusterKey = pulumi.secret(
      new random.RandomPassword('cluster-key', { length: 64, special: false }, p).result,
    );
    const pki = new EtcdPki('etcd-pki', { spec }, p);
    const workloads: Partial<Record<Cloud, ClusterWorkloads>> = {};
    for (const cloud of clouds) {
      const handle = clusters[cloud] as ClusterHandle;
      const members = Object.fromEntries(
        Object.entries(pki.members).filter(([n]) =>
          etcdMembers(spec).some((m) => m.name === n && m.cloud === cloud),
        ),
      );
      workloads[cloud] = new ClusterWorkloads(
        `${cloud}-workloads`,
        {
          spec,
          cloud,
          provider: handle.provider,
          secrets: { clusterKey, etcdCaCert: pki.caCert, etcdMembers: members, etcdClient: pki.client },
          addons: handle.addons,
        },
        // Cross-cloud etcd peers and replication need the VPN up first.
        { parent: this, dependsOn: [interconnect] },
      );
    }

    const dns = spec.aws.globalDns
      ? new GlobalDns(
          'global-dns',
          {
            spec,
            endpoints: Object.fromEntries(clouds.map((c) => [c, workloads[c]!.udpEndpoint])),
            awsProvider: clusters.aws?.awsProvider,
          },
          p,
        )
      : undefined;

    const out: Record<string, unknown> = {
      contractVersion: CONTRACT_VERSION,
      mesh: spec.mesh,
      clouds,
      udpPorts: spec.replicator.ingressPorts,
      etcdClientEndpoints: etcdMembers(spec).map((m) => m.clientUrl),
    };
    const firstMonitoring = clouds.map((c) => workloads[c]?.monitoring).find((m) => m !== undefined);
    if (firstMonitoring) {
      out.grafanaUrl = firstMonitoring.grafanaUrl;
      out.grafanaAdminPassword = pulumi.secret(firstMonitoring.grafanaAdminPassword);
    }
    for (const cloud of clouds) {
      const handle = clusters[cloud] as ClusterHandle;
      out[perCloudOutput(cloud, 'ClusterName')] = handle.clusterName;
      out[perCloudOutput(cloud, 'Kubeconfig')] = pulumi.secret(handle.kubeconfig);
      out[perCloudOutput(cloud, 'UdpEndpoint')] = workloads[cloud]!.udpEndpoint;
    }
    if (dns) out.udpHostname = dns.hostname;
    this.outputs = out as UdpmeshProgramOutputs;
    this.registerOutputs(this.outputs);
  }
}

export async function udpmeshProgram(options: UdpmeshProgramOptions = {}): Promise<UdpmeshProgramOutputs> {
  const spec = options.spec ?? readStackConfig();
  // One line in every preview/up: the config passed validation and the program is registering the estate
  // (the real-engine tests look for it to tell program errors from absent provider plugins).
  void pulumi.log.info(
    `udpmesh: stack config valid; clouds: ${(isLocalTarget(spec) ? ['local'] : enabledClouds(spec)).join(', ')}`,
  );
  if (isLocalTarget(spec)) {
    // clouds: [local]: the mesh as processes on this machine (infra/local), same config and outputs.
    const plan = localPlan(spec, pulumi.getProject(), pulumi.getStack());
    await localPreflight(plan);
    return new LocalMesh(spec.mesh, { spec, plan }, { transformations: options.transformations }).outputs;
  }
  const estate = new UdpmeshEstate(spec.mesh, spec, { transformations: options.transformations });
  return estate.outputs;
}
