// The apply-readiness policy suite (rules.ts) over the resource graph of every supported combination of
// clouds, the example stacks and a few variants; two stacks of one organisation side by side; and the
// review table in docs/infra-review.md naming every rule.
import assert from 'node:assert/strict';
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
];

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
  });

  it('docs/infra-review.md lists every rule with its resource types', () => {
    const doc = readFileSync('docs/infra-review.md', 'utf8');
    for (const p of POLICIES) {
      assert.ok(doc.includes(`\`${p.name}\``), p.name);
    }
    assert.equal(new Set(POLICIES.map((p) => p.name)).size, POLICIES.length);
  });
});
