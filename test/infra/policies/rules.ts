/* eslint-disable @typescript-eslint/no-explicit-any -- resource inputs are untyped JSON */
// Apply-readiness policies: constraints a real `pulumi up` or real traffic enforces and mocks never do,
// one named rule each, with the source it comes from. They run over the resource graph (graph.ts) of
// every supported cloud combination and of the example stacks (policies.test.ts); docs/infra-review.md
// is the table resource type -> constraint -> rule. A rule returns its violations (empty = pass).
import type { Cloud } from '../../../infra/config/schema.ts';
import { enabledClouds, etcdLayout, quorum } from '../../../infra/config/schema.ts';
import { cidrContains, cidrsOverlap, parseCidr } from '../../../infra/config/cidr.ts';
import { planInterconnect } from '../../../infra/interconnect/plan.ts';
import type { GraphNode, ResourceGraph } from './graph.ts';

export interface Policy {
  name: string;
  /** Resource type(s) the constraint is about (the review table's first column). */
  types: string[];
  constraint: string;
  source: string;
  check(g: ResourceGraph): string[];
}

const K = {
  svc: 'kubernetes:core/v1:Service',
  ns: 'kubernetes:core/v1:Namespace',
  dep: 'kubernetes:apps/v1:Deployment',
  sts: 'kubernetes:apps/v1:StatefulSet',
  hpa: 'kubernetes:autoscaling/v2:HorizontalPodAutoscaler',
  np: 'kubernetes:networking.k8s.io/v1:NetworkPolicy',
  pdb: 'kubernetes:policy/v1:PodDisruptionBudget',
  release: 'kubernetes:helm.sh/v3:Release',
  sc: 'kubernetes:storage.k8s.io/v1:StorageClass',
  crd: 'kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition',
};
const A = {
  cluster: 'aws:eks/cluster:Cluster',
  nodeGroup: 'aws:eks/nodeGroup:NodeGroup',
  addon: 'aws:eks/addon:Addon',
  pia: 'aws:eks/podIdentityAssociation:PodIdentityAssociation',
  role: 'aws:iam/role:Role',
  rpa: 'aws:iam/rolePolicyAttachment:RolePolicyAttachment',
  policy: 'aws:iam/policy:Policy',
  vpnConn: 'aws:ec2/vpnConnection:VpnConnection',
  vgw: 'aws:ec2/vpnGateway:VpnGateway',
  cgw: 'aws:ec2/customerGateway:CustomerGateway',
  subnet: 'aws:ec2/subnet:Subnet',
  vpc: 'aws:ec2/vpc:Vpc',
  hc: 'aws:route53/healthCheck:HealthCheck',
  record: 'aws:route53/record:Record',
};
const G = {
  cluster: 'gcp:container/cluster:Cluster',
  pool: 'gcp:container/nodePool:NodePool',
  service: 'gcp:projects/service:Service',
  network: 'gcp:compute/network:Network',
  sa: 'gcp:serviceaccount/account:Account',
  iam: 'gcp:projects/iAMMember:IAMMember',
  nat: 'gcp:compute/routerNat:RouterNat',
  router: 'gcp:compute/router:Router',
  iface: 'gcp:compute/routerInterface:RouterInterface',
  peer: 'gcp:compute/routerPeer:RouterPeer',
  tunnel: 'gcp:compute/vPNTunnel:VPNTunnel',
  ext: 'gcp:compute/externalVpnGateway:ExternalVpnGateway',
};
const Z = {
  aks: 'azure-native:containerservice:ManagedCluster',
  gw: 'azure-native:network:VirtualNetworkGateway',
  lng: 'azure-native:network:LocalNetworkGateway',
  conn: 'azure-native:network:VirtualNetworkGatewayConnection',
  pip: 'azure-native:network:PublicIPAddress',
  vnet: 'azure-native:network:VirtualNetwork',
  ra: 'azure-native:authorization:RoleAssignment',
};

const has = (g: ResourceGraph, c: Cloud) => enabledClouds(g.spec).includes(c);
/** The program creates this cloud's cluster (not an existing one given by kubeconfig). */
const created = (g: ResourceGraph, c: Cloud) => has(g, c) && !g.spec[c].existingCluster;
/** Kubernetes objects deployed into one cloud's cluster. */
const inCloud = (g: ResourceGraph, type: string, cloud: string) =>
  g.ofType(type).filter((n) => g.cloudOf(n) === cloud && n.custom);
const meta = (n: GraphNode) => n.inputs.metadata ?? {};
const ann = (n: GraphNode): Record<string, string> => meta(n).annotations ?? {};
const isLbService = (n: GraphNode) => n.inputs.spec?.type === 'LoadBalancer';
const replicatorDeployments = (g: ResourceGraph) =>
  g.ofType(K.dep).filter((d) => meta(d).name === 'udpmesh-replicator');
const replicationPorts = (g: ResourceGraph) =>
  Array.from({ length: g.spec.replicator.workers }, (_, i) => g.spec.replicator.replicationPort + i);
const allowsPort = (rule: any, proto: string, port: number) =>
  (rule.ports ?? []).some(
    (p: any) => (p.protocol ?? 'TCP') === proto && p.port <= port && port <= (p.endPort ?? p.port),
  );
const excludedInbound = (d: GraphNode): number[] =>
  String(d.inputs.spec.template.metadata.annotations?.['traffic.sidecar.istio.io/excludeInboundPorts'] ?? '')
    .split(',')
    .filter(Boolean)
    .map(Number);
/** Addresses a subnet reserves: AWS and Azure the first four and the last; GCP the first two and last two. */
function reservedAddresses(cloud: Cloud, cidr: string): number[] {
  const c = parseCidr(cidr)!;
  if (cloud === 'gcp') return [c.start, c.start + 1, c.end - 1, c.end];
  return [c.start, c.start + 1, c.start + 2, c.start + 3, c.end];
}
const ipToInt = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const cidrOf = (ip: string) => parseCidr(`${ip}/32`)!;

export const POLICIES: Policy[] = [
  // ---------------------------------------------------------------- EKS
  {
    name: 'eks-cluster-after-role-policy',
    types: [A.cluster, A.rpa],
    constraint:
      'The EKS cluster depends on its IAM role policy attachments (created before, deleted after the cluster).',
    source:
      'registry.terraform.io aws_eks_cluster: "Ensure that IAM Role permissions are created before and deleted after EKS Cluster handling"',
    check: (g) =>
      g.ofType(A.cluster).flatMap((c) => {
        const role = g.ofType(A.role).find((r) => r.name.endsWith('-cluster-role'));
        const atts = g.ofType(A.rpa).filter((a) => role && g.dependsOn(a, role));
        if (atts.length === 0) return [`${c.name}: no policy attachment on the cluster role`];
        return atts.filter((a) => !g.dependsOn(c, a)).map((a) => `${c.name} does not depend on ${a.name}`);
      }),
  },
  {
    name: 'eks-nodegroup-after-node-policies',
    types: [A.nodeGroup, A.rpa],
    constraint: 'Managed node groups depend on the node role policy attachments.',
    source: 'registry.terraform.io aws_eks_node_group (same ordering note as the cluster)',
    check: (g) =>
      g.ofType(A.nodeGroup).flatMap((n) => {
        const role = g.ofType(A.role).find((r) => r.name.endsWith('-node-role'));
        return g
          .ofType(A.rpa)
          .filter((a) => role && g.dependsOn(a, role) && !g.dependsOn(n, a))
          .map((a) => `${n.name} does not depend on ${a.name}`);
      }),
  },
  {
    name: 'eks-ebs-csi-addon-with-pod-identity',
    types: [A.addon, A.pia],
    constraint:
      'Since EKS 1.30 there is no in-tree EBS provisioner: PVCs need the aws-ebs-csi-driver add-on, its controller authorised through Pod Identity (agent add-on installed) with AmazonEBSCSIDriverPolicy.',
    source:
      'docs.aws.amazon.com/eks/latest/userguide/ebs-csi.html; docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html',
    check: (g) => {
      if (!created(g, 'aws')) return [];
      const addons = g.ofType(A.addon);
      const ebs = addons.find((a) => a.inputs.addonName === 'aws-ebs-csi-driver');
      const out: string[] = [];
      if (!ebs) return ['no aws-ebs-csi-driver add-on'];
      if (!addons.some((a) => a.inputs.addonName === 'eks-pod-identity-agent'))
        out.push('no eks-pod-identity-agent add-on');
      const assoc = ebs.inputs.podIdentityAssociations?.[0];
      if (assoc?.serviceAccount !== 'ebs-csi-controller-sa')
        out.push('aws-ebs-csi-driver has no Pod Identity association for ebs-csi-controller-sa');
      const attached = g
        .ofType(A.rpa)
        .some((a) => String(a.inputs.policyArn).endsWith('service-role/AmazonEBSCSIDriverPolicy'));
      if (!attached) out.push('AmazonEBSCSIDriverPolicy is attached to no role');
      return out;
    },
  },
  {
    name: 'eks-default-storage-class',
    types: [K.sc, K.sts],
    constraint:
      'EKS >= 1.30 has no default StorageClass: volumeClaimTemplates without storageClassName need one (ebs.csi.aws.com, WaitForFirstConsumer because EBS volumes are zonal), created before the StatefulSets.',
    source: 'docs.aws.amazon.com/eks/latest/userguide/create-storage-class.html (1.30 release notes)',
    check: (g) => {
      if (!created(g, 'aws')) return [];
      const scs = inCloud(g, K.sc, 'aws').filter(
        (s) => meta(s).annotations?.['storageclass.kubernetes.io/is-default-class'] === 'true',
      );
      if (scs.length !== 1) return [`${scs.length} default StorageClasses in aws (want 1)`];
      const sc = scs[0];
      const out: string[] = [];
      if (sc.inputs.provisioner !== 'ebs.csi.aws.com')
        out.push('default StorageClass is not ebs.csi.aws.com');
      if (sc.inputs.volumeBindingMode !== 'WaitForFirstConsumer')
        out.push(
          'default StorageClass binds immediately (zonal EBS volume may land in another zone than the pod)',
        );
      for (const s of inCloud(g, K.sts, 'aws'))
        if (!g.dependsOn(s, sc)) out.push(`${s.name} may be created before the default StorageClass`);
      return out;
    },
  },
  {
    name: 'eks-lb-controller-own-iam',
    types: [K.release, A.pia, A.policy, A.rpa],
    constraint:
      "The AWS Load Balancer Controller gets the controller's published IAM policy through its own service account (Pod Identity), never through the node role.",
    source:
      'kubernetes-sigs/aws-load-balancer-controller docs/install/iam_policy.json; docs deploy/installation.md ("IAM permissions")',
    check: (g) => {
      if (!created(g, 'aws')) return [];
      const out: string[] = [];
      const assoc = g
        .ofType(A.pia)
        .find(
          (p) =>
            p.inputs.serviceAccount === 'aws-load-balancer-controller' &&
            p.inputs.namespace === 'kube-system',
        );
      if (!assoc) out.push('no Pod Identity association for kube-system/aws-load-balancer-controller');
      const policy = g.ofType(A.policy).find((p) => p.name.includes('lb-controller'));
      const doc = policy ? JSON.stringify(JSON.parse(policy.inputs.policy)) : '';
      for (const action of [
        'ec2:CreateSecurityGroup',
        'ec2:AuthorizeSecurityGroupIngress',
        'ec2:CreateTags',
        'elasticloadbalancing:CreateLoadBalancer',
        'elasticloadbalancing:RegisterTargets',
        'iam:CreateServiceLinkedRole',
      ])
        if (!doc.includes(`"${action}"`)) out.push(`controller policy lacks ${action}`);
      for (const a of g.ofType(A.rpa).filter((x) => x.name.includes('node-policy')))
        if (/ElasticLoadBalancing|lb-controller/.test(String(a.inputs.policyArn)))
          out.push(`node role carries ${a.inputs.policyArn}`);
      const rel = g.ofType(K.release).find((r) => r.inputs.chart === 'aws-load-balancer-controller');
      if (rel && assoc && !g.dependsOn(rel, assoc))
        out.push('controller release does not wait for its association');
      return out;
    },
  },
  {
    name: 'eks-lb-services-after-controller',
    types: [K.svc, K.release],
    constraint:
      "Every LoadBalancer Service in EKS (and Helm releases creating one) depends on the controller's release: created after its mservice.elbv2.k8s.aws webhook is ready, deleted before the controller (finalizers, leftover ENIs/SGs block VPC deletion).",
    source: 'aws-load-balancer-controller #4140; aws/eks-charts #1058',
    check: (g) => {
      if (!created(g, 'aws')) return [];
      const rel = g.ofType(K.release).find((r) => r.inputs.chart === 'aws-load-balancer-controller');
      if (!rel) return ['no aws-load-balancer-controller release'];
      const lbs = inCloud(g, K.svc, 'aws').filter(isLbService);
      const charts = inCloud(g, K.release, 'aws').filter(
        (r) => r.inputs.chart === 'kube-prometheus-stack' && g.spec.monitoring.exposeGrafana,
      );
      return [...lbs, ...charts]
        .filter((s) => !g.dependsOn(s, rel))
        .map((s) => `${s.name} does not depend on ${rel.name}`);
    },
  },
  {
    name: 'eks-metrics-server-for-hpa',
    types: [K.hpa, K.release],
    constraint: 'EKS ships no metrics-server: a CPU HPA needs one installed (and depends on it).',
    source: 'docs.aws.amazon.com/eks/latest/userguide/metrics-server.html',
    check: (g) => {
      const ms = g
        .ofType(K.release)
        .find((r) => r.inputs.chart === 'metrics-server' && g.cloudOf(r) === 'aws');
      const hpas = inCloud(g, K.hpa, 'aws');
      // An existing cluster's metrics-server is a documented prerequisite.
      if (hpas.length === 0 || !created(g, 'aws')) return [];
      if (!ms) return ['HPA in aws without metrics-server'];
      return hpas
        .filter((h) => !g.dependsOn(h, ms))
        .map((h) => `${h.name} does not depend on metrics-server`);
    },
  },
  {
    name: 'cluster-enforces-network-policy',
    types: [A.addon, G.cluster, Z.aks, K.np],
    constraint:
      'NetworkPolicies are only enforced with VPC CNI enableNetworkPolicy (EKS), Dataplane V2 (GKE; never together with the legacy networkPolicy block, the API rejects both) or an AKS network policy engine.',
    source:
      'docs.aws.amazon.com/eks/latest/userguide/cni-network-policy.html; cloud.google.com/kubernetes-engine/docs/concepts/dataplane-v2; learn.microsoft.com/azure/aks/use-network-policies',
    check: (g) => {
      const out: string[] = [];
      if (created(g, 'aws')) {
        const cni = g.ofType(A.addon).find((a) => a.inputs.addonName === 'vpc-cni');
        if (!created(g, 'aws')) return out; // an existing cluster's CNI is a documented prerequisite
        const cfg = cni?.inputs.configurationValues ? JSON.parse(cni.inputs.configurationValues) : {};
        if (cfg.enableNetworkPolicy !== 'true')
          out.push('EKS vpc-cni add-on without enableNetworkPolicy=true');
        if (cni)
          for (const np of inCloud(g, K.np, 'aws'))
            if (!g.dependsOn(np, cni)) out.push(`${np.name} before vpc-cni`);
      }
      for (const c of g.ofType(G.cluster)) {
        if (c.inputs.datapathProvider !== 'ADVANCED_DATAPATH') out.push('GKE without Dataplane V2');
        if (c.inputs.networkPolicy?.enabled) out.push('GKE sets networkPolicy together with Dataplane V2');
      }
      for (const c of g.ofType(Z.aks))
        if (!['azure', 'calico', 'cilium'].includes(c.inputs.networkProfile?.networkPolicy))
          out.push('AKS without a network policy engine');
      return out;
    },
  },
  {
    name: 'aws-etcd-nlb-in-member-zone',
    types: [K.svc, K.sts, A.subnet],
    constraint:
      "An internal NLB with a fixed private address lives in one subnet (one address per subnet); an IP target in an AZ the NLB does not span is never used, so each AWS etcd member is pinned to its NLB subnet's zone, and members of one cloud use different zones.",
    source:
      'docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-register-targets.html ("targets in an AZ not enabled for the load balancer"); aws-load-balancer-controller annotations.md (private-ipv4-addresses: one per subnet)',
    check: (g) => {
      if (!created(g, 'aws')) return [];
      const out: string[] = [];
      const subnets = g.ofType(A.subnet);
      const zones = new Set<string>();
      for (const s of inCloud(g, K.svc, 'aws').filter(
        (x) => meta(x).labels?.['app.kubernetes.io/name'] === 'etcd' && isLbService(x),
      )) {
        const a = ann(s);
        const names = String(a['service.beta.kubernetes.io/aws-load-balancer-subnets'] ?? '').split(',');
        const addrs = String(
          a['service.beta.kubernetes.io/aws-load-balancer-private-ipv4-addresses'] ?? '',
        ).split(',');
        if (names.length !== addrs.length)
          out.push(`${s.name}: ${names.length} subnets but ${addrs.length} addresses`);
        const subnet = subnets.find((x) => x.inputs.tags?.Name === names[0]);
        if (!subnet) {
          out.push(`${s.name}: subnet ${names[0]} is not created by the program`);
          continue;
        }
        if (!cidrContains(parseCidr(subnet.inputs.cidrBlock)!, cidrOf(addrs[0])))
          out.push(`${s.name}: ${addrs[0]} outside ${subnet.inputs.cidrBlock}`);
        const member = meta(s).name;
        const sts = inCloud(g, K.sts, 'aws').find((x) => meta(x).name === member);
        const terms =
          sts?.inputs.spec.template.spec.affinity?.nodeAffinity
            ?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
        const zone = terms
          .flatMap((t: any) => t.matchExpressions ?? [])
          .find((e: any) => e.key === 'topology.kubernetes.io/zone')?.values;
        if (JSON.stringify(zone) !== JSON.stringify([subnet.inputs.availabilityZone]))
          out.push(`${member} not pinned to ${subnet.inputs.availabilityZone}`);
        if (zones.has(subnet.inputs.availabilityZone) && zones.size < g.find(A.subnet).length / 2)
          out.push(`${member} shares zone ${subnet.inputs.availabilityZone} with another member`);
        zones.add(subnet.inputs.availabilityZone);
      }
      return out;
    },
  },
  {
    name: 'internal-lb-address-usable',
    types: [K.svc],
    constraint:
      'A fixed internal LB address lies inside its subnet and is not one the cloud reserves (AWS/Azure: first four and last; GCP: first two and last two).',
    source:
      'docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html; cloud.google.com/vpc/docs/subnets#unusable-ip-addresses-in-every-subnet; learn.microsoft.com/azure/virtual-network/virtual-networks-faq (reserved addresses)',
    check: (g) => {
      const out: string[] = [];
      for (const s of g
        .ofType(K.svc)
        .filter((x) => x.custom && meta(x).labels?.['app.kubernetes.io/name'] === 'etcd' && isLbService(x))) {
        const cloud = g.cloudOf(s) as Cloud;
        const a = ann(s);
        const ip =
          a['service.beta.kubernetes.io/aws-load-balancer-private-ipv4-addresses'] ??
          a['service.beta.kubernetes.io/azure-load-balancer-ipv4'] ??
          s.inputs.spec.loadBalancerIP;
        const subnet =
          cloud === 'aws'
            ? (g
                .ofType(A.subnet)
                .find(
                  (x) => x.inputs.tags?.Name === a['service.beta.kubernetes.io/aws-load-balancer-subnets'],
                )?.inputs.cidrBlock ??
              g.spec.aws.existingCluster?.privateSubnets.find(
                (x) => x.id === a['service.beta.kubernetes.io/aws-load-balancer-subnets'],
              )?.cidr)
            : cloud === 'gcp'
              ? g.spec.gcp.vpcCidr
              : g.spec.azure.nodeSubnetCidr;
        if (!ip || !subnet) {
          out.push(`${s.name}: no fixed address or subnet`);
          continue;
        }
        if (!cidrContains(parseCidr(subnet)!, cidrOf(ip))) out.push(`${s.name}: ${ip} outside ${subnet}`);
        if (reservedAddresses(cloud, subnet).includes(ipToInt(ip)))
          out.push(`${s.name}: ${ip} is reserved in ${subnet}`);
      }
      return out;
    },
  },
  {
    name: 'aws-vpn-psk-charset',
    types: [A.vpnConn, 'random:index/randomPassword:RandomPassword'],
    constraint:
      'AWS VPN pre-shared keys are 8-64 characters of letters, digits, "." and "_" and cannot start with 0: a random key must be generated so that no draw breaks this.',
    source: 'docs.aws.amazon.com/vpn/latest/s2svpn/VPNTunnels.html ("Pre-shared key")',
    check: (g) =>
      g.ofType(A.vpnConn).flatMap((c) =>
        ['tunnel1PresharedKey', 'tunnel2PresharedKey']
          .map((k) => String(c.inputs[k]))
          .filter((k) => !/^[A-Za-z1-9._][A-Za-z0-9._]{7,63}$/.test(k))
          .map((k) => `${c.name}: pre-shared key "${k.slice(0, 6)}..." (${k.length} chars) can be rejected`),
      ),
  },
  {
    name: 'aws-vpn-inside-cidr-allowed',
    types: [A.vpnConn],
    constraint:
      'Tunnel inside CIDRs are /30s in 169.254.0.0/16, not 169.254.0.0/30-169.254.5.0/30 or 169.254.169.252/30, unique per VPN gateway.',
    source: 'docs.aws.amazon.com/vpn/latest/s2svpn/VPNTunnels.html ("Inside tunnel IPv4 CIDR")',
    check: (g) => {
      const out: string[] = [];
      const seen = new Set<string>();
      const reserved = [
        '169.254.0.0/30',
        '169.254.1.0/30',
        '169.254.2.0/30',
        '169.254.3.0/30',
        '169.254.4.0/30',
        '169.254.5.0/30',
        '169.254.169.252/30',
      ];
      for (const c of g.ofType(A.vpnConn))
        for (const k of ['tunnel1InsideCidr', 'tunnel2InsideCidr']) {
          const v = c.inputs[k];
          const p = parseCidr(v);
          if (!p || p.prefix !== 30 || !v.startsWith('169.254.')) out.push(`${c.name}: ${v}`);
          if (reserved.includes(v)) out.push(`${c.name}: ${v} reserved`);
          if (seen.has(v)) out.push(`${c.name}: ${v} used twice`);
          seen.add(v);
        }
      return out;
    },
  },
  {
    name: 'bgp-both-ends-agree',
    types: [A.vgw, A.cgw, A.vpnConn, G.router, G.iface, G.peer, Z.gw, Z.lng, Z.conn],
    constraint:
      "For every tunnel both BGP speakers agree: each side's local address is the other's peer address inside one /30 (AWS always takes the first host), each side's peer ASN is the other's local ASN, and ASNs differ.",
    source:
      'docs.aws.amazon.com/vpn/latest/s2svpn/VPNTunnels.html; cloud.google.com/network-connectivity/docs/router/how-to/configuring-bgp; learn.microsoft.com/azure/vpn-gateway/bgp-howto',
    check: (g) => {
      const out: string[] = [];
      const s = g.spec;
      for (const link of planInterconnect(s)) {
        for (const t of link.tunnels) {
          const host = (n: number) =>
            t.insideCidr.replace(/\d+\/30$/, (m) => String(Number(m.split('/')[0]) + n));
          if (t.aAddress !== host(1) || t.bAddress !== host(2))
            out.push(`${link.name}#${t.index}: addresses not hosts of ${t.insideCidr}`);
          // GCP end.
          if (link.a === 'gcp' || link.b === 'gcp') {
            const gcpAddr = link.a === 'gcp' ? t.aAddress : t.bAddress;
            const peerAddr = link.a === 'gcp' ? t.bAddress : t.aAddress;
            const remote = link.a === 'gcp' ? link.b : link.a;
            const iface = g.ofType(G.iface).find((i) => i.inputs.ipRange === `${gcpAddr}/30`);
            const peer = g.ofType(G.peer).find((p) => p.inputs.peerIpAddress === peerAddr);
            if (!iface) out.push(`${link.name}#${t.index}: no GCP interface at ${gcpAddr}`);
            if (!peer) out.push(`${link.name}#${t.index}: no GCP peer for ${peerAddr}`);
            else if (peer.inputs.peerAsn !== s[remote].asn)
              out.push(`${peer.name}: peerAsn ${peer.inputs.peerAsn} != ${remote} ${s[remote].asn}`);
            const router = g.ofType(G.router).find((r) => r.inputs.bgp);
            if (router && router.inputs.bgp.asn !== s.gcp.asn) out.push('GCP router ASN');
          }
          // Azure end.
          if (link.b === 'azure') {
            const lng = g.ofType(Z.lng).find((l) => l.inputs.bgpSettings?.bgpPeeringAddress === t.aAddress);
            if (!lng)
              out.push(`${link.name}#${t.index}: no Azure local network gateway peering ${t.aAddress}`);
            else if (lng.inputs.bgpSettings.asn !== s[link.a].asn)
              out.push(`${lng.name}: asn ${lng.inputs.bgpSettings.asn}`);
            const gw = g.ofType(Z.gw)[0];
            const custom =
              gw?.inputs.bgpSettings.bgpPeeringAddresses[t.bInterface].customBgpIpAddresses ?? [];
            if (!custom.includes(t.bAddress))
              out.push(`${link.name}#${t.index}: Azure instance ${t.bInterface} lacks ${t.bAddress}`);
            const conn = g
              .ofType(Z.conn)
              .find((c) => c.inputs.gatewayCustomBgpIpAddresses?.[0]?.customBgpIpAddress === t.bAddress);
            if (!conn) out.push(`${link.name}#${t.index}: no Azure connection using ${t.bAddress}`);
          }
        }
        // AWS end: its VGW ASN is what the peers expect; its customer gateways carry the peer's ASN.
        if (link.a === 'aws') {
          const vgw = g.ofType(A.vgw)[0];
          if (!vgw || Number(vgw.inputs.amazonSideAsn) !== s.aws.asn)
            out.push('AWS VGW ASN differs from aws.asn');
          const cgws = g.ofType(A.cgw).filter((c) => c.name.includes(`-${link.name}-`));
          if (cgws.length !== 2) out.push(`${link.name}: ${cgws.length} customer gateways`);
          for (const c of cgws)
            if (Number(c.inputs.bgpAsn) !== s[link.b].asn) out.push(`${c.name}: bgpAsn ${c.inputs.bgpAsn}`);
        }
        if (s[link.a].asn === s[link.b].asn) out.push(`${link.name}: same ASN on both ends`);
      }
      return out;
    },
  },
  {
    name: 'aws-nlb-health-check-tests-replicator',
    types: [K.svc, K.dep],
    constraint:
      "The UDP NLB's health check reaches the replicator itself (HTTP /readyz on the metrics port, which the sidecar does not intercept), not Envoy accepting TCP on its behalf.",
    source:
      'aws-load-balancer-controller annotations.md (healthcheck-*); istio.io/latest/docs/reference/config/annotations/ (traffic.sidecar.istio.io/excludeInboundPorts)',
    check: (g) => {
      const out: string[] = [];
      for (const s of inCloud(g, K.svc, 'aws').filter((x) => meta(x).name === 'udpmesh-ingress')) {
        const a = ann(s);
        if (a['service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol'] !== 'HTTP')
          out.push('health check not HTTP');
        if (a['service.beta.kubernetes.io/aws-load-balancer-healthcheck-path'] !== '/readyz')
          out.push('health check path not /readyz');
        if (
          a['service.beta.kubernetes.io/aws-load-balancer-healthcheck-port'] !==
          String(g.spec.replicator.metricsPort)
        )
          out.push('health check port');
      }
      for (const d of replicatorDeployments(g))
        if (!excludedInbound(d).includes(g.spec.replicator.metricsPort))
          out.push(
            `${d.name}: metrics/health port ${g.spec.replicator.metricsPort} is captured by the sidecar`,
          );
      return out;
    },
  },
  {
    name: 'aws-nlb-readiness-gate-and-deregistration',
    types: [K.ns, K.svc],
    constraint:
      'NLB ip targets: pods carry the controller readiness gate (namespace label elbv2.k8s.aws/pod-readiness-gate-inject=enabled) so a rollout waits for healthy targets, and the deregistration delay fits inside the drain window (<= terminationGracePeriodSeconds).',
    source:
      'aws-load-balancer-controller docs/deploy/pod_readiness_gate.md; docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-target-groups.html#deregistration-delay',
    check: (g) => {
      const out: string[] = [];
      for (const n of inCloud(g, K.ns, 'aws').filter((x) => meta(x).name === g.spec.namespace))
        if (meta(n).labels?.['elbv2.k8s.aws/pod-readiness-gate-inject'] !== 'enabled')
          out.push('namespace without readiness gate injection');
      const grace = Math.ceil(g.spec.replicator.drainDeadlineMs / 1000) + 15;
      for (const s of inCloud(g, K.svc, 'aws').filter((x) => meta(x).name === 'udpmesh-ingress')) {
        const attrs = String(
          ann(s)['service.beta.kubernetes.io/aws-load-balancer-target-group-attributes'] ?? '',
        );
        const m = /deregistration_delay\.timeout_seconds=(\d+)/.exec(attrs);
        if (!m) out.push('no deregistration delay');
        else if (Number(m[1]) > grace || Number(m[1]) < Math.ceil(g.spec.replicator.drainDeadlineMs / 1000))
          out.push(`deregistration delay ${m[1]}s outside [drain, grace ${grace}s]`);
      }
      return out;
    },
  },
  {
    name: 'lb-targets-span-zones',
    types: [K.svc, K.dep, A.subnet],
    constraint:
      'The public UDP LB spans every zone that can hold targets (AWS: public subnets in >= 2 AZs tagged kubernetes.io/role/elb, cross-zone on) and the replicator spreads over zones.',
    source:
      'aws-load-balancer-controller docs/deploy/subnet_discovery.md; docs.aws.amazon.com/elasticloadbalancing/latest/network/network-load-balancers.html#cross-zone-load-balancing',
    check: (g) => {
      const out: string[] = [];
      if (created(g, 'aws')) {
        const pub = g.ofType(A.subnet).filter((s) => s.inputs.tags?.['kubernetes.io/role/elb'] === '1');
        if (new Set(pub.map((s) => s.inputs.availabilityZone)).size < 2)
          out.push('public subnets in < 2 AZs');
        const priv = g
          .ofType(A.subnet)
          .filter((s) => s.inputs.tags?.['kubernetes.io/role/internal-elb'] === '1');
        if (new Set(priv.map((s) => s.inputs.availabilityZone)).size < 2)
          out.push('private subnets in < 2 AZs');
        for (const s of inCloud(g, K.svc, 'aws').filter((x) => meta(x).name === 'udpmesh-ingress'))
          if (
            ann(s)['service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled'] !==
            'true'
          )
            out.push('cross-zone off');
      }
      for (const d of replicatorDeployments(g))
        if (
          !(d.inputs.spec.template.spec.topologySpreadConstraints ?? []).some(
            (t: any) => t.topologyKey === 'topology.kubernetes.io/zone',
          )
        )
          out.push(`${d.name}: no zone spread`);
      return out;
    },
  },
  {
    name: 'iam-role-autoname-length',
    types: [A.role, A.policy],
    constraint:
      'IAM role names are <= 64 and policy names <= 128 characters; Pulumi auto-names append 8 characters.',
    source: 'docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html',
    check: (g) => [
      ...g
        .ofType(A.role)
        .filter((r) => (r.inputs.name ?? `${r.name}-1234567`).length > 64)
        .map((r) => `${r.name} too long`),
      ...g
        .ofType(A.policy)
        .filter((r) => (r.inputs.name ?? `${r.name}-1234567`).length > 128)
        .map((r) => `${r.name} too long`),
    ],
  },
  {
    name: 'eks-cluster-name',
    types: [A.cluster],
    constraint:
      'EKS cluster names: 1-100 characters, start alphanumeric, [A-Za-z0-9_-]; unique per account and region.',
    source: 'docs.aws.amazon.com/eks/latest/APIReference/API_CreateCluster.html',
    check: (g) =>
      g
        .ofType(A.cluster)
        .filter((c) => !/^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$/.test(c.inputs.name))
        .map((c) => c.inputs.name),
  },
  // ---------------------------------------------------------------- GKE / GCP
  {
    name: 'gcp-required-apis-enabled',
    types: [G.service, G.network, G.cluster, G.sa],
    constraint:
      'compute, container and iam APIs are enabled by the program (not disabled on destroy, other stacks may share the project) before any network, cluster or service account.',
    source:
      'cloud.google.com/kubernetes-engine/docs/how-to/creating-a-regional-cluster (Before you begin); registry.terraform.io google_project_service',
    check: (g) => {
      if (!has(g, 'gcp')) return [];
      const out: string[] = [];
      const svc = (api: string) => g.ofType(G.service).find((s) => s.inputs.service === api);
      for (const api of ['compute.googleapis.com', 'container.googleapis.com', 'iam.googleapis.com']) {
        const s = svc(api);
        if (!s) out.push(`${api} not enabled`);
        else if (s.inputs.disableOnDestroy !== false) out.push(`${api} would be disabled on destroy`);
      }
      const need: [string, string][] = [
        [G.network, 'compute.googleapis.com'],
        [G.cluster, 'container.googleapis.com'],
        [G.sa, 'iam.googleapis.com'],
      ];
      for (const [type, api] of need)
        for (const n of g.ofType(type)) {
          const s = svc(api);
          if (s && !g.dependsOn(n, s)) out.push(`${n.name} does not wait for ${api}`);
        }
      return out;
    },
  },
  {
    name: 'gke-private-nodes-with-egress',
    types: [G.cluster, G.nat],
    constraint:
      'GKE nodes are private (no external IPs) with a /28 control-plane range disjoint from every mesh range, and a Cloud NAT so private nodes can still pull images from registries outside Google.',
    source:
      'cloud.google.com/kubernetes-engine/docs/how-to/private-clusters; cloud.google.com/nat/docs/gke-example',
    check: (g) =>
      g.ofType(G.cluster).flatMap((c) => {
        const out: string[] = [];
        const p = c.inputs.privateClusterConfig;
        if (!p?.enablePrivateNodes) out.push('nodes have public IPs');
        const m = parseCidr(p?.masterIpv4CidrBlock ?? '');
        if (!m || m.prefix !== 28) out.push('no /28 masterIpv4CidrBlock');
        else
          for (const r of [g.spec.gcp.vpcCidr, g.spec.gcp.podCidr, g.spec.gcp.serviceCidr])
            if (cidrsOverlap(m, parseCidr(r)!)) out.push(`master range overlaps ${r}`);
        if (g.ofType(G.nat).length === 0) out.push('private nodes without Cloud NAT');
        return out;
      }),
  },
  {
    name: 'gke-private-webhook-firewall',
    types: [G.cluster, 'gcp:compute/firewall:Firewall'],
    constraint:
      "A private GKE control plane reaches nodes only on 443/10250 by default: istiod's injection webhook (15017) needs a firewall rule from the control-plane range, or pods start without sidecars or are refused.",
    source:
      'istio.io/latest/docs/setup/platform-setup/gke/; cloud.google.com/kubernetes-engine/docs/how-to/private-clusters#add_firewall_rules',
    check: (g) =>
      g.ofType(G.cluster).flatMap((c) => {
        const master = c.inputs.privateClusterConfig?.masterIpv4CidrBlock;
        const ok = g
          .ofType('gcp:compute/firewall:Firewall')
          .some(
            (f) =>
              (f.inputs.sourceRanges ?? []).includes(master) &&
              f.inputs.allows.some((a: any) => a.protocol === 'tcp' && (a.ports ?? []).includes('15017')),
          );
        return ok ? [] : ['no firewall rule from the control plane to istiod 15017'];
      }),
  },
  {
    name: 'gke-master-authorized-networks',
    types: [G.cluster],
    constraint: "GKE's control plane accepts only the configured CIDRs (master authorized networks).",
    source: 'cloud.google.com/kubernetes-engine/docs/how-to/authorized-networks',
    check: (g) =>
      g.ofType(G.cluster).flatMap((c) => {
        const blocks = (c.inputs.masterAuthorizedNetworksConfig?.cidrBlocks ?? []).map(
          (b: any) => b.cidrBlock,
        );
        return JSON.stringify(blocks) === JSON.stringify(g.spec.gcp.apiServerAuthorizedCidrs)
          ? []
          : [`authorized networks ${blocks.join(',')} != config`];
      }),
  },
  {
    name: 'gke-dedicated-node-service-account',
    types: [G.pool, G.sa, G.iam],
    constraint:
      'Node pools run as a dedicated least-privilege service account (roles/container.defaultNodeServiceAccount), not the Compute Engine default one.',
    source: 'cloud.google.com/kubernetes-engine/docs/how-to/hardening-your-cluster#use_least_privilege_sa',
    check: (g) =>
      g.ofType(G.pool).flatMap((p) => {
        const sa = g.ofType(G.sa)[0];
        const out: string[] = [];
        if (!sa) return ['no node service account'];
        if (!g.dependsOn(p, sa)) out.push('node pool does not use the created service account');
        if (
          !g
            .ofType(G.iam)
            .some((m) => m.inputs.role === 'roles/container.defaultNodeServiceAccount' && g.dependsOn(m, sa))
        )
          out.push('node service account lacks roles/container.defaultNodeServiceAccount');
        if (!g.ofType(G.iam).every((m) => g.dependsOn(p, m)))
          out.push('node pool created before its IAM grants');
        return out;
      }),
  },
  {
    name: 'gcp-service-account-id-format',
    types: [G.sa],
    constraint: 'Service account IDs are 6-30 characters, ^[a-z]([-a-z0-9]*[a-z0-9])$, unique per project.',
    source: 'cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/create',
    check: (g) =>
      g
        .ofType(G.sa)
        .filter((s) => !/^[a-z][-a-z0-9]{4,28}[a-z0-9]$/.test(s.inputs.accountId))
        .map((s) => `${s.inputs.accountId}`),
  },
  {
    name: 'gcp-resource-names',
    types: ['gcp:*'],
    constraint:
      'Explicit GCP names follow RFC 1035 (^[a-z]([-a-z0-9]*[a-z0-9])?$, <= 63 characters); GKE cluster names <= 40.',
    source:
      'cloud.google.com/compute/docs/naming-resources; cloud.google.com/kubernetes-engine/docs/reference/rest/v1/projects.locations.clusters#Cluster',
    check: (g) =>
      [...g.nodes.values()]
        .filter(
          (n) =>
            n.custom &&
            n.type.startsWith('gcp:') &&
            typeof n.inputs.name === 'string' &&
            !n.type.startsWith('gcp:projects'),
        )
        .filter(
          (n) =>
            !/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(n.inputs.name) ||
            n.inputs.name.length > (n.type === G.cluster ? 40 : 63),
        )
        .map((n) => `${n.type} ${n.inputs.name}`),
  },
  {
    name: 'gcp-external-gateway-interfaces',
    types: [G.ext, G.tunnel],
    constraint:
      'An external VPN gateway has exactly the interfaces its redundancy type implies (FOUR_IPS 4, TWO_IPS 2) and every tunnel uses an existing interface on both sides.',
    source: 'cloud.google.com/network-connectivity/docs/vpn/concepts/topologies',
    check: (g) => {
      const out: string[] = [];
      const want: Record<string, number> = {
        FOUR_IPS_REDUNDANCY: 4,
        TWO_IPS_REDUNDANCY: 2,
        SINGLE_IP_INTERNALLY_REDUNDANT: 1,
      };
      for (const e of g.ofType(G.ext)) {
        const n = e.inputs.interfaces.length;
        if (want[e.inputs.redundancyType] !== n)
          out.push(`${e.name}: ${n} interfaces for ${e.inputs.redundancyType}`);
        for (const t of g.ofType(G.tunnel).filter((x) => g.dependsOn(x, e)))
          if (t.inputs.peerExternalGatewayInterface >= n || ![0, 1].includes(t.inputs.vpnGatewayInterface))
            out.push(`${t.name}: interface out of range`);
      }
      return out;
    },
  },
  // ---------------------------------------------------------------- AKS / Azure
  {
    name: 'aks-sku-tier-from-config',
    types: [Z.aks],
    constraint:
      'AKS Free tier has no uptime SLA; the tier is configurable and Standard (or Premium) where uptime matters.',
    source: 'learn.microsoft.com/azure/aks/free-standard-pricing-tiers',
    check: (g) =>
      g
        .ofType(Z.aks)
        .flatMap((c) =>
          c.inputs.sku?.tier === g.spec.azure.skuTier && c.inputs.sku?.name === 'Base'
            ? []
            : [`sku ${JSON.stringify(c.inputs.sku)}`],
        ),
  },
  {
    name: 'aks-local-accounts-disabled',
    types: [Z.aks, Z.ra],
    constraint:
      'Local accounts off (disableLocalAccounts) requires Entra ID integration with Azure RBAC, and then whoever runs Pulumi needs a cluster RBAC role to deploy workloads.',
    source: 'learn.microsoft.com/azure/aks/manage-local-accounts-managed-azure-ad',
    check: (g) =>
      g.ofType(Z.aks).flatMap((c) => {
        const out: string[] = [];
        if (c.inputs.disableLocalAccounts !== true) out.push('local accounts enabled');
        if (!c.inputs.aadProfile?.managed || !c.inputs.aadProfile?.enableAzureRBAC)
          out.push('no managed Entra ID + Azure RBAC');
        const admin = g
          .ofType(Z.ra)
          .find((r) => String(r.inputs.roleDefinitionId).endsWith('b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b'));
        if (!admin) out.push('the deploying principal gets no AKS RBAC Cluster Admin role');
        const k8s = g.ofType('pulumi:providers:kubernetes').find((p) => g.cloudOf(p) === 'azure');
        if (admin && k8s && !g.dependsOn(k8s, admin))
          out.push('azure k8s provider used before the role assignment');
        return out;
      }),
  },
  {
    name: 'aks-api-server-access',
    types: [Z.aks],
    constraint:
      'The AKS API server accepts only the configured ranges (authorizedIPRanges; omitted for 0.0.0.0/0) or is private when configured.',
    source:
      'learn.microsoft.com/azure/aks/api-server-authorized-ip-ranges; learn.microsoft.com/azure/aks/private-clusters',
    check: (g) =>
      g.ofType(Z.aks).flatMap((c) => {
        const want = g.spec.azure.apiServerAuthorizedCidrs.includes('0.0.0.0/0')
          ? undefined
          : g.spec.azure.apiServerAuthorizedCidrs;
        const got = c.inputs.apiServerAccessProfile?.authorizedIPRanges;
        const out: string[] = [];
        if (JSON.stringify(got) !== JSON.stringify(want)) out.push(`authorizedIPRanges ${got}`);
        if (
          (c.inputs.apiServerAccessProfile?.enablePrivateCluster ?? false) !== g.spec.azure.privateApiServer
        )
          out.push('private cluster flag');
        return out;
      }),
  },
  {
    name: 'azure-vpn-gateway-zonal',
    types: [Z.gw, Z.pip],
    constraint:
      'A VpnGw*AZ gateway needs Standard, static, zone-redundant public IPs; active-active needs two of them and a GatewaySubnet of /27 or larger.',
    source:
      'learn.microsoft.com/azure/vpn-gateway/create-zone-redundant-vnet-gateway; learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-gateway-settings#gwsub',
    check: (g) =>
      g.ofType(Z.gw).flatMap((gw) => {
        const out: string[] = [];
        const pips = g.ofType(Z.pip).filter((p) => g.dependsOn(gw, p));
        if (gw.inputs.activeActive && pips.length !== 2)
          out.push(`${pips.length} public IPs for active-active`);
        for (const p of pips)
          if (
            p.inputs.sku?.name !== 'Standard' ||
            p.inputs.publicIPAllocationMethod !== 'Static' ||
            (p.inputs.zones ?? []).length < 3
          )
            out.push(`${p.name} not Standard/Static/zone-redundant`);
        const gws = parseCidr(g.spec.azure.gatewaySubnetCidr)!;
        if (gws.prefix > 27) out.push('GatewaySubnet smaller than /27');
        return out;
      }),
  },
  {
    name: 'azure-apipa-bgp-range',
    types: [Z.gw, Z.lng, Z.conn],
    constraint: 'Custom (APIPA) BGP addresses on an Azure VPN gateway lie in 169.254.21.0-169.254.22.255.',
    source: 'learn.microsoft.com/azure/vpn-gateway/bgp-howto ("APIPA")',
    check: (g) => {
      const ok = (ip: string) => /^169\.254\.(21|22)\.\d+$/.test(ip);
      const out: string[] = [];
      for (const gw of g.ofType(Z.gw))
        for (const b of gw.inputs.bgpSettings.bgpPeeringAddresses)
          for (const ip of b.customBgpIpAddresses) if (!ok(ip)) out.push(ip);
      for (const l of g.ofType(Z.lng))
        if (!ok(l.inputs.bgpSettings.bgpPeeringAddress)) out.push(l.inputs.bgpSettings.bgpPeeringAddress);
      return out;
    },
  },
  {
    name: 'azure-dns-label-unique',
    types: [K.svc],
    constraint:
      'service.beta.kubernetes.io/azure-dns-label-name is global within the region across all Azure customers (<label>.<region>.cloudapp.azure.com): it must match ^[a-z][a-z0-9-]{1,61}[a-z0-9]$ and carry a stack-unique suffix, not only the mesh name.',
    source:
      'learn.microsoft.com/azure/aks/static-ip#apply-a-dns-label-to-the-service; learn.microsoft.com/azure/virtual-network/ip-services/public-ip-addresses#dns-name-label',
    check: (g) =>
      inCloud(g, K.svc, 'azure').flatMap((s) => {
        const l = ann(s)['service.beta.kubernetes.io/azure-dns-label-name'];
        if (l === undefined) return [];
        const out: string[] = [];
        if (!/^[a-z][a-z0-9-]{1,61}[a-z0-9]$/.test(l)) out.push(`${l}: invalid label`);
        if (l === `${g.spec.mesh}-udp` || !/-[a-z0-9]{6,}$/.test(l)) out.push(`${l}: no stack-unique suffix`);
        return out;
      }),
  },
  // ---------------------------------------------------------------- Kubernetes objects
  {
    name: 'hpa-owns-replicas',
    types: [K.dep, K.hpa],
    constraint:
      "A Deployment scaled by an HPA does not set spec.replicas (server-side apply conflict with kube-controller-manager's /scale manager).",
    source: 'pulumi/pulumi-kubernetes #2491; pulumi/pulumi #13321',
    check: (g) =>
      g.ofType(K.hpa).flatMap((h) => {
        const target = g
          .ofType(K.dep)
          .find((d) => g.cloudOf(d) === g.cloudOf(h) && meta(d).name === h.inputs.spec.scaleTargetRef.name);
        return target && target.inputs.spec.replicas !== undefined ? [`${target.name} sets replicas`] : [];
      }),
  },
  {
    name: 'workloads-after-istiod',
    types: [K.dep, K.sts, K.release],
    constraint:
      "Pods in an injection-enabled namespace are created after istiod's release is ready, or they start without a sidecar until restarted.",
    source: 'istio.io/latest/docs/setup/additional-setup/sidecar-injection/',
    check: (g) =>
      [...g.ofType(K.dep), ...g.ofType(K.sts)]
        .filter((w) => w.custom)
        .flatMap((w) => {
          const istiod = g
            .ofType(K.release)
            .find((r) => r.inputs.chart === 'istiod' && g.cloudOf(r) === g.cloudOf(w));
          return istiod && !g.dependsOn(w, istiod) ? [`${w.name} may start before istiod`] : [];
        }),
  },
  {
    name: 'every-worker-port-open',
    types: [K.dep, K.np],
    constraint:
      'Each of `workers` processes binds replicationPort + i: every such port is a container port, bypasses the sidecar and is allowed by the NetworkPolicy.',
    source:
      'replicator/workers.ts (workerConfig); kubernetes.io/docs/concepts/services-networking/network-policies/#targeting-a-range-of-ports',
    check: (g) => {
      const out: string[] = [];
      const ports = replicationPorts(g);
      for (const d of replicatorDeployments(g)) {
        const c = d.inputs.spec.template.spec.containers[0];
        const excluded = excludedInbound(d);
        for (const p of ports) {
          if (!c.ports.some((x: any) => x.containerPort === p && x.protocol === 'UDP'))
            out.push(`${d.name}: no container port ${p}`);
          if (!excluded.includes(p)) out.push(`${d.name}: ${p} captured by the sidecar`);
        }
        const np = g
          .ofType(K.np)
          .find((n) => g.cloudOf(n) === g.cloudOf(d) && meta(n).name === 'udpmesh-replicator');
        for (const p of ports)
          if (!np?.inputs.spec.ingress.some((r: any) => allowsPort(r, 'UDP', p)))
            out.push(`${d.name}: NetworkPolicy blocks ${p}`);
      }
      return out;
    },
  },
  {
    name: 'etcd-members-spread',
    types: [K.sts, K.pdb],
    constraint:
      'etcd members of one cloud never share a node, and a PDB allows one voluntary disruption at a time.',
    source:
      'etcd.io/docs/v3.5/faq/#what-is-failure-tolerance; kubernetes.io/docs/tasks/run-application/configure-pdb/',
    check: (g) => {
      const out: string[] = [];
      for (const cloud of enabledClouds(g.spec)) {
        if (etcdLayout(g.spec)[cloud] === 0) continue;
        const pdb = inCloud(g, K.pdb, cloud).find((p) => meta(p).name === 'etcd');
        if (pdb?.inputs.spec.maxUnavailable !== 1) out.push(`${cloud}: no etcd PDB with maxUnavailable 1`);
        for (const s of inCloud(g, K.sts, cloud).filter(
          (x) => meta(x).labels?.['app.kubernetes.io/name'] === 'etcd',
        ))
          if (
            s.inputs.spec.template.spec.affinity?.podAntiAffinity
              ?.requiredDuringSchedulingIgnoredDuringExecution?.[0]?.topologyKey !== 'kubernetes.io/hostname'
          )
            out.push(`${s.name}: no required anti-affinity`);
      }
      return out;
    },
  },
  {
    name: 'pdb-allows-drain',
    types: [K.pdb],
    constraint:
      'No PDB blocks node drains forever (managed upgrades on EKS/GKE/AKS wait or fail): maxUnavailable >= 1.',
    source:
      'cloud.google.com/kubernetes-engine/docs/concepts/node-pool-upgrade-strategies; learn.microsoft.com/azure/aks/upgrade-cluster',
    check: (g) =>
      g
        .ofType(K.pdb)
        .filter((p) => !(p.inputs.spec.maxUnavailable >= 1))
        .map((p) => p.name),
  },
  {
    name: 'custom-resources-after-crds',
    types: ['kubernetes:*'],
    constraint:
      'Custom resources (UdpReplicator, PeerAuthentication, ServiceMonitor, PrometheusRule) depend on the CRD or chart that defines them.',
    source:
      'pulumi.com/registry/packages/kubernetes/how-to-guides/managing-resources-with-server-side-apply/ (CRD ordering)',
    check: (g) => {
      const out: string[] = [];
      const definers: Record<string, (n: GraphNode) => boolean> = {
        'udpmesh.io': (n) => n.type === K.crd,
        'security.istio.io': (n) => n.type === K.release && n.inputs.chart === 'base',
        'monitoring.coreos.com': (n) => n.type === K.release && n.inputs.chart === 'kube-prometheus-stack',
      };
      for (const n of g.nodes.values()) {
        const group = Object.keys(definers).find((k) => n.type.startsWith(`kubernetes:${k}/`));
        if (!group || !n.custom) continue;
        const def = [...g.nodes.values()].find((d) => definers[group](d) && g.cloudOf(d) === g.cloudOf(n));
        if (!def || !g.dependsOn(n, def)) out.push(`${n.name} does not depend on its definition`);
      }
      return out;
    },
  },
  // ---------------------------------------------------------------- monitoring
  {
    name: 'monitoring-managed-control-plane',
    types: [K.release],
    constraint:
      "On EKS/GKE/AKS the control plane (controller-manager, scheduler, etcd) and, under Dataplane V2 / EKS's localhost-bound metrics, kube-proxy are not scrapable: their scrapes and rules are off, or their Down alerts fire forever.",
    source:
      'prometheus-community/helm-charts #4106; kube-prometheus-stack values.yaml (kubeControllerManager, kubeScheduler, kubeEtcd, kubeProxy)',
    check: (g) =>
      g
        .ofType(K.release)
        .filter((r) => r.inputs.chart === 'kube-prometheus-stack')
        .flatMap((r) => {
          const v = r.inputs.values ?? {};
          return ['kubeControllerManager', 'kubeScheduler', 'kubeEtcd', 'kubeProxy']
            .filter((k) => v[k]?.enabled !== false)
            .map((k) => `${r.name}: ${k} enabled`);
        }),
  },
  {
    name: 'monitoring-etcd-rules-not-confused',
    types: [K.release, 'kubernetes:monitoring.coreos.com/v1:PrometheusRule'],
    constraint:
      "The chart's own etcd rules (for the Kubernetes etcd) are off, and udpmesh's etcd alerts have their own names and select only udpmesh's etcd job.",
    source:
      'kube-prometheus-stack values.yaml defaultRules.rules.etcd; templates/prometheus/rules-1.14/etcd.yaml',
    check: (g) => {
      const out: string[] = [];
      for (const r of g.ofType(K.release).filter((x) => x.inputs.chart === 'kube-prometheus-stack'))
        if (r.inputs.values?.defaultRules?.rules?.etcd !== false) out.push(`${r.name}: chart etcd rules on`);
      for (const pr of g.ofType('kubernetes:monitoring.coreos.com/v1:PrometheusRule'))
        for (const grp of pr.inputs.spec.groups)
          for (const rule of grp.rules) {
            if (/^etcd/.test(rule.alert)) out.push(`${rule.alert}: same name as a chart alert`);
            if (/(^|[^a-z_])etcd_/.test(rule.expr) && !rule.expr.includes('job="etcd"'))
              out.push(`${rule.alert}: selects any etcd job`);
          }
      return out;
    },
  },
  {
    name: 'monitoring-etcd-quorum-whole-cluster',
    types: ['kubernetes:monitoring.coreos.com/v1:PrometheusRule'],
    constraint:
      "Each cloud's Prometheus sees only its own members: the quorum alert compares what members see of the whole cluster (etcd_network_active_peers) with quorum of the configured total, not local up counts.",
    source: 'etcd.io/docs/v3.5/metrics/ (etcd_network_active_peers); etcd-io/etcd contrib/mixin',
    check: (g) => {
      const q = quorum(Object.values(etcdLayout(g.spec)).reduce((a, b) => a + b, 0));
      return g.ofType('kubernetes:monitoring.coreos.com/v1:PrometheusRule').flatMap((pr) => {
        const rules = pr.inputs.spec.groups.flatMap((x: any) => x.rules);
        const qr = rules.find((r: any) => r.alert === 'UdpmeshEtcdQuorumLost');
        const out: string[] = [];
        if (!qr || !qr.expr.includes('etcd_network_active_peers') || !qr.expr.includes(`< ${q}`))
          out.push(`${pr.name}: no whole-cluster quorum alert (< ${q})`);
        if (rules.some((r: any) => /count without \(instance, pod\) \(up/.test(r.expr)))
          out.push(`${pr.name}: a rule counts local members as the cluster`);
        return out;
      });
    },
  },
  {
    name: 'monitoring-storage-receivers-password',
    types: [K.release],
    constraint:
      "Prometheus and Alertmanager keep their data on PVCs (emptyDir makes retention meaningless), Alertmanager routes to the configured receivers, and Grafana's generated admin password is a secret stack output.",
    source:
      'prometheus-operator docs/platform/storage.md; prometheus.io/docs/alerting/latest/configuration/#receiver',
    check: (g) =>
      g
        .ofType(K.release)
        .filter((r) => r.inputs.chart === 'kube-prometheus-stack')
        .flatMap((r) => {
          const v = r.inputs.values;
          const out: string[] = [];
          const size =
            v.prometheus?.prometheusSpec?.storageSpec?.volumeClaimTemplate?.spec?.resources?.requests
              ?.storage;
          if (size !== g.spec.monitoring.storageSize) out.push('Prometheus without PVC storage');
          if (!v.alertmanager?.alertmanagerSpec?.storage?.volumeClaimTemplate)
            out.push('Alertmanager without PVC storage');
          const names = (v.alertmanager?.config?.receivers ?? []).map((x: any) => x.name);
          for (const rc of g.spec.monitoring.alertReceivers)
            if (!names.includes(rc.name)) out.push(`receiver ${rc.name} missing`);
          return out;
        }),
  },
  // ---------------------------------------------------------------- global DNS
  {
    name: 'route53-health-checked-weighted-records',
    types: [A.record, A.hc, K.svc],
    constraint:
      "One weighted A record per enabled cloud under one name, each tied to an HTTP health check of /readyz on the metrics port through that cloud's own UDP load balancer (which therefore also listens on TCP there); A records hold IPs, so the AWS NLB (a DNS name) is an alias, the others carry IPs and the configured TTL.",
    source:
      'docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-policy-weighted.html; docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-complex-configs.html; docs.aws.amazon.com/Route53/latest/DeveloperGuide/resource-record-sets-choosing-alias-non-alias.html',
    check: (g) => {
      const dns = g.spec.aws.globalDns;
      if (!dns) return g.ofType(A.record).length === 0 ? [] : ['records without aws.globalDns'];
      const out: string[] = [];
      const records = g.ofType(A.record);
      for (const cloud of enabledClouds(g.spec)) {
        const r = records.find((x) => x.inputs.setIdentifier === `${g.spec.mesh}-${cloud}`);
        if (!r) {
          out.push(`no record for ${cloud}`);
          continue;
        }
        if (
          r.inputs.name !== dns.name ||
          r.inputs.type !== 'A' ||
          r.inputs.weightedRoutingPolicies?.[0]?.weight !== 1
        )
          out.push(`${r.name}: not a weighted A record for ${dns.name}`);
        const hc = g.ofType(A.hc).find((h) => r.inputs.healthCheckId === `hc-${h.name}`);
        if (!hc) out.push(`${r.name}: no health check`);
        else {
          if (
            hc.inputs.type !== 'HTTP' ||
            hc.inputs.resourcePath !== '/readyz' ||
            hc.inputs.port !== g.spec.replicator.metricsPort
          )
            out.push(`${hc.name}: does not ask the replicator's /readyz`);
          const target = hc.inputs.ipAddress ?? hc.inputs.fqdn;
          const aliasOrIp = cloud === 'aws' ? r.inputs.aliases?.[0]?.name : r.inputs.records?.[0];
          if (!target || target !== aliasOrIp)
            out.push(`${hc.name}: checks ${target}, record points at ${aliasOrIp}`);
        }
        if (cloud === 'aws') {
          if (!r.inputs.aliases?.[0]?.evaluateTargetHealth)
            out.push('AWS record is not an alias evaluating target health');
        } else {
          if (!/^\d+\.\d+\.\d+\.\d+$/.test(r.inputs.records?.[0] ?? ''))
            out.push(`${r.name}: A record without an IP`);
          if (r.inputs.ttl !== dns.ttl) out.push(`${r.name}: ttl ${r.inputs.ttl}`);
        }
        const svc = inCloud(g, K.svc, cloud).find((x) => meta(x).name === 'udpmesh-ingress');
        if (
          !svc?.inputs.spec.ports.some(
            (p: any) => p.protocol === 'TCP' && p.port === g.spec.replicator.metricsPort,
          )
        )
          out.push(`${cloud}: the UDP load balancer does not serve the health port`);
      }
      if (new Set(records.map((r) => r.inputs.setIdentifier)).size !== records.length)
        out.push('duplicate set identifiers');
      return out;
    },
  },
  // ---------------------------------------------------------------- stack-wide
  {
    name: 'k8s-provider-after-nodes',
    types: ['pulumi:providers:kubernetes', A.nodeGroup, G.pool, Z.aks],
    constraint:
      "Each cluster's Kubernetes provider is used only once nodes exist (pods and webhooks need somewhere to run).",
    source: 'pulumi.com/registry/packages/eks (node group ordering); Helm releases wait for ready pods',
    check: (g) =>
      g.ofType('pulumi:providers:kubernetes').flatMap((p) => {
        const cloud = g.cloudOf(p);
        const nodes =
          cloud === 'aws'
            ? g.ofType(A.nodeGroup)
            : cloud === 'gcp'
              ? g.ofType(G.pool)
              : cloud === 'azure'
                ? g.ofType(Z.aks)
                : [];
        return nodes.filter((n) => !g.dependsOn(p, n)).map((n) => `${p.name} before ${n.name}`);
      }),
  },
];

/** Names in scopes shared by every stack of one organisation (account/project/subscription, region). */
export function sharedScopeNames(g: ResourceGraph): string[] {
  const out: string[] = [];
  for (const n of g.nodes.values()) {
    if (!n.custom) continue;
    const i = n.inputs;
    if (n.type === A.cluster) out.push(`eks:${g.spec.aws.region}:${i.name}`);
    if (n.type.startsWith('gcp:compute') || n.type.startsWith('gcp:container'))
      if (typeof i.name === 'string') out.push(`gcp:${g.spec.gcp.project}:${n.type}:${i.name}`);
    if (n.type === G.sa) out.push(`gcp:${g.spec.gcp.project}:sa:${i.accountId}`);
    if (n.type === 'azure-native:resources:ResourceGroup') out.push(`azure:rg:${i.resourceGroupName}`);
    if (n.type === K.svc && ann(n)['service.beta.kubernetes.io/azure-dns-label-name'])
      out.push(
        `azure:dns:${g.spec.azure.location}:${ann(n)['service.beta.kubernetes.io/azure-dns-label-name']}`,
      );
    if (n.type === A.record) out.push(`route53:${i.zoneId}:${i.name}:${i.setIdentifier}`);
  }
  return out;
}
