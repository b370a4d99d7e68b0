// AKS: resource group, VNet (node subnet + GatewaySubnet for the VPN gateway) and the managed cluster
// (Azure CNI: pods take node-subnet addresses, which the VPN routes to the other clouds). Pricing tier
// from config (Free has no uptime SLA), local accounts off (Entra ID + Azure RBAC; whoever runs Pulumi
// gets "Azure Kubernetes Service RBAC Cluster Admin" on the cluster to deploy), API server access
// restricted to configured ranges or private.
import * as azure from '@pulumi/azure-native';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../config/schema.ts';
import { hostAddress } from '../config/cidr.ts';
import type { ClusterAddons, ClusterHandle } from './types.ts';
import { NO_ADDONS } from './types.ts';

/** Built-in "Network Contributor" role. */
const NETWORK_CONTRIBUTOR = '4d97b98b-1d4f-4787-a291-c67834d212e7';
/** Built-in "Azure Kubernetes Service RBAC Cluster Admin" role. */
const AKS_RBAC_CLUSTER_ADMIN = 'b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b';

export interface AzureClusterArgs {
  spec: StackConfig;
}

export class AzureCluster extends pulumi.ComponentResource implements ClusterHandle {
  readonly cloud = 'azure' as const;
  readonly resourceGroup?: azure.resources.ResourceGroup;
  readonly vnet?: azure.network.VirtualNetwork;
  readonly gatewaySubnetId: pulumi.Output<string>;
  readonly cluster?: azure.containerservice.ManagedCluster;
  readonly clusterName: pulumi.Output<string>;
  readonly kubeconfig: pulumi.Output<string>;
  readonly provider: k8s.Provider;
  readonly addons: ClusterAddons = NO_ADDONS;
  /** What the interconnect attaches to: the resource group and the VNet's GatewaySubnet. */
  readonly net: {
    resourceGroupName: pulumi.Input<string>;
    location: string;
    gatewaySubnetId: pulumi.Input<string>;
  };

  constructor(name: string, args: AzureClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:AzureCluster', name, {}, opts);
    const { spec } = args;
    const z = spec.azure;
    const p = { parent: this };
    const existing = z.existingCluster;
    if (existing) {
      // An existing cluster: its kubeconfig, and the VNet's GatewaySubnet for the VPN gateway.
      this.clusterName = pulumi.output(existing.name);
      this.kubeconfig = pulumi.secret(existing.kubeconfig);
      this.gatewaySubnetId = pulumi.output(`${existing.vnetId}/subnets/GatewaySubnet`);
      this.provider = new k8s.Provider(
        `${name}-k8s`,
        { kubeconfig: this.kubeconfig, enableServerSideApply: true },
        { parent: this },
      );
      this.net = {
        resourceGroupName: existing.resourceGroupName,
        location: z.location,
        gatewaySubnetId: this.gatewaySubnetId,
      };
      this.registerOutputs({ clusterName: this.clusterName, kubeconfig: this.kubeconfig });
      return;
    }
    const resourceGroup = new azure.resources.ResourceGroup(
      `${name}-rg`,
      { resourceGroupName: `${spec.mesh}-azure`, location: z.location },
      p,
    );
    const nodeSubnetName = `${spec.mesh}-aks-nodes`;
    const vnet = new azure.network.VirtualNetwork(
      `${name}-vnet`,
      {
        resourceGroupName: resourceGroup.name,
        location: z.location,
        virtualNetworkName: `${spec.mesh}-azure`,
        addressSpace: { addressPrefixes: [z.vpcCidr] },
        subnets: [
          { name: nodeSubnetName, addressPrefix: z.nodeSubnetCidr },
          { name: 'GatewaySubnet', addressPrefix: z.gatewaySubnetCidr },
        ],
      },
      p,
    );
    const nodeSubnetId = pulumi.interpolate`${vnet.id}/subnets/${nodeSubnetName}`;
    this.gatewaySubnetId = pulumi.interpolate`${vnet.id}/subnets/GatewaySubnet`;
    this.resourceGroup = resourceGroup;
    this.vnet = vnet;
    this.net = {
      resourceGroupName: resourceGroup.name,
      location: z.location,
      gatewaySubnetId: this.gatewaySubnetId,
    };
    const cluster = new azure.containerservice.ManagedCluster(
      `${name}-aks`,
      {
        resourceName: `${spec.mesh}-azure`,
        resourceGroupName: resourceGroup.name,
        location: z.location,
        dnsPrefix: `${spec.mesh}-azure`,
        kubernetesVersion: z.kubernetesVersion,
        identity: { type: 'SystemAssigned' },
        enableRBAC: true,
        sku: { name: 'Base', tier: z.skuTier },
        disableLocalAccounts: true,
        aadProfile: { managed: true, enableAzureRBAC: true },
        apiServerAccessProfile: {
          enablePrivateCluster: z.privateApiServer,
          ...(z.apiServerAuthorizedCidrs.includes('0.0.0.0/0')
            ? {}
            : { authorizedIPRanges: z.apiServerAuthorizedCidrs }),
        },
        agentPoolProfiles: [
          {
            name: 'system',
            mode: 'System',
            vmSize: z.nodePool.machineType,
            osDiskSizeGB: z.nodePool.diskSizeGb,
            count: z.nodePool.desiredNodes,
            minCount: z.nodePool.minNodes,
            maxCount: z.nodePool.maxNodes,
            enableAutoScaling: true,
            vnetSubnetID: nodeSubnetId,
            availabilityZones: ['1', '2', '3'],
            osType: 'Linux',
          },
        ],
        networkProfile: {
          networkPlugin: 'azure',
          networkPolicy: 'azure',
          loadBalancerSku: 'standard',
          serviceCidr: z.serviceCidr,
          dnsServiceIP: hostAddress(z.serviceCidr, 10),
        },
      },
      p,
    );
    // The cluster identity creates the etcd internal load balancers in our own (BYO) VNet subnet.
    new azure.authorization.RoleAssignment(
      `${name}-aks-network-contributor`,
      {
        principalId: cluster.identity.apply((i) => i?.principalId ?? ''),
        principalType: 'ServicePrincipal',
        scope: vnet.id,
        roleDefinitionId: pulumi.interpolate`${resourceGroup.id.apply((id) => id.split('/resourceGroups/')[0])}/providers/Microsoft.Authorization/roleDefinitions/${NETWORK_CONTRIBUTOR}`,
      },
      p,
    );
    // Local accounts are off, so deploying needs an Azure RBAC role for the identity running Pulumi.
    const client = azure.authorization.getClientConfigOutput({ parent: this });
    const deployer = new azure.authorization.RoleAssignment(
      `${name}-aks-deployer`,
      {
        principalId: client.objectId,
        scope: cluster.id,
        roleDefinitionId: pulumi.interpolate`${resourceGroup.id.apply((id) => id.split('/resourceGroups/')[0])}/providers/Microsoft.Authorization/roleDefinitions/${AKS_RBAC_CLUSTER_ADMIN}`,
      },
      p,
    );
    this.cluster = cluster;
    this.clusterName = cluster.name;
    // Entra ID kubeconfig in exec format (kubelogin on PATH; `kubelogin convert-kubeconfig -l azurecli`
    // semantics come from KUBELOGIN env / az login).
    const creds = azure.containerservice.listManagedClusterUserCredentialsOutput(
      { resourceGroupName: resourceGroup.name, resourceName: cluster.name, format: 'exec' },
      { parent: this },
    );
    this.kubeconfig = pulumi.secret(
      creds.kubeconfigs.apply((k) => {
        const first = k?.[0]?.value;
        if (!first) throw new Error('AKS returned no kubeconfig');
        return Buffer.from(first, 'base64').toString('utf8');
      }),
    );
    this.provider = new k8s.Provider(
      `${name}-k8s`,
      { kubeconfig: this.kubeconfig, enableServerSideApply: true },
      { parent: this, dependsOn: [cluster, deployer] },
    );
    this.registerOutputs({
      clusterName: this.clusterName,
      kubeconfig: this.kubeconfig,
      vnetId: vnet.id,
    });
  }
}
