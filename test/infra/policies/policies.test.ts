// The apply-readiness policy suite (rules.ts) over the resource graph of every supported combination of
// clouds, the example stacks and a few variants; two stacks of one organisation side by side; and the
// review table in docs/infra-review.md naming every rule.
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { readFileSync } from 'node:fs';
import type { Cloud, StackConfig } from '../../../infra/config/schema.ts';
import { CLOUDS, parseStackConfig } from '../../../infra/config/schema.ts';
import { loadStackSpec } from '../../../infra/render.ts';
import { runProgram } from '../harness.ts';
import type { ResourceGraph } from './graph.ts';
import { buildGraph } from './graph.ts';
import { POLICIES, sharedScopeNames } from './rules.ts';

const subsets: Cloud[][] = [];
for (let mask = 1; mask < 8; mask++) subsets.push(CLOUDS.filter((_, i) => mask & (1 << i)));

const stacks: { name: string; spec: () => StackConfig }[] = [
  ...subsets.map((clouds) => ({
    name: clouds.join('+'),
    spec: () =>
      parseStackConfig({ clouds, etcd: clouds.length === 2 ? { allowQuorumLossOnCloudFailure: true } : {} }),
  })),
  { name: 'example dev', spec: () => loadStackSpec('dev') },
  { name: 'example prod', spec: () => loadStackSpec('prod') },
  {
    name: 'variant: 3 workers, exposed Grafana, restricted API servers',
    spec: () =>
      parseStackConfig({
        clouds: ['aws', 'gcp', 'azure'],
        mesh: 'acme-udp',
        replicator: { workers: 3 },
        monitoring: {
          exposeGrafana: true,
          alertReceivers: [{ name: 'ops', webhookUrl: 'https://hooks.example/am' }],
        },
        gcp: { apiServerAuthorizedCidrs: ['198.51.100.0/24'] },
        azure: { apiServerAuthorizedCidrs: ['198.51.100.0/24'], skuTier: 'Premium' },
        aws: { apiServerAuthorizedCidrs: ['198.51.100.0/24'] },
      }),
  },
  {
    name: 'variant: global DNS over three clouds',
    spec: () =>
      parseStackConfig({
        clouds: ['aws', 'gcp', 'azure'],
        aws: { globalDns: { hostedZoneId: 'Z0123456789ABC', name: 'udp.example.com' } },
      }),
  },
  {
    name: 'variant: global DNS without an AWS cluster',
    spec: () =>
      parseStackConfig({
        clouds: ['gcp', 'azure'],
        etcd: { allowQuorumLossOnCloudFailure: true },
        aws: { globalDns: { hostedZoneId: 'Z0123456789ABC', name: 'udp.example.com', ttl: 20 } },
      }),
  },
  { name: 'variant: existing clusters in every cloud', spec: () => existingSpec() },
];

/** Every cloud given as an existing cluster (kubeconfig + network parts). */
export function existingSpec(): StackConfig {
  return parseStackConfig({
    clouds: ['aws', 'gcp', 'azure'],
    aws: {
      vpcCidr: '10.40.0.0/16',
      existingCluster: {
        name: 'legacy-eks',
        kubeconfig: 'apiVersion: v1\nkind: Config\n# eks',
        vpcId: 'vpc-0abc',
        routeTableIds: ['rtb-01', 'rtb-02', 'rtb-03'],
        clusterSecurityGroupId: 'sg-0abc',
        privateSubnets: [
          { id: 'subnet-0a', cidr: '10.40.0.0/19', zone: 'us-east-1a' },
          { id: 'subnet-0b', cidr: '10.40.32.0/19', zone: 'us-east-1b' },
        ],
      },
    },
    gcp: {
      existingCluster: {
        name: 'legacy-gke',
        kubeconfig: 'apiVersion: v1\nkind: Config\n# gke',
        networkId: 'projects/udpmesh-dev/global/networks/legacy',
      },
    },
    azure: {
      existingCluster: {
        name: 'legacy-aks',
        kubeconfig: 'apiVersion: v1\nkind: Config\n# aks',
        resourceGroupName: 'legacy-rg',
        vnetId:
          '/subscriptions/s/resourceGroups/legacy-rg/providers/Microsoft.Network/virtualNetworks/legacy',
        nodeSubnetName: 'aks-nodes',
      },
    },
  });
}

describe('apply-readiness policies (mocks)', function () {
  this.timeout(180_000);
  for (const s of stacks) {
    describe(s.name, () => {
      let g: ResourceGraph;
      before(async () => {
        const spec = s.spec();
        g = await buildGraph(await runProgram(spec), spec);
      });
      for (const p of POLICIES) it(p.name, () => assert.deepEqual(p.check(g), [], p.constraint));
    });
  }

  it('two stacks of one organisation (dev and prod) use no name twice in a shared scope', async () => {
    const names = async (stack: string) => {
      const spec = loadStackSpec(stack);
      return sharedScopeNames(await buildGraph(await runProgram(spec), spec));
    };
    const dev = await names('dev');
    const prod = await names('prod');
    assert.ok(dev.length > 0 && prod.length > 0);
    assert.deepEqual(
      dev.filter((n) => prod.includes(n)),
      [],
    );
    // Two organisations with the same mesh name get different Azure DNS labels (global in a region).
    const a = parseStackConfig({ clouds: ['azure'] });
    const b = parseStackConfig({ clouds: ['azure'], azure: { dnsLabelSuffix: 'b7x9q2' } });
    const labels = async (spec: StackConfig) =>
      sharedScopeNames(await buildGraph(await runProgram(spec), spec)).filter((n) =>
        n.startsWith('azure:dns'),
      );
    assert.notDeepEqual(await labels(a), await labels(b));
  });

  it('existing clusters: no cluster is created, the kubeconfigs are used as secrets, the VPN attaches to the given networks', async () => {
    const spec = existingSpec();
    const run = await runProgram(spec);
    for (const t of [
      'aws:eks/cluster:Cluster',
      'aws:ec2/vpc:Vpc',
      'gcp:container/cluster:Cluster',
      'gcp:compute/network:Network',
      'azure-native:containerservice:ManagedCluster',
      'azure-native:network:VirtualNetwork',
    ])
      assert.equal(run.resources.filter((r) => r.type === t).length, 0, t);
    const providers = run.resources.filter((r) => r.type === 'pulumi:providers:kubernetes');
    assert.deepEqual(providers.map((p) => p.inputs.kubeconfig).sort(), [
      'apiVersion: v1\nkind: Config\n# aks',
      'apiVersion: v1\nkind: Config\n# eks',
      'apiVersion: v1\nkind: Config\n# gke',
    ]);
    for (const p of run.props.filter((x) => x.type === 'pulumi:providers:kubernetes'))
      assert.equal(await pulumi.isSecret(pulumi.output(p.props.kubeconfig)), true);
    const byType = (t: string) => run.resources.filter((r) => r.type === t);
    assert.equal(byType('aws:ec2/vpnGateway:VpnGateway')[0].inputs.vpcId, 'vpc-0abc');
    assert.deepEqual(
      byType('aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation')
        .map((r) => r.inputs.routeTableId)
        .sort(),
      ['rtb-01', 'rtb-02', 'rtb-03'],
    );
    assert.ok(
      byType('aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule').every(
        (r) => r.inputs.securityGroupId === 'sg-0abc',
      ),
    );
    assert.equal(
      byType('gcp:compute/haVpnGateway:HaVpnGateway')[0].inputs.network,
      'projects/udpmesh-dev/global/networks/legacy',
    );
    const gw = byType('azure-native:network:VirtualNetworkGateway')[0];
    assert.equal(gw.inputs.resourceGroupName, 'legacy-rg');
    assert.match(gw.inputs.ipConfigurations[0].subnet.id, /virtualNetworks\/legacy\/subnets\/GatewaySubnet$/);
    // etcd's internal load balancers use the given subnets, one member per zone.
    const etcdSvcs = byType('kubernetes:core/v1:Service').filter((s) =>
      s.inputs.metadata.name.startsWith('etcd-aws-'),
    );
    assert.ok(etcdSvcs.length > 0);
    for (const s of etcdSvcs)
      assert.match(
        s.inputs.metadata.annotations['service.beta.kubernetes.io/aws-load-balancer-subnets'],
        /^subnet-0[ab]$/,
      );
    assert.equal(run.outputs.awsClusterName, 'legacy-eks');
  });

  it('the rules are live: a known-bad graph violates them', async () => {
    const spec = parseStackConfig({ clouds: ['aws', 'gcp', 'azure'] });
    const g = await buildGraph(await runProgram(spec), spec);
    const byName = (n: string) => POLICIES.find((p) => p.name === n)!;
    const dep = g.ofType('kubernetes:apps/v1:Deployment').find((d) => d.custom)!;
    dep.inputs.spec.replicas = 2;
    assert.notDeepEqual(byName('hpa-owns-replicas').check(g), []);
    const conn = g.ofType('aws:ec2/vpnConnection:VpnConnection')[0];
    conn.inputs.tunnel1PresharedKey = '0abcdefghij';
    assert.notDeepEqual(byName('aws-vpn-psk-charset').check(g), []);
    const peer = g.ofType('gcp:compute/routerPeer:RouterPeer')[0];
    peer.inputs.peerAsn = 65000;
    assert.notDeepEqual(byName('bgp-both-ends-agree').check(g), []);
    const gke = g.ofType('gcp:container/cluster:Cluster')[0];
    gke.inputs.networkPolicy = { enabled: true };
    assert.notDeepEqual(byName('cluster-enforces-network-policy').check(g), []);
    const sts = g.ofType('kubernetes:apps/v1:StatefulSet')[0];
    sts.deps.clear();
    assert.notDeepEqual(byName('workloads-after-istiod').check(g), []);
    const dnsSpec = parseStackConfig({
      clouds: ['gcp'],
      aws: { globalDns: { hostedZoneId: 'Z0123456789ABC', name: 'udp.example.com' } },
    });
    const d = await buildGraph(await runProgram(dnsSpec), dnsSpec);
    assert.deepEqual(byName('route53-health-checked-weighted-records').check(d), []);
    d.ofType('aws:route53/record:Record')[0].inputs.records = ['gcp-lb.example'];
    assert.notDeepEqual(byName('route53-health-checked-weighted-records').check(d), []);
  });

  it('docs/infra-review.md lists every rule with its resource types', () => {
    const doc = readFileSync('docs/infra-review.md', 'utf8');
    for (const p of POLICIES) {
      assert.ok(doc.includes(`\`${p.name}\``), p.name);
    }
    assert.equal(new Set(POLICIES.map((p) => p.name)).size, POLICIES.length);
  });
});
