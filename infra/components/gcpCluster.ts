// GKE: custom-mode VPC network, a subnetwork with secondary ranges for pods and services (VPC-native),
// the cluster (default pool removed) and a managed node pool.
import * as gcp from '@pulumi/gcp';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../config/schema.ts';
import { meshPrivateRanges } from '../manifests/replicator.ts';
import type { ClusterHandle } from './types.ts';

export interface GcpClusterArgs {
  spec: StackConfig;
}

export class GcpCluster extends pulumi.ComponentResource implements ClusterHandle {
  readonly cloud = 'gcp' as const;
  readonly network: gcp.compute.Network;
  readonly subnetwork: gcp.compute.Subnetwork;
  readonly cluster: gcp.container.Cluster;
  readonly nodePool: gcp.container.NodePool;
  readonly clusterName: pulumi.Output<string>;
  readonly kubeconfig: pulumi.Output<string>;
  readonly provider: k8s.Provider;
  readonly gcpProvider: gcp.Provider;

  constructor(name: string, args: GcpClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:GcpCluster', name, {}, opts);
    const { spec } = args;
    const g = spec.gcp;
    this.gcpProvider = new gcp.Provider(
      `${name}-provider`,
      { project: g.project, region: g.region },
      { parent: this },
    );
    const p = { parent: this, provider: this.gcpProvider };
    this.network = new gcp.compute.Network(
      `${name}-network`,
      { name: `${spec.mesh}-gcp`, autoCreateSubnetworks: false, routingMode: 'GLOBAL' },
      p,
    );
    this.subnetwork = new gcp.compute.Subnetwork(
      `${name}-subnet`,
      {
        name: `${spec.mesh}-gcp-nodes`,
        network: this.network.id,
        region: g.region,
        ipCidrRange: g.vpcCidr,
        privateIpGoogleAccess: true,
        secondaryIpRanges: [
          { rangeName: 'pods', ipCidrRange: g.podCidr },
          { rangeName: 'services', ipCidrRange: g.serviceCidr },
        ],
      },
      p,
    );
    new gcp.compute.Firewall(
      `${name}-mesh-ingress`,
      {
        network: this.network.id,
        direction: 'INGRESS',
        sourceRanges: meshPrivateRanges(spec),
        allows: [{ protocol: 'tcp' }, { protocol: 'udp' }, { protocol: 'icmp' }],
        description: 'udpmesh interconnect (VPN) and intra-VPC traffic',
      },
      p,
    );
    this.cluster = new gcp.container.Cluster(
      `${name}-gke`,
      {
        name: `${spec.mesh}-gcp`,
        location: g.region,
        network: this.network.id,
        subnetwork: this.subnetwork.id,
        minMasterVersion: g.kubernetesVersion,
        removeDefaultNodePool: true,
        initialNodeCount: 1,
        networkingMode: 'VPC_NATIVE',
        ipAllocationPolicy: { clusterSecondaryRangeName: 'pods', servicesSecondaryRangeName: 'services' },
        releaseChannel: { channel: 'REGULAR' },
        workloadIdentityConfig: { workloadPool: `${g.project}.svc.id.goog` },
        deletionProtection: false,
      },
      p,
    );
    this.nodePool = new gcp.container.NodePool(
      `${name}-nodes`,
      {
        cluster: this.cluster.id,
        location: g.region,
        // Regional cluster: the count is per zone.
        initialNodeCount: g.nodePool.desiredNodes,
        autoscaling: { minNodeCount: g.nodePool.minNodes, maxNodeCount: g.nodePool.maxNodes },
        management: { autoRepair: true, autoUpgrade: true },
        nodeConfig: {
          machineType: g.nodePool.machineType,
          diskSizeGb: g.nodePool.diskSizeGb,
          oauthScopes: ['https://www.googleapis.com/auth/cloud-platform'],
          workloadMetadataConfig: { mode: 'GKE_METADATA' },
        },
      },
      p,
    );
    this.clusterName = this.cluster.name;
    this.kubeconfig = pulumi.secret(
      pulumi
        .all([this.cluster.name, this.cluster.endpoint, this.cluster.masterAuth])
        .apply(([n, endpoint, auth]) =>
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'Config',
            clusters: [
              {
                name: n,
                cluster: {
                  server: `https://${endpoint}`,
                  'certificate-authority-data': auth?.clusterCaCertificate,
                },
              },
            ],
            contexts: [{ name: n, context: { cluster: n, user: n } }],
            'current-context': n,
            users: [
              {
                name: n,
                user: {
                  exec: {
                    apiVersion: 'client.authentication.k8s.io/v1beta1',
                    command: 'gke-gcloud-auth-plugin',
                    provideClusterInfo: true,
                  },
                },
              },
            ],
          }),
        ),
    );
    this.provider = new k8s.Provider(
      `${name}-k8s`,
      { kubeconfig: this.kubeconfig, enableServerSideApply: true },
      { parent: this, dependsOn: [this.nodePool] },
    );
    this.registerOutputs({
      clusterName: this.clusterName,
      kubeconfig: this.kubeconfig,
      networkId: this.network.id,
    });
  }
}
