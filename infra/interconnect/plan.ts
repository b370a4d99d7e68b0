// Pure plan of the cross-cloud interconnect: which VPN links exist, their tunnels, APIPA inside
// ranges and BGP addresses. The component (vpnMesh.ts) turns this into provider resources; tests check
// the invariants (one link set per pair, unique ASNs, disjoint inside ranges) on this plan and on the
// registered resources.
import type { Cloud, StackConfig } from '../config/schema.ts';
import { enabledClouds } from '../config/schema.ts';
import { hostAddress } from '../config/cidr.ts';

export interface TunnelPlan {
  /** 0-based tunnel index within the link. */
  index: number;
  /** /30 inside range (APIPA 169.254.0.0/16). */
  insideCidr: string;
  /** BGP address of side a (the first cloud of the pair) = first host of the /30. */
  aAddress: string;
  /** BGP address of side b = second host of the /30. */
  bAddress: string;
  /** Which HA interface / active-active instance terminates the tunnel on each side. */
  aInterface: number;
  bInterface: number;
}

export interface VpnLinkPlan {
  name: string; // e.g. aws-gcp
  a: Cloud;
  b: Cloud;
  aAsn: number;
  bAsn: number;
  tunnels: TunnelPlan[];
}

/** Cloud routes each cloud advertises over BGP (VPC/VNet, pod and service ranges). */
export function advertisedRanges(spec: StackConfig, cloud: Cloud): string[] {
  switch (cloud) {
    case 'aws':
      return [spec.aws.vpcCidr, spec.aws.serviceCidr];
    case 'gcp':
      return [spec.gcp.vpcCidr, spec.gcp.podCidr, spec.gcp.serviceCidr];
    case 'azure':
      return [spec.azure.vpcCidr, spec.azure.serviceCidr];
  }
}

// Inside ranges. Azure only accepts custom BGP (APIPA) addresses in 169.254.21.0-169.254.22.255, and
// an active-active gateway's instance 0 / 1 each hold their own list, so links touching Azure take
// instance-0 tunnels from 169.254.21.x and instance-1 tunnels from 169.254.22.x. AWS reserves
// 169.254.0.0/30-169.254.5.0/30 and 169.254.169.252/30, which none of these touch.
const INSIDE: Record<string, { cidr: string; aInterface: number; bInterface: number }[]> = {
  // AWS connection 0 -> GCP HA VPN interface 0 (2 tunnels), connection 1 -> interface 1 (2 tunnels).
  'aws-gcp': [
    { cidr: '169.254.10.0/30', aInterface: 0, bInterface: 0 },
    { cidr: '169.254.10.4/30', aInterface: 0, bInterface: 0 },
    { cidr: '169.254.10.8/30', aInterface: 1, bInterface: 1 },
    { cidr: '169.254.10.12/30', aInterface: 1, bInterface: 1 },
  ],
  // AWS connection 0 -> Azure instance 0, connection 1 -> Azure instance 1.
  'aws-azure': [
    { cidr: '169.254.21.0/30', aInterface: 0, bInterface: 0 },
    { cidr: '169.254.21.4/30', aInterface: 0, bInterface: 0 },
    { cidr: '169.254.22.0/30', aInterface: 1, bInterface: 1 },
    { cidr: '169.254.22.4/30', aInterface: 1, bInterface: 1 },
  ],
  // GCP HA VPN interface i -> Azure instance i (TWO_IPS_REDUNDANCY).
  'gcp-azure': [
    { cidr: '169.254.21.8/30', aInterface: 0, bInterface: 0 },
    { cidr: '169.254.22.8/30', aInterface: 1, bInterface: 1 },
  ],
};

/** Every unordered pair of enabled clouds, in canonical order. */
export function cloudPairs(clouds: Cloud[]): [Cloud, Cloud][] {
  const out: [Cloud, Cloud][] = [];
  for (let i = 0; i < clouds.length; i++)
    for (let j = i + 1; j < clouds.length; j++) out.push([clouds[i], clouds[j]]);
  return out;
}

export function planInterconnect(spec: StackConfig): VpnLinkPlan[] {
  return cloudPairs(enabledClouds(spec)).map(([a, b]) => {
    const name = `${a}-${b}`;
    const tunnels = INSIDE[name].map((t, index) => ({
      index,
      insideCidr: t.cidr,
      aAddress: hostAddress(t.cidr, 1),
      bAddress: hostAddress(t.cidr, 2),
      aInterface: t.aInterface,
      bInterface: t.bInterface,
    }));
    return { name, a, b, aAsn: spec[a].asn, bAsn: spec[b].asn, tunnels };
  });
}
