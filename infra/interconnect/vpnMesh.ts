// Site-to-site VPN with BGP between every pair of enabled clouds (what the original design did with
// Ansible). Per cloud one gateway: AWS virtual private gateway (+ route propagation), GCP HA VPN gateway
// + Cloud Router advertising VPC, pod and service ranges, Azure active-active VPN gateway with APIPA BGP
// addresses. Per pair the customer/external/local gateways, tunnels, BGP peers and a generated
// pre-shared key per tunnel (secret). Inside ranges and addresses come from plan.ts.
import * as aws from '@pulumi/aws';
import * as azure from '@pulumi/azure-native';
import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import type { StackConfig } from '../config/schema.ts';
import { enabledClouds } from '../config/schema.ts';
import type { AwsCluster } from '../components/awsCluster.ts';
import type { AzureCluster } from '../components/azureCluster.ts';
import type { GcpCluster } from '../components/gcpCluster.ts';
import type { TunnelPlan, VpnLinkPlan } from './plan.ts';
import { advertisedRanges, planInterconnect } from './plan.ts';

export interface InterconnectArgs {
  spec: StackConfig;
  aws?: AwsCluster;
  gcp?: GcpCluster;
  azure?: AzureCluster;
}

interface AwsSide {
  vgw: aws.ec2.VpnGateway;
  p: pulumi.CustomResourceOptions;
}
interface GcpSide {
  gateway: gcp.compute.HaVpnGateway;
  router: gcp.compute.Router;
  p: pulumi.CustomResourceOptions;
}
interface AzureSide {
  gateway: azure.network.VirtualNetworkGateway;
  /** Resource IDs of the gateway's two ipConfigurations (active-active instances 0 and 1). */
  ipConfigIds: pulumi.Output<string>[];
  publicIps: azure.network.PublicIPAddress[];
  cluster: AzureCluster;
  p: pulumi.CustomResourceOptions;
}

export class Interconnect extends pulumi.ComponentResource {
  readonly links: VpnLinkPlan[];
  /** Pre-shared keys by link and tunnel (secrets). */
  readonly sharedKeys: Record<string, pulumi.Output<string>[]> = {};

  constructor(name: string, args: InterconnectArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:Interconnect', name, {}, opts);
    const { spec } = args;
    this.links = planInterconnect(spec);
    const clouds = enabledClouds(spec);
    if (this.links.length === 0) {
      this.registerOutputs({ links: [] });
      return;
    }
    const sides: { aws?: AwsSide; gcp?: GcpSide; azure?: AzureSide } = {};
    if (clouds.includes('aws') && args.aws) sides.aws = this.awsSide(name, spec, args.aws);
    if (clouds.includes('gcp') && args.gcp) sides.gcp = this.gcpSide(name, spec, args.gcp);
    if (clouds.includes('azure') && args.azure) sides.azure = this.azureSide(name, spec, args.azure);

    for (const link of this.links) {
      // AWS accepts 8-64 letters, digits, '.' and '_' and rejects a key starting with '0'; a random draw
      // may start with a digit, so every key starts with a fixed letter (also valid for GCP and Azure).
      const keys = link.tunnels.map((t) =>
        pulumi.secret(
          pulumi.interpolate`k${
            new random.RandomPassword(
              `${name}-${link.name}-psk-${t.index}`,
              { length: 48, special: false },
              { parent: this },
            ).result
          }`,
        ),
      );
      this.sharedKeys[link.name] = keys;
      const pair = `${link.a}-${link.b}`;
      if (pair === 'aws-gcp') this.awsGcp(name, link, keys, sides.aws!, sides.gcp!);
      else if (pair === 'aws-azure') this.awsAzure(name, link, keys, sides.aws!, sides.azure!);
      else if (pair === 'gcp-azure') this.gcpAzure(name, link, keys, sides.gcp!, sides.azure!);
    }
    this.registerOutputs({ links: this.links.map((l) => l.name) });
  }

  private awsSide(name: string, spec: StackConfig, c: AwsCluster): AwsSide {
    const p = { parent: this, provider: c.awsProvider };
    const vgw = new aws.ec2.VpnGateway(
      `${name}-aws-vgw`,
      { vpcId: c.net.vpcId, amazonSideAsn: String(spec.aws.asn), tags: { Name: `${spec.mesh}-vgw` } },
      p,
    );
    // BGP-learned routes of the other clouds into the route tables (created: private and public).
    c.net.routeTableIds.forEach(
      (routeTableId, i) =>
        new aws.ec2.VpnGatewayRoutePropagation(
          `${name}-aws-prop-${i === 0 ? 'private' : i === 1 ? 'public' : `rt${i}`}`,
          { vpnGatewayId: vgw.id, routeTableId },
          p,
        ),
    );
    return { vgw, p };
  }

  private gcpSide(name: string, spec: StackConfig, c: GcpCluster): GcpSide {
    const p = { parent: this, provider: c.gcpProvider };
    const gateway = new gcp.compute.HaVpnGateway(
      `${name}-gcp-havpn`,
      { name: `${spec.mesh}-havpn`, region: spec.gcp.region, network: c.net.networkId },
      p,
    );
    const router = new gcp.compute.Router(
      `${name}-gcp-router`,
      {
        name: `${spec.mesh}-router`,
        region: spec.gcp.region,
        network: c.net.networkId,
        bgp: {
          asn: spec.gcp.asn,
          advertiseMode: 'CUSTOM',
          // Exactly the node subnet and its pod and service secondary ranges, nothing else.
          advertisedIpRanges: advertisedRanges(spec, 'gcp').map((range) => ({ range })),
        },
      },
      p,
    );
    return { gateway, router, p };
  }

  private azureSide(name: string, spec: StackConfig, c: AzureCluster): AzureSide {
    const p = { parent: this };
    const rg = c.net.resourceGroupName;
    const gwName = `${spec.mesh}-vpngw`;
    const publicIps = [0, 1].map(
      (i) =>
        new azure.network.PublicIPAddress(
          `${name}-azure-vpngw-ip${i}`,
          {
            resourceGroupName: rg,
            location: spec.azure.location,
            sku: { name: 'Standard' },
            publicIPAllocationMethod: 'Static',
            zones: ['1', '2', '3'],
          },
          p,
        ),
    );
    const client = azure.authorization.getClientConfigOutput({ parent: this });
    const ipConfigId = (i: number) =>
      pulumi.interpolate`/subscriptions/${client.subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Network/virtualNetworkGateways/${gwName}/ipConfigurations/ipconfig${i}`;
    // Instance i's APIPA addresses: the b-side (Azure) address of every tunnel terminating on it.
    const apipa = (instance: number) =>
      planInterconnect(spec)
        .filter((l) => l.b === 'azure')
        .flatMap((l) => l.tunnels.filter((t) => t.bInterface === instance).map((t) => t.bAddress));
    const gateway = new azure.network.VirtualNetworkGateway(
      `${name}-azure-vpngw`,
      {
        resourceGroupName: rg,
        location: spec.azure.location,
        virtualNetworkGatewayName: gwName,
        gatewayType: 'Vpn',
        vpnType: 'RouteBased',
        vpnGatewayGeneration: 'Generation2',
        sku: { name: 'VpnGw2AZ', tier: 'VpnGw2AZ' },
        activeActive: true,
        enableBgp: true,
        ipConfigurations: [0, 1].map((i) => ({
          name: `ipconfig${i}`,
          privateIPAllocationMethod: 'Dynamic',
          subnet: { id: c.net.gatewaySubnetId },
          publicIPAddress: { id: publicIps[i].id },
        })),
        bgpSettings: {
          asn: spec.azure.asn,
          bgpPeeringAddresses: [0, 1].map((i) => ({
            ipconfigurationId: ipConfigId(i),
            customBgpIpAddresses: apipa(i),
          })),
        },
      },
      p,
    );
    return { gateway, ipConfigIds: [ipConfigId(0), ipConfigId(1)], publicIps, cluster: c, p };
  }

  /** AWS <-> GCP: 2 customer gateways (one per HA VPN interface), 2 VPN connections = 4 tunnels. */
  private awsGcp(
    name: string,
    link: VpnLinkPlan,
    keys: pulumi.Output<string>[],
    a: AwsSide,
    g: GcpSide,
  ): void {
    const n = `${name}-${link.name}`;
    // The four AWS tunnel endpoints, in tunnel order.
    const outside = this.awsVpnConnections(
      n,
      link,
      keys,
      a,
      [0, 1].map((iface) => g.gateway.vpnInterfaces.apply((v) => v?.[iface]?.ipAddress ?? '')),
    );
    const ext = new gcp.compute.ExternalVpnGateway(
      `${n}-extgw`,
      {
        name: `${link.name}-aws`,
        redundancyType: 'FOUR_IPS_REDUNDANCY',
        interfaces: outside.map((ipAddress, id) => ({ id, ipAddress })),
      },
      g.p,
    );
    // AWS (side a) always takes the first host of each /30; GCP (side b) the second.
    link.tunnels.forEach((t) => this.gcpTunnel(n, t, keys[t.index], g, ext, link.aAsn, 'b'));
  }

  /**
   * The AWS half of a link to a gateway with two public addresses: a customer gateway per remote address
   * and a VPN connection (two tunnels) to each. Returns the four AWS tunnel endpoints in tunnel order.
   */
  private awsVpnConnections(
    n: string,
    link: VpnLinkPlan,
    keys: pulumi.Output<string>[],
    a: AwsSide,
    remoteAddresses: pulumi.Output<string>[],
  ): pulumi.Output<string>[] {
    const conns = remoteAddresses.map((ipAddress, iface) => {
      const cgw = new aws.ec2.CustomerGateway(
        `${n}-cgw${iface}`,
        { bgpAsn: String(link.bAsn), ipAddress, type: 'ipsec.1', tags: { Name: `${n}-cgw${iface}` } },
        a.p,
      );
      const [t1, t2] = link.tunnels.filter((t) => t.bInterface === iface);
      return new aws.ec2.VpnConnection(
        `${n}-vpn${iface}`,
        {
          vpnGatewayId: a.vgw.id,
          customerGatewayId: cgw.id,
          type: 'ipsec.1',
          staticRoutesOnly: false,
          tunnel1InsideCidr: t1.insideCidr,
          tunnel2InsideCidr: t2.insideCidr,
          tunnel1PresharedKey: keys[t1.index],
          tunnel2PresharedKey: keys[t2.index],
          tunnel1IkeVersions: ['ikev2'],
          tunnel2IkeVersions: ['ikev2'],
        },
        { ...a.p, additionalSecretOutputs: ['tunnel1PresharedKey', 'tunnel2PresharedKey'] },
      );
    });
    return conns.flatMap((c) => [c.tunnel1Address, c.tunnel2Address]);
  }

  /** AWS <-> Azure: 2 customer gateways (Azure instance public IPs), 2 VPN connections, 4 local network gateways + connections. */
  private awsAzure(
    name: string,
    link: VpnLinkPlan,
    keys: pulumi.Output<string>[],
    a: AwsSide,
    z: AzureSide,
  ): void {
    const n = `${name}-${link.name}`;
    const outside = this.awsVpnConnections(
      n,
      link,
      keys,
      a,
      [0, 1].map((inst) => z.publicIps[inst].ipAddress.apply((ip) => ip ?? '')),
    );
    link.tunnels.forEach((t) => this.azureConnection(n, t, keys[t.index], z, outside[t.index], link.aAsn));
  }

  /** GCP <-> Azure: external gateway with Azure's two public IPs, 2 tunnels, 2 local network gateways + connections. */
  private gcpAzure(
    name: string,
    link: VpnLinkPlan,
    keys: pulumi.Output<string>[],
    g: GcpSide,
    z: AzureSide,
  ): void {
    const n = `${name}-${link.name}`;
    const ext = new gcp.compute.ExternalVpnGateway(
      `${n}-extgw`,
      {
        name: `${link.name}-azure`,
        redundancyType: 'TWO_IPS_REDUNDANCY',
        interfaces: z.publicIps.map((ip, id) => ({ id, ipAddress: ip.ipAddress })),
      },
      g.p,
    );
    link.tunnels.forEach((t) => {
      this.gcpTunnel(n, t, keys[t.index], g, ext, link.bAsn, 'a');
      const gcpIp = g.gateway.vpnInterfaces.apply((v) => v?.[t.aInterface]?.ipAddress ?? '');
      this.azureConnection(n, t, keys[t.index], z, gcpIp, link.aAsn);
    });
  }

  /** One GCP HA VPN tunnel with its Cloud Router interface and BGP peer. `gcpSide` says which end of the /30 GCP holds. */
  private gcpTunnel(
    n: string,
    t: TunnelPlan,
    key: pulumi.Output<string>,
    g: GcpSide,
    ext: gcp.compute.ExternalVpnGateway,
    peerAsn: number,
    gcpSide: 'a' | 'b',
  ): void {
    const gcpIface = gcpSide === 'a' ? t.aInterface : t.bInterface;
    const gcpAddr = gcpSide === 'a' ? t.aAddress : t.bAddress;
    const peerAddr = gcpSide === 'a' ? t.bAddress : t.aAddress;
    const tunnel = new gcp.compute.VPNTunnel(
      `${n}-tunnel${t.index}`,
      {
        name: `${n.replace(/[^a-z0-9-]/g, '-')}-t${t.index}`.slice(0, 62),
        region: g.gateway.region,
        vpnGateway: g.gateway.id,
        vpnGatewayInterface: gcpIface,
        peerExternalGateway: ext.id,
        peerExternalGatewayInterface: t.index, // one external interface per tunnel
        router: g.router.id,
        ikeVersion: 2,
        sharedSecret: key,
      },
      { ...g.p, additionalSecretOutputs: ['sharedSecret'] },
    );
    const iface = new gcp.compute.RouterInterface(
      `${n}-if${t.index}`,
      { router: g.router.name, region: g.router.region, ipRange: `${gcpAddr}/30`, vpnTunnel: tunnel.name },
      g.p,
    );
    new gcp.compute.RouterPeer(
      `${n}-peer${t.index}`,
      {
        router: g.router.name,
        region: g.router.region,
        peerIpAddress: peerAddr,
        peerAsn,
        interface: iface.name,
        advertisedRoutePriority: 100,
      },
      g.p,
    );
  }

  /** One Azure local network gateway + BGP connection for a tunnel whose remote end is `remoteIp`. */
  private azureConnection(
    n: string,
    t: TunnelPlan,
    key: pulumi.Output<string>,
    z: AzureSide,
    remoteIp: pulumi.Input<string>,
    remoteAsn: number,
  ): void {
    const rg = z.cluster.net.resourceGroupName;
    const lng = new azure.network.LocalNetworkGateway(
      `${n}-lng${t.index}`,
      {
        resourceGroupName: rg,
        location: z.cluster.net.location,
        gatewayIpAddress: remoteIp,
        bgpSettings: { asn: remoteAsn, bgpPeeringAddress: t.aAddress },
      },
      z.p,
    );
    new azure.network.VirtualNetworkGatewayConnection(
      `${n}-conn${t.index}`,
      {
        resourceGroupName: rg,
        location: z.cluster.net.location,
        connectionType: 'IPsec',
        connectionProtocol: 'IKEv2',
        enableBgp: true,
        sharedKey: key,
        virtualNetworkGateway1: { id: z.gateway.id },
        localNetworkGateway2: { id: lng.id },
        gatewayCustomBgpIpAddresses: [
          {
            ipConfigurationId: z.ipConfigIds[t.bInterface],
            customBgpIpAddress: t.bAddress,
          },
        ],
      },
      { ...z.p, additionalSecretOutputs: ['sharedKey'] },
    );
  }
}
