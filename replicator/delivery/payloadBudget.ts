// The largest client payload that crosses every hop without IP fragmentation, from the real header
// sizes: a client datagram travels (1) to the ingress, (2) inside a replication DATA frame through the
// IPsec VPN between two clouds, and (3) to a backend in the pod network, behind a PROXY v2 header in
// proxy-v2 mode. Managed VPN gateways do not fragment after encapsulation (GCP says so explicitly), so an
// oversize frame is lost, not slowed down: the defaults of ingress.maxPayloadBytes and
// replication.maxFrameBytes come from here, and the README's table is this module's output.
//
// Header sizes come from the protocol modules (frame.ts, frameAuth.ts, proxyV2.ts), so a change of the
// wire format changes the budget with it. Network figures are the clouds' documented limits:
//   AWS Site-to-Site VPN: inner packets up to 1446 bytes (MSS 1406), "Best practices for your customer
//     gateway device", https://docs.aws.amazon.com/vpn/latest/s2svpn/cgw-best-practice.html
//   GCP Cloud VPN / HA VPN: gateway MTU 1460, payload MTU 1406 for IPv4 gateway interfaces (8 less with
//     NAT-T), https://cloud.google.com/network-connectivity/docs/vpn/concepts/mtu-considerations
//   Azure VPN Gateway: inner MTU 1400 (TCP MSS clamped to 1350),
//     https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-devices
//   Pod networks: AWS VPC CNI 9001 (jumbo frames inside a VPC), GKE: the VPC MTU, 1460 by default
//     (https://cloud.google.com/vpc/docs/mtu), AKS Azure CNI: 1500.
// Inner headers: IPv4 20, IPv6 40 (RFC 8200), UDP 8 (RFC 768). The ESP overhead itself (outer IP,
// SPI, sequence, IV, padding, ICV: RFC 4303) is what separates each gateway's inner MTU from 1500.
import { dataHeaderBytes, FRAME_VERSION, MAX_SENDER_BYTES, RECORD_HEADER_BYTES } from '../protocol/frame.ts';
import { TRAILER_BYTES } from '../protocol/frameAuth.ts';
import { proxyV2HeaderBytes, SESSION_TLV_BYTES } from './proxyV2.ts';

export const CLOUDS = ['aws', 'gcp', 'azure'] as const;
export type BudgetCloud = (typeof CLOUDS)[number];

/**
 * Frame version 1 sizes a DATA header by its sender name; version 2 (docs/protocol.md) by sender and
 * receiver, and counts the auth trailer inside replication.maxFrameBytes. Written against both so the
 * budget follows whichever frame.ts it is built with.
 */
const dataHeader = dataHeaderBytes as (sender: string, receiver: string) => number;
const FRAME_LIMIT_INCLUDES_TRAILER = FRAME_VERSION >= 2;

export interface CloudNetwork {
  /** Largest inner IP packet the cloud's managed VPN gateway carries. */
  vpnInnerMtu: number;
  /** MTU between a replicator pod and a backend pod. */
  podMtu: number;
  /** Extra encapsulation inside the tunnel (none for the managed route-based IPsec VPNs used here). */
  tunnelOverhead: number;
  source: string;
}

export const CLOUD_NETWORKS: Record<BudgetCloud, CloudNetwork> = {
  aws: {
    vpnInnerMtu: 1446,
    podMtu: 9001,
    tunnelOverhead: 0,
    source: 'https://docs.aws.amazon.com/vpn/latest/s2svpn/cgw-best-practice.html',
  },
  gcp: {
    vpnInnerMtu: 1406,
    podMtu: 1460,
    tunnelOverhead: 0,
    source: 'https://cloud.google.com/network-connectivity/docs/vpn/concepts/mtu-considerations',
  },
  azure: {
    vpnInnerMtu: 1400,
    podMtu: 1500,
    tunnelOverhead: 0,
    source: 'https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-devices',
  },
};

export const IP_HEADER_BYTES = { 4: 20, 6: 40 } as const;
export const UDP_HEADER_BYTES = 8;
/** Cluster names are at most 32 bytes (the config schema's `name`). */
export const MAX_CLUSTER_NAME_BYTES = 32;

export interface BudgetOptions {
  /** The replicator member names in frames (`cluster/instance`); worst case (64 bytes) by default. */
  sender?: string;
  receiver?: string;
  /** Frame authentication on (the trailer is appended after the frame is built). Default true. */
  auth?: boolean;
  /** Delivery identity mode: proxy-v2 adds the PROXY header on the pod network hop. */
  sessionIdentity?: 'socket' | 'proxy-v2' | 'none';
  /** Address family of inner packets (replication and delivery). Default 4. */
  family?: 4 | 6;
  networks?: Record<BudgetCloud, CloudNetwork>;
}

export interface PairBudget {
  a: BudgetCloud;
  b: BudgetCloud;
  /** Inner MTU of the tunnel between a and b: the smaller gateway limit, less any tunnel overhead. */
  pathMtu: number;
  /** Bytes a one-record frame adds to the payload: DATA header, record header, auth trailer. */
  frameOverhead: number;
  ipUdp: number;
  /** Largest payload for which one replication datagram fits pathMtu. */
  replicationLimit: number;
  /** Largest payload that reaches a backend in a or b in one datagram (PROXY header included). */
  deliveryLimit: number;
  maxPayload: number;
  /** The replication.maxFrameBytes that fits pathMtu (v1: before the auth trailer; v2: including it). */
  maxFrameBytes: number;
}

export function frameOverhead(sender: string, auth: boolean, receiver = sender): number {
  return dataHeader(sender, receiver) + RECORD_HEADER_BYTES + (auth ? TRAILER_BYTES : 0);
}

/** The largest PROXY v2 header this replicator writes (the TLVs for origin cluster and session). */
export function maxProxyHeaderBytes(family: 4 | 6): number {
  return proxyV2HeaderBytes(family, [MAX_CLUSTER_NAME_BYTES, SESSION_TLV_BYTES]);
}

export function pairBudget(a: BudgetCloud, b: BudgetCloud, o: BudgetOptions = {}): PairBudget {
  const nets = o.networks ?? CLOUD_NETWORKS;
  const family = o.family ?? 4;
  const sender = o.sender ?? 'x'.repeat(MAX_SENDER_BYTES);
  const auth = o.auth ?? true;
  const ipUdp = IP_HEADER_BYTES[family] + UDP_HEADER_BYTES;
  const pathMtu = Math.min(
    nets[a].vpnInnerMtu - nets[a].tunnelOverhead,
    nets[b].vpnInnerMtu - nets[b].tunnelOverhead,
  );
  const overhead = frameOverhead(sender, auth, o.receiver ?? 'x'.repeat(MAX_SENDER_BYTES));
  const replicationLimit = pathMtu - ipUdp - overhead;
  const proxy = o.sessionIdentity === 'proxy-v2' ? maxProxyHeaderBytes(family) : 0;
  const deliveryLimit = Math.min(nets[a].podMtu, nets[b].podMtu) - ipUdp - proxy;
  return {
    a,
    b,
    pathMtu,
    frameOverhead: overhead,
    ipUdp,
    replicationLimit,
    deliveryLimit,
    maxPayload: Math.min(replicationLimit, deliveryLimit),
    maxFrameBytes: pathMtu - ipUdp - (auth && !FRAME_LIMIT_INCLUDES_TRAILER ? TRAILER_BYTES : 0),
  };
}

export function allPairs(o: BudgetOptions = {}): PairBudget[] {
  const out: PairBudget[] = [];
  for (let i = 0; i < CLOUDS.length; i++)
    for (let j = i + 1; j < CLOUDS.length; j++) out.push(pairBudget(CLOUDS[i]!, CLOUDS[j]!, o));
  return out;
}

/**
 * The largest client payload safe on every cloud pair in every identity mode. IPv4 inner packets by
 * default: the VPCs and VPN tunnels the program builds are IPv4 (an IPv6 mesh loses 20 more bytes).
 */
export function safeMaxPayloadBytes(o: Omit<BudgetOptions, 'sessionIdentity'> = {}): number {
  return Math.min(...allPairs({ ...o, sessionIdentity: 'proxy-v2' }).map((p) => p.maxPayload));
}

/** The largest replication frame (before the auth trailer) safe on every cloud pair. */
export function safeMaxFrameBytes(o: BudgetOptions = {}): number {
  return Math.min(...allPairs(o).map((p) => p.maxFrameBytes));
}

/** The budget table as markdown (README and docs/capacity.md show this output). */
export function budgetTable(o: BudgetOptions = {}): string {
  const rows = allPairs(o).map(
    (p) =>
      `| ${p.a}-${p.b} | ${p.pathMtu} | ${p.ipUdp} | ${p.frameOverhead} | ${p.replicationLimit} | ${p.deliveryLimit} | **${p.maxPayload}** | ${p.maxFrameBytes} |`,
  );
  return [
    '| pair | tunnel inner MTU | IP+UDP | frame overhead | replication limit | delivery limit | max payload | maxFrameBytes |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}
