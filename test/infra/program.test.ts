// The Pulumi program under mocks, for every non-empty subset of clouds.
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import type { Cloud, StackConfig } from '../../infra/config/schema.ts';
import {
  CLOUDS,
  cloudsBreakingQuorum,
  etcdLayout,
  parseStackConfig,
  quorum,
} from '../../infra/config/schema.ts';
import { cidrsOverlap, parseCidr } from '../../infra/config/cidr.ts';
import { etcdMembers } from '../../infra/config/network.ts';
import { planInterconnect } from '../../infra/interconnect/plan.ts';
import { clusterManifests } from '../../infra/manifests/index.ts';
import { parseUdpmeshOutputs, SECRET_OUTPUTS } from '../../infra/outputs.ts';
import type { RunResult } from './harness.ts';
import { ofType, promiseOf, runProgram, worstCaseRandom } from './harness.ts';

const subsets: Cloud[][] = [];
for (let mask = 1; mask < 8; mask++) subsets.push(CLOUDS.filter((_, i) => mask & (1 << i)));

function specFor(clouds: Cloud[]): StackConfig {
  // Two clouds cannot keep etcd quorum through the loss of either; such stacks must opt in explicitly.
  return parseStackConfig({
    clouds,
    etcd: clouds.length === 2 ? { allowQuorumLossOnCloudFailure: true } : {},
  });
}

const CLUSTER_TYPES: Record<Cloud, string> = {
  aws: 'aws:eks/cluster:Cluster',
  gcp: 'gcp:container/cluster:Cluster',
  azure: 'azure-native:containerservice:ManagedCluster',
};

describe('infra program (mocks): every subset of clouds', function () {
  this.timeout(120_000);
  for (const clouds of subsets) {
    describe(clouds.join('+'), () => {
      let spec: StackConfig;
      let run: RunResult;
      before(async () => {
        spec = specFor(clouds);
        run = await runProgram(spec);
      });

      it('creates exactly the expected clusters, node pools and k8s providers', () => {
        for (const c of CLOUDS)
          assert.equal(ofType(run, CLUSTER_TYPES[c]).length, clouds.includes(c) ? 1 : 0, c);
        assert.equal(ofType(run, 'aws:eks/nodeGroup:NodeGroup').length, clouds.includes('aws') ? 1 : 0);
        assert.equal(ofType(run, 'gcp:container/nodePool:NodePool').length, clouds.includes('gcp') ? 1 : 0);
        assert.equal(ofType(run, 'pulumi:providers:kubernetes').length, clouds.length);
        // AKS may create internal load balancers in its BYO VNet (the deployer's AKS RBAC role is the other).
        const ra = ofType(run, 'azure-native:authorization:RoleAssignment').filter((r) =>
          r.name.endsWith('-network-contributor'),
        );
        assert.equal(ra.length, clouds.includes('azure') ? 1 : 0);
        for (const r of ra) {
          assert.equal(r.inputs.principalId, 'aks-principal');
          assert.match(
            r.inputs.roleDefinitionId,
            /^\/subscriptions\/sub\/providers\/Microsoft.Authorization\/roleDefinitions\/4d97b98b-/,
          );
        }
      });

      it('builds one VPN + BGP link set per pair of clouds', () => {
        const n = clouds.length;
        const pairs = (n * (n - 1)) / 2;
        const links = planInterconnect(spec);
        assert.equal(links.length, pairs);
        const has = (a: Cloud, b: Cloud) => clouds.includes(a) && clouds.includes(b);
        // AWS side: 2 VPN connections (4 tunnels) per peer cloud.
        assert.equal(
          ofType(run, 'aws:ec2/vpnConnection:VpnConnection').length,
          2 * (Number(has('aws', 'gcp')) + Number(has('aws', 'azure'))),
        );
        assert.equal(
          ofType(run, 'aws:ec2/customerGateway:CustomerGateway').length,
          2 * (Number(has('aws', 'gcp')) + Number(has('aws', 'azure'))),
        );
        assert.equal(
          ofType(run, 'aws:ec2/vpnGateway:VpnGateway').length,
          has('aws', 'gcp') || has('aws', 'azure') ? 1 : 0,
        );
        // GCP side: one external gateway per peer, 4 tunnels to AWS, 2 to Azure, each with interface + BGP peer.
        const gcpTunnels = 4 * Number(has('aws', 'gcp')) + 2 * Number(has('gcp', 'azure'));
        assert.equal(
          ofType(run, 'gcp:compute/externalVpnGateway:ExternalVpnGateway').length,
          Number(has('aws', 'gcp')) + Number(has('gcp', 'azure')),
        );
        assert.equal(ofType(run, 'gcp:compute/vPNTunnel:VPNTunnel').length, gcpTunnels);
        assert.equal(ofType(run, 'gcp:compute/routerInterface:RouterInterface').length, gcpTunnels);
        assert.equal(ofType(run, 'gcp:compute/routerPeer:RouterPeer').length, gcpTunnels);
        // Azure side: an active-active gateway, one local network gateway + connection per tunnel.
        const azTunnels = 4 * Number(has('aws', 'azure')) + 2 * Number(has('gcp', 'azure'));
        assert.equal(ofType(run, 'azure-native:network:LocalNetworkGateway').length, azTunnels);
        assert.equal(ofType(run, 'azure-native:network:VirtualNetworkGatewayConnection').length, azTunnels);
        const gws = ofType(run, 'azure-native:network:VirtualNetworkGateway');
        assert.equal(gws.length, azTunnels > 0 ? 1 : 0);
        for (const gw of gws) {
          assert.equal(gw.inputs.activeActive, true);
          assert.equal(gw.inputs.enableBgp, true);
        }
        // Every tunnel has a generated pre-shared key.
        const psks = ofType(run, 'random:index/randomPassword:RandomPassword').filter((r) =>
          r.name.includes('-psk-'),
        );
        assert.equal(
          psks.length,
          links.reduce((s, l) => s + l.tunnels.length, 0),
        );
      });

      it('uses unique ASNs and disjoint APIPA inside ranges', () => {
        const asns = new Set<number>();
        for (const c of clouds) asns.add(spec[c].asn);
        assert.equal(asns.size, clouds.length);
        const peers = ofType(run, 'gcp:compute/routerPeer:RouterPeer');
        for (const p of peers) assert.notEqual(p.inputs.peerAsn, spec.gcp.asn);
        const inside = planInterconnect(spec).flatMap((l) => l.tunnels.map((t) => t.insideCidr));
        const parsed = inside.map((c) => parseCidr(c)!);
        for (let i = 0; i < parsed.length; i++) {
          assert.ok(parsed[i].prefix === 30 && parsed[i].text.startsWith('169.254.'));
          for (let j = i + 1; j < parsed.length; j++)
            assert.ok(!cidrsOverlap(parsed[i], parsed[j]), `${inside[i]} vs ${inside[j]}`);
        }
        // Registered AWS tunnels carry exactly the planned inside ranges.
        const awsInside = ofType(run, 'aws:ec2/vpnConnection:VpnConnection').flatMap((v) => [
          v.inputs.tunnel1InsideCidr,
          v.inputs.tunnel2InsideCidr,
        ]);
        for (const c of awsInside) assert.ok(inside.includes(c));
      });

      it('addresses every BGP session inside its tunnel /30 (Azure within 169.254.21-22.x)', () => {
        const ifaces = ofType(run, 'gcp:compute/routerInterface:RouterInterface');
        const peers = ofType(run, 'gcp:compute/routerPeer:RouterPeer');
        for (const iface of ifaces) {
          const suffix = iface.name.replace(/.*-if/, '');
          const peer = peers.find((p) => p.name === iface.name.replace(/-if(\d+)$/, '-peer$1'));
          assert.ok(peer, `peer for ${iface.name} (${suffix})`);
          const range = parseCidr(
            iface.inputs.ipRange.replace(/\.\d+\/30$/, (m: string) => `.${Number(m.slice(1, -3)) & ~3}/30`),
          )!;
          const peerIp = parseCidr(`${peer.inputs.peerIpAddress}/32`)!;
          assert.ok(
            range.start <= peerIp.start && peerIp.end <= range.end,
            `${peer.inputs.peerIpAddress} outside ${iface.inputs.ipRange}`,
          );
          assert.notEqual(iface.inputs.ipRange.split('/')[0], peer.inputs.peerIpAddress);
        }
        // Each GCP interface holds exactly GCP's planned address; AWS keeps the first host of its /30s.
        const gcpAddrs = planInterconnect(spec).flatMap((l) =>
          l.tunnels.flatMap((t) => (l.a === 'gcp' ? [t.aAddress] : l.b === 'gcp' ? [t.bAddress] : [])),
        );
        assert.deepEqual(ifaces.map((i) => i.inputs.ipRange.split('/')[0]).sort(), [...gcpAddrs].sort());
        for (const i of ifaces)
          assert.ok(
            !(
              clouds.includes('aws') &&
              /^169\.254\.10\.\d+$/.test(i.inputs.ipRange) &&
              Number(i.inputs.ipRange.split('/')[0].split('.')[3]) % 4 === 1
            ),
            `GCP took AWS's address ${i.inputs.ipRange}`,
          );
        const apipa = (ip: string) => /^169\.254\.(21|22)\.\d+$/.test(ip);
        for (const gw of ofType(run, 'azure-native:network:VirtualNetworkGateway')) {
          assert.equal(gw.inputs.bgpSettings.asn, spec.azure.asn);
          const addrs = gw.inputs.bgpSettings.bgpPeeringAddresses.flatMap(
            (b: { customBgpIpAddresses: string[] }) => b.customBgpIpAddresses,
          );
          assert.ok(addrs.length > 0 && addrs.every(apipa), addrs.join(','));
          assert.equal(new Set(addrs).size, addrs.length);
        }
        for (const lng of ofType(run, 'azure-native:network:LocalNetworkGateway')) {
          assert.notEqual(lng.inputs.bgpSettings.asn, spec.azure.asn);
          assert.ok(apipa(lng.inputs.bgpSettings.bgpPeeringAddress));
        }
        for (const c of ofType(run, 'azure-native:network:VirtualNetworkGatewayConnection')) {
          assert.equal(c.inputs.enableBgp, true);
          assert.ok(apipa(c.inputs.gatewayCustomBgpIpAddresses[0].customBgpIpAddress));
        }
        for (const cg of ofType(run, 'aws:ec2/customerGateway:CustomerGateway'))
          assert.notEqual(Number(cg.inputs.bgpAsn), spec.aws.asn);
      });

      it('has no overlapping network ranges between clouds', () => {
        const ranges: string[] = [];
        for (const r of ofType(run, 'aws:ec2/vpc:Vpc')) ranges.push(r.inputs.cidrBlock);
        for (const r of ofType(run, 'aws:eks/cluster:Cluster'))
          ranges.push(r.inputs.kubernetesNetworkConfig.serviceIpv4Cidr);
        for (const r of ofType(run, 'gcp:compute/subnetwork:Subnetwork')) {
          ranges.push(
            r.inputs.ipCidrRange,
            ...r.inputs.secondaryIpRanges.map((s: { ipCidrRange: string }) => s.ipCidrRange),
          );
        }
        for (const r of ofType(run, 'azure-native:network:VirtualNetwork'))
          ranges.push(...r.inputs.addressSpace.addressPrefixes);
        for (const r of ofType(run, 'azure-native:containerservice:ManagedCluster'))
          ranges.push(r.inputs.networkProfile.serviceCidr);
        assert.ok(ranges.length >= clouds.length * 2);
        const parsed = ranges.map((c) => parseCidr(c)!);
        for (let i = 0; i < parsed.length; i++)
          for (let j = i + 1; j < parsed.length; j++)
            assert.ok(!cidrsOverlap(parsed[i], parsed[j]), `${ranges[i]} vs ${ranges[j]}`);
      });

      it('spreads etcd members so losing any one cloud keeps quorum (multi-cloud with 3 clouds)', () => {
        const sts = ofType(run, 'kubernetes:apps/v1:StatefulSet').filter(
          (s) => s.inputs.metadata.labels['app.kubernetes.io/name'] === 'etcd',
        );
        const perCloud: Record<Cloud, number> = { aws: 0, gcp: 0, azure: 0 };
        for (const s of sts)
          perCloud[s.inputs.metadata.labels['udpmesh.io/cloud'] as Cloud] += s.inputs.spec.replicas;
        const total = sts.reduce((n, s) => n + s.inputs.spec.replicas, 0);
        assert.deepEqual(perCloud, etcdLayout(spec));
        assert.ok(total >= 3 && total % 2 === 1);
        // Every member lists the same initial cluster with every member in it.
        const initial = sts.map((s) =>
          s.inputs.spec.template.spec.containers[0].command.find((f: string) =>
            f.startsWith('--initial-cluster='),
          ),
        );
        assert.equal(new Set(initial).size, 1);
        assert.equal(initial[0].split(',').length, total);
        if (clouds.length === 1) assert.equal(total, 3);
        else if (clouds.length === 3) assert.deepEqual(cloudsBreakingQuorum(perCloud, clouds), []);
        else {
          // Two clouds: impossible for both; at least the minority cloud can be lost.
          assert.equal(cloudsBreakingQuorum(perCloud, clouds).length, 1);
          assert.ok(Math.min(...clouds.map((c) => total - perCloud[c])) < quorum(total));
        }
      });

      it("exposes a UDP LoadBalancer per cloud with that cloud's annotations", () => {
        const svcs = ofType(run, 'kubernetes:core/v1:Service').filter(
          (s) => s.inputs.metadata.name === 'udpmesh-ingress',
        );
        assert.equal(svcs.length, clouds.length);
        for (const s of svcs) {
          const cloud = s.inputs.metadata.labels['udpmesh.io/cloud'] as Cloud;
          const ann = s.inputs.metadata.annotations;
          assert.equal(s.inputs.spec.type, 'LoadBalancer');
          for (const p of s.inputs.spec.ports) assert.equal(p.protocol, 'UDP');
          if (cloud === 'aws') {
            assert.equal(ann['service.beta.kubernetes.io/aws-load-balancer-type'], 'external');
            assert.equal(ann['service.beta.kubernetes.io/aws-load-balancer-scheme'], 'internet-facing');
            assert.equal(ann['service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol'], 'HTTP');
            assert.equal(
              ann['service.beta.kubernetes.io/aws-load-balancer-healthcheck-port'],
              String(spec.replicator.metricsPort),
            );
          } else if (cloud === 'gcp') {
            assert.equal(ann['cloud.google.com/l4-rbs'], 'enabled');
          } else {
            assert.equal(s.inputs.spec.externalTrafficPolicy, 'Local');
          }
          for (const key of Object.keys(ann)) {
            if (cloud !== 'aws') assert.ok(!key.includes('aws-load-balancer'), key);
            if (cloud !== 'gcp') assert.ok(!key.startsWith('cloud.google.com'), key);
            if (cloud !== 'azure') assert.ok(!key.includes('azure'), key);
          }
        }
      });

      it('never exposes etcd to the internet', () => {
        const etcdSvcs = ofType(run, 'kubernetes:core/v1:Service').filter(
          (s) => s.inputs.metadata.labels['app.kubernetes.io/name'] === 'etcd',
        );
        assert.ok(etcdSvcs.length > 0);
        for (const s of etcdSvcs) {
          if (s.inputs.spec.type !== 'LoadBalancer') {
            assert.equal(s.inputs.spec.clusterIP, 'None');
            continue;
          }
          const ann = s.inputs.metadata.annotations;
          const cloud = s.inputs.metadata.labels['udpmesh.io/cloud'];
          if (cloud === 'aws')
            assert.equal(ann['service.beta.kubernetes.io/aws-load-balancer-scheme'], 'internal');
          if (cloud === 'gcp') assert.equal(ann['networking.gke.io/load-balancer-type'], 'Internal');
          if (cloud === 'azure')
            assert.equal(ann['service.beta.kubernetes.io/azure-load-balancer-internal'], 'true');
          for (const r of s.inputs.spec.loadBalancerSourceRanges) {
            const c = parseCidr(r)!;
            assert.ok(c.prefix >= 8 && r.startsWith('10.'), `etcd source range ${r} is not private`);
          }
        }
        for (const n of ofType(run, 'kubernetes:networking.k8s.io/v1:NetworkPolicy').filter(
          (x) => x.inputs.metadata.name === 'etcd',
        )) {
          for (const rule of n.inputs.spec.ingress) {
            for (const from of rule.from ?? [])
              if (from.ipBlock) assert.notEqual(from.ipBlock.cidr, '0.0.0.0/0');
            if (!rule.from)
              assert.ok(
                rule.ports.every(
                  (p: { port: number }) => p.port !== spec.etcd.clientPort && p.port !== spec.etcd.peerPort,
                ),
              );
          }
        }
      });

      it('gives every container requests, limits and probes', () => {
        const workloads = [
          ...ofType(run, 'kubernetes:apps/v1:Deployment'),
          ...ofType(run, 'kubernetes:apps/v1:StatefulSet'),
        ];
        assert.equal(workloads.length, clouds.length + etcdMembers(spec).length);
        for (const w of workloads) {
          for (const c of w.inputs.spec.template.spec.containers) {
            assert.ok(
              c.resources?.requests?.cpu && c.resources?.requests?.memory,
              `${w.name}/${c.name} requests`,
            );
            assert.ok(c.resources?.limits?.cpu && c.resources?.limits?.memory, `${w.name}/${c.name} limits`);
            assert.ok(c.livenessProbe && c.readinessProbe, `${w.name}/${c.name} probes`);
          }
        }
      });

      it('deploys the replicator with drain, spread, budget, autoscaling, policy and the UDP/mTLS split', () => {
        const ns = spec.namespace;
        const byKind = (type: string, name: string) =>
          ofType(run, type).filter(
            (x) => x.inputs.metadata.name === name && x.inputs.metadata.namespace === ns,
          );
        const deps = byKind('kubernetes:apps/v1:Deployment', 'udpmesh-replicator');
        assert.equal(deps.length, clouds.length);
        for (const d of deps) {
          const pod = d.inputs.spec.template;
          assert.ok(pod.spec.terminationGracePeriodSeconds * 1000 > spec.replicator.drainDeadlineMs);
          assert.ok(pod.spec.affinity.podAntiAffinity);
          const udp = [...spec.replicator.ingressPorts, spec.replicator.replicationPort].join(',');
          // Inbound also bypasses the sidecar on the health/metrics port, so LB checks reach the replicator.
          assert.equal(
            pod.metadata.annotations['traffic.sidecar.istio.io/excludeInboundPorts'],
            `${udp},${spec.replicator.metricsPort}`,
          );
          assert.equal(pod.metadata.annotations['traffic.sidecar.istio.io/excludeOutboundPorts'], udp);
          const c = pod.spec.containers[0];
          assert.deepEqual(c.command.slice(-2), ['--config', '/etc/udpmesh/config.yaml']);
          const env = Object.fromEntries(c.env.map((e: { name: string }) => [e.name, e]));
          assert.equal(env.UDPMESH_INSTANCE.valueFrom.fieldRef.fieldPath, 'metadata.name');
          assert.equal(
            env.UDPMESH_REPLICATION__ADVERTISE_ADDRESS.valueFrom.fieldRef.fieldPath,
            'status.podIP',
          );
          assert.equal(env.UDPMESH_CLUSTER_KEY.valueFrom.secretKeyRef.name, 'udpmesh-cluster-key');
          assert.equal(pod.spec.securityContext.runAsNonRoot, true);
        }
        assert.equal(
          byKind('kubernetes:policy/v1:PodDisruptionBudget', 'udpmesh-replicator').length,
          clouds.length,
        );
        for (const h of byKind('kubernetes:autoscaling/v2:HorizontalPodAutoscaler', 'udpmesh-replicator')) {
          assert.equal(h.inputs.spec.minReplicas, spec.replicator.replicas);
          assert.equal(h.inputs.spec.maxReplicas, spec.replicator.maxReplicas);
        }
        assert.equal(
          byKind('kubernetes:networking.k8s.io/v1:NetworkPolicy', 'udpmesh-replicator').length,
          clouds.length,
        );
        const pa = byKind('kubernetes:security.istio.io/v1:PeerAuthentication', 'default');
        assert.equal(pa.length, clouds.length);
        for (const p of pa) assert.equal(p.inputs.spec.mtls.mode, 'STRICT');
        const roles = byKind('kubernetes:rbac.authorization.k8s.io/v1:Role', 'udpmesh-replicator-status');
        for (const r of roles) {
          const rule = r.inputs.rules.find((x: { resources: string[] }) =>
            x.resources.includes('udpreplicators/status'),
          );
          assert.deepEqual(rule.verbs.sort(), ['get', 'patch']);
        }
        const crs = ofType(run, 'kubernetes:udpmesh.io/v1alpha1:UdpReplicator');
        assert.deepEqual(crs.map((c) => c.inputs.metadata.name).sort(), [...clouds].sort());
        // Istio and (when enabled) kube-prometheus-stack are Helm releases in every cluster.
        const releases = ofType(run, 'kubernetes:helm.sh/v3:Release').map((r) => r.inputs.chart);
        assert.equal(releases.filter((c) => c === 'istiod').length, clouds.length);
        assert.equal(releases.filter((c) => c === 'base').length, clouds.length);
        assert.equal(releases.filter((c) => c === 'kube-prometheus-stack').length, clouds.length);
        assert.equal(
          ofType(run, 'kubernetes:monitoring.coreos.com/v1:ServiceMonitor').length,
          2 * clouds.length,
        );
        assert.equal(ofType(run, 'kubernetes:monitoring.coreos.com/v1:PrometheusRule').length, clouds.length);
      });

      it('keeps every secret a Pulumi secret', async () => {
        const secrets = run.props.filter((p) => p.type === 'kubernetes:core/v1:Secret');
        assert.ok(secrets.length >= 2);
        for (const s of secrets)
          assert.equal(await pulumi.isSecret(pulumi.output(s.props.stringData)), true, s.name);
        for (const p of run.props.filter((x) => x.type === 'aws:ec2/vpnConnection:VpnConnection')) {
          assert.equal(await pulumi.isSecret(pulumi.output(p.props.tunnel1PresharedKey)), true);
          assert.equal(await pulumi.isSecret(pulumi.output(p.props.tunnel2PresharedKey)), true);
        }
        for (const p of run.props.filter((x) => x.type === 'gcp:compute/vPNTunnel:VPNTunnel'))
          assert.equal(await pulumi.isSecret(pulumi.output(p.props.sharedSecret)), true);
        for (const p of run.props.filter(
          (x) => x.type === 'azure-native:network:VirtualNetworkGatewayConnection',
        ))
          assert.equal(await pulumi.isSecret(pulumi.output(p.props.sharedKey)), true);
        for (const p of run.props.filter((x) => x.type === 'pulumi:providers:kubernetes'))
          assert.equal(await pulumi.isSecret(pulumi.output(p.props.kubeconfig)), true);
        for (const p of run.props.filter(
          (x) => x.type === 'kubernetes:helm.sh/v3:Release' && x.name.includes('kube-prometheus-stack'),
        )) {
          const values = p.props.values as { grafana: { adminPassword: pulumi.Output<string> } };
          assert.equal(await pulumi.isSecret(values.grafana.adminPassword), true);
        }
        for (const name of SECRET_OUTPUTS) {
          const o = run.rawOutputs[name];
          if (o !== undefined) assert.equal(await pulumi.isSecret(pulumi.output(o)), true, name);
        }
      });

      it('returns outputs matching the documented contract', () => {
        const parsed = parseUdpmeshOutputs(run.outputs);
        assert.deepEqual(parsed.clouds, clouds);
        for (const c of CLOUDS) {
          assert.equal(run.outputs[`${c}UdpEndpoint`] !== undefined, clouds.includes(c));
          assert.equal(run.outputs[`${c}Kubeconfig`] !== undefined, clouds.includes(c));
        }
        assert.deepEqual(
          parsed.etcdClientEndpoints,
          etcdMembers(spec).map((m) => m.clientUrl),
        );
        assert.ok(parsed.grafanaUrl);
      });

      it('registers exactly the objects the manifest function renders', async () => {
        for (const cloud of clouds) {
          const pw = (n: string) => worstCaseRandom(n, { length: 64, special: false });
          const pem = (kind: string, n: string) => `-----BEGIN ${kind}-----\n${n}\n-----END ${kind}-----\n`;
          const members = Object.fromEntries(
            etcdMembers(spec)
              .filter((m) => m.cloud === cloud)
              .map((m) => [
                m.name,
                {
                  cert: pem('CERTIFICATE', `etcd-pki-${m.name}-cert`),
                  key: pem('PRIVATE KEY', `etcd-pki-${m.name}-key`),
                  peerClientCert: pem('CERTIFICATE', `etcd-pki-${m.name}-peer-client-cert`),
                  peerClientKey: pem('PRIVATE KEY', `etcd-pki-${m.name}-peer-client-key`),
                },
              ]),
          );
          const expected = clusterManifests(spec, cloud, {
            clusterKey: pw('cluster-key'),
            etcdCaCert: pem('CERTIFICATE', 'etcd-pki-ca'),
            etcdMembers: members,
            etcdClient: {
              cert: pem('CERTIFICATE', 'etcd-pki-replicator-client-cert'),
              key: pem('PRIVATE KEY', 'etcd-pki-replicator-client-key'),
            },
          });
          const registered = run.resources.filter(
            (r) =>
              r.type.startsWith('kubernetes:') &&
              !r.type.startsWith('kubernetes:helm') &&
              r.name.startsWith(`${cloud}-workloads-`),
          );
          assert.equal(registered.length, expected.length, cloud);
          for (const obj of expected) {
            const match = registered.find(
              (r) =>
                r.inputs.kind === obj.kind &&
                r.inputs.metadata?.name === obj.metadata.name &&
                r.inputs.metadata?.namespace === obj.metadata.namespace,
            );
            assert.ok(match, `${cloud}: ${obj.kind}/${obj.metadata.name} not registered`);
            assert.deepEqual(JSON.parse(JSON.stringify(match.inputs)), JSON.parse(JSON.stringify(obj)));
            assert.ok(
              match.provider.includes(`${cloud}-k8s`),
              `${obj.kind}/${obj.metadata.name} deployed through ${cloud}'s provider`,
            );
          }
        }
        // Everything in a cluster (Helm releases included) goes through that cluster's k8s.Provider.
        for (const r of run.resources.filter((x) => x.type.startsWith('kubernetes:'))) {
          const cloud = clouds.find((c) => r.name.startsWith(`${c}-`));
          assert.ok(
            cloud && r.provider.includes(`::${cloud}-k8s::`),
            `${r.type} ${r.name} via ${r.provider}`,
          );
        }
        assert.ok(await promiseOf(run.outputs.contractVersion as string));
      });
    });
  }
});
