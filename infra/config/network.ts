// Pure network layout derived from the stack config: AWS subnets per AZ, node subnets, and the fixed
// private addresses of the etcd members' internal load balancers (known before any cloud call, so
// etcd's initial cluster, TLS SANs and rendered YAML need no cloud lookups).
import type { Cloud, StackConfig } from './schema.ts';
import { enabledClouds, etcdLayout, etcdTimeouts } from './schema.ts';
import { intToIp, parseCidr, subnet } from './cidr.ts';

export interface AwsSubnetPlan {
  name: string;
  az: string;
  cidr: string;
  public: boolean;
}

export function awsAvailabilityZones(spec: StackConfig): string[] {
  return spec.aws.availabilityZones ?? ['a', 'b', 'c'].map((s) => `${spec.aws.region}${s}`);
}

/** Private subnets (nodes, pods, internal LBs) take /+4 blocks 0..n-1; public ones (NAT, NLBs) blocks 8..8+n-1. */
export function awsSubnets(spec: StackConfig): AwsSubnetPlan[] {
  const vpc = parseCidr(spec.aws.vpcCidr);
  if (!vpc) throw new Error(`invalid aws.vpcCidr ${spec.aws.vpcCidr}`);
  const prefix = Math.min(vpc.prefix + 4, 28);
  const zones = awsAvailabilityZones(spec);
  return [
    ...zones.map((az, i) => ({
      name: `${spec.mesh}-aws-private-${i}`,
      az,
      cidr: subnet(spec.aws.vpcCidr, prefix, i),
      public: false,
    })),
    ...zones.map((az, i) => ({
      name: `${spec.mesh}-aws-public-${i}`,
      az,
      cidr: subnet(spec.aws.vpcCidr, prefix, 8 + i),
      public: true,
    })),
  ];
}

/** The subnet in which a cloud's internal load balancers (etcd) get their fixed addresses. */
export function internalLbSubnet(spec: StackConfig, cloud: Cloud): string {
  switch (cloud) {
    case 'aws':
      return awsEtcdSubnet(spec, 0).cidr;
    case 'gcp':
      return spec.gcp.vpcCidr;
    case 'azure':
      return spec.azure.nodeSubnetCidr;
  }
}

/**
 * Where an AWS etcd member's internal NLB lives: member i takes private subnet i mod zones. An NLB with a
 * fixed private address sits in exactly one subnet (one address per subnet), and an IP target in a zone
 * the NLB does not span is never used, so the member's pod is pinned to that subnet's zone too. Spreading
 * members over subnets puts members of one cloud in different zones.
 */
export function awsEtcdSubnet(spec: StackConfig, index: number): AwsSubnetPlan {
  const existing = spec.aws.existingCluster?.privateSubnets;
  const privates = existing
    ? existing.map((s) => ({ name: s.id, az: s.zone, cidr: s.cidr, public: false }))
    : awsSubnets(spec).filter((s) => !s.public);
  return privates[index % privates.length];
}

export interface EtcdMemberPlan {
  /** etcd member name, also the StatefulSet and Service name: etcd-<cloud>-<i>. */
  name: string;
  cloud: Cloud;
  index: number;
  /** Fixed private address of the member's internal load balancer, reachable over the interconnect. */
  address: string;
  peerUrl: string;
  clientUrl: string;
  /** AWS only: the private subnet (by Name tag) of the member's NLB and the zone its pod must run in. */
  subnetName?: string;
  zone?: string;
}

export function etcdMembers(spec: StackConfig): EtcdMemberPlan[] {
  const layout = etcdLayout(spec);
  const out: EtcdMemberPlan[] = [];
  for (const cloud of enabledClouds(spec)) {
    const sub = parseCidr(internalLbSubnet(spec, cloud));
    if (!sub) throw new Error(`invalid subnet for ${cloud}`);
    for (let index = 0; index < layout[cloud]; index++) {
      let address = intToIp(sub.end - 10 - index);
      let placement: { subnetName?: string; zone?: string } = {};
      if (cloud === 'aws') {
        const s = awsEtcdSubnet(spec, index);
        const zones = spec.aws.existingCluster?.privateSubnets.length ?? awsAvailabilityZones(spec).length;
        address = intToIp(parseCidr(s.cidr)!.end - 10 - Math.floor(index / zones));
        placement = { subnetName: s.name, zone: s.az };
      }
      out.push({
        name: `etcd-${cloud}-${index}`,
        cloud,
        index,
        address,
        peerUrl: `https://${address}:${spec.etcd.peerPort}`,
        clientUrl: `https://${address}:${spec.etcd.clientPort}`,
        ...placement,
      });
    }
  }
  return out;
}

export function etcdInitialCluster(spec: StackConfig): string {
  return etcdMembers(spec)
    .map((m) => `${m.name}=${m.peerUrl}`)
    .join(',');
}

export { etcdTimeouts };
