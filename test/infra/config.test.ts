import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import fc from 'fast-check';
import type { Cloud } from '../../infra/config/schema.ts';
import { cloudsBreakingQuorum, etcdLayout, etcdTimeouts, quorum } from '../../infra/config/schema.ts';
import {
  parseStackConfig,
  readStackConfig,
  StackConfigError,
  toPulumiConfig,
} from '../../infra/config/schema.ts';

function issuesOf(raw: unknown): { key: string; message: string }[] {
  try {
    parseStackConfig(raw);
  } catch (e) {
    assert.ok(e instanceof StackConfigError, String(e));
    return e.issues;
  }
  assert.fail('expected StackConfigError');
}

describe('stack config validation', () => {
  const cases: [string, unknown, string, RegExp][] = [
    [
      'unknown cloud',
      { clouds: ['aws', 'oracle'] },
      'clouds[1]',
      /unknown cloud "oracle"; use any of aws, gcp, azure/,
    ],
    ['no cloud', { clouds: [] }, 'clouds', /at least one cloud/],
    [
      'overlapping CIDRs',
      { clouds: ['aws', 'gcp', 'azure'], gcp: { vpcCidr: '10.10.128.0/17' } },
      'gcp.vpcCidr',
      /overlaps aws.vpcCidr 10.10.0.0\/16; .*disjoint/,
    ],
    [
      'duplicate ASNs',
      { clouds: ['aws', 'gcp', 'azure'], gcp: { asn: 64512 } },
      'gcp.asn',
      /ASN 64512 is also used by aws.asn; every cloud needs its own private ASN/,
    ],
    ['public ASN', { clouds: ['aws'], aws: { asn: 7224 } }, 'aws.asn', /private ASN/],
    [
      'etcd majority in one cloud',
      { clouds: ['aws', 'gcp', 'azure'], etcd: { layout: { aws: 3, gcp: 1, azure: 1 } } },
      'etcd.layout',
      /loses quorum \(3 of 5\) if aws fails; .*2\/2\/1/,
    ],
    [
      'two clouds without opt-in',
      { clouds: ['aws', 'azure'] },
      'etcd.members',
      /with two clouds no etcd layout survives.*allowQuorumLossOnCloudFailure/,
    ],
    [
      'even etcd size',
      { clouds: ['aws', 'gcp', 'azure'], etcd: { members: 4 } },
      'etcd.members',
      /even size adds no fault tolerance/,
    ],
    [
      'single-cloud etcd of one',
      { clouds: ['gcp'], etcd: { members: 1 } },
      'etcd.members',
      /use 3 \(single-cloud stacks.*only to multi-cloud stacks\)/,
    ],
    [
      'etcd in a disabled cloud',
      { clouds: ['aws', 'gcp', 'azure'], etcd: { layout: { aws: 1, gcp: 1, oracle: 1 } } },
      'etcd.layout.oracle',
      /unknown cloud "oracle"/,
    ],
    [
      'port clash',
      { clouds: ['aws'], replicator: { ingressPorts: [7001, 9100] } },
      'replicator.metricsPort',
      /port 9100 clashes with replicator.ingressPorts\[1\]/,
    ],
    [
      'istio port',
      { clouds: ['aws'], replicator: { ingressPorts: [15001] } },
      'replicator.ingressPorts[0]',
      /used by the Istio sidecar/,
    ],
    [
      'unknown key',
      { clouds: ['aws'], oracle: {} },
      '(root)',
      /unknown key\(s\) oracle; valid top-level keys are/,
    ],
    [
      'bad CIDR',
      { clouds: ['aws'], aws: { vpcCidr: '10.10.0.1/16' } },
      'aws.vpcCidr',
      /IPv4 CIDR with no host bits/,
    ],
    [
      'node pool bounds',
      { clouds: ['aws'], aws: { nodePool: { minNodes: 5, maxNodes: 3, desiredNodes: 4 } } },
      'aws.nodePool.minNodes',
      /above maxNodes/,
    ],
    [
      'azure gateway subnet outside vnet',
      { clouds: ['azure'], azure: { gatewaySubnetCidr: '10.99.0.0/27' } },
      'azure.gatewaySubnetCidr',
      /must lie inside azure.vpcCidr/,
    ],
  ];
  for (const [what, raw, key, re] of cases) {
    it(`rejects ${what} naming ${key}`, () => {
      const issues = issuesOf(raw);
      const hit = issues.find((i) => i.key === key);
      assert.ok(hit, `no issue for ${key}: ${JSON.stringify(issues)}`);
      assert.match(hit.message, re);
      assert.match(new StackConfigError(issues).message, new RegExp(`${key.replace(/[[\]().]/g, '\\$&')}: `));
    });
  }

  it('accepts the defaults for single- and three-cloud stacks and 5 members as 2/2/1', () => {
    assert.equal(parseStackConfig({ clouds: ['aws'] }).etcd.members, 3);
    parseStackConfig({ clouds: ['aws', 'gcp', 'azure'] });
    parseStackConfig({ clouds: ['aws', 'gcp', 'azure'], etcd: { members: 5 } });
    parseStackConfig({ clouds: ['aws', 'gcp'], etcd: { allowQuorumLossOnCloudFailure: true } });
  });

  it('round-trips through Pulumi config keys', () => {
    const spec = parseStackConfig({
      clouds: ['gcp', 'azure', 'aws'],
      mesh: 'acme',
      replicator: { replicas: 3 },
    });
    const cfg = toPulumiConfig(spec);
    assert.ok(Object.keys(cfg).every((k) => k.startsWith('udpmesh:')));
    pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(cfg).map(([k, v]) => [k, v.value])));
    try {
      assert.deepEqual(readStackConfig(new pulumi.Config('udpmesh')), spec);
    } finally {
      pulumi.runtime.setAllConfig({});
    }
  });

  describe('properties', () => {
    const all: Cloud[] = ['aws', 'gcp', 'azure'];

    it('accepts an explicit 3-cloud etcd layout exactly when it is odd and no cloud holds a quorum', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 5 }),
          fc.integer({ min: 0, max: 5 }),
          fc.integer({ min: 0, max: 5 }),
          (a, g, z) => {
            const total = a + g + z;
            // Brute force: remove each cloud, count survivors.
            const survives =
              total > 0 && total % 2 === 1 && [a, g, z].every((n) => total - n >= Math.floor(total / 2) + 1);
            let ok = true;
            try {
              parseStackConfig({ clouds: all, etcd: { layout: { aws: a, gcp: g, azure: z } } });
            } catch {
              ok = false;
            }
            return ok === survives;
          },
        ),
      );
    });

    it('spreads any odd member count over three clouds so that any one cloud can be lost', () => {
      fc.assert(
        fc.property(fc.constantFrom(3, 5, 7, 9), (members) => {
          const spec = parseStackConfig({ clouds: all, etcd: { members } });
          const layout = etcdLayout(spec);
          return (
            cloudsBreakingQuorum(layout, all).length === 0 &&
            all.every((c) => members - layout[c] >= quorum(members))
          );
        }),
      );
    });

    it('rejects two VPC ranges exactly when they share an address', () => {
      const cidr = fc
        .tuple(
          fc.integer({ min: 0, max: 15 }),
          fc.integer({ min: 0, max: 255 }),
          fc.integer({ min: 16, max: 24 }),
        )
        .map(([b, c, prefix]) => {
          const block = 2 ** (24 - prefix); // size in /24 units
          const third = Math.floor(c / block) * block;
          return {
            text: `10.${b}.${third}.0/${prefix}`,
            blocks: new Set(Array.from({ length: block }, (_, i) => b * 256 + third + i)),
          };
        });
      fc.assert(
        fc.property(cidr, cidr, (x, y) => {
          const shared = [...x.blocks].some((n) => y.blocks.has(n));
          let rejected = false;
          try {
            parseStackConfig({
              clouds: ['aws', 'gcp'],
              etcd: { allowQuorumLossOnCloudFailure: true },
              aws: { vpcCidr: x.text, serviceCidr: '172.20.0.0/16' },
              gcp: { vpcCidr: y.text, podCidr: '172.21.0.0/16', serviceCidr: '172.22.0.0/20' },
            });
          } catch (e) {
            rejected = e instanceof StackConfigError && e.issues.some((i) => i.key === 'gcp.vpcCidr');
          }
          return rejected === shared;
        }),
      );
    });

    it('derives etcd timeouts from the RTT per the tuning guide', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 2000 }), (rtt) => {
          const { heartbeatMs, electionMs } = etcdTimeouts(rtt);
          return (
            heartbeatMs >= rtt &&
            electionMs >= Math.min(50_000, 10 * rtt) &&
            electionMs >= 5 * heartbeatMs &&
            electionMs <= 50_000
          );
        }),
      );
    });
  });
});
