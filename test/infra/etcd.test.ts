/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped JSON */
// etcd manifests across clusters: peer TLS that survives etcd's remote-IP SAN check, one node drain never
// taking two members of a cloud, and the documented replacement of a lost member (member add + existing).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Cloud, StackConfig } from '../../infra/config/schema.ts';
import { parseStackConfig, StackConfigError } from '../../infra/config/schema.ts';
import { etcdMembers } from '../../infra/config/network.ts';
import { clusterManifests, placeholderSecrets } from '../../infra/manifests/index.ts';
import type { K8sObject } from '../../infra/manifests/index.ts';
import { ofType, runProgram } from './harness.ts';

const three = (extra: Record<string, unknown> = {}): StackConfig =>
  parseStackConfig({
    clouds: ['aws', 'gcp', 'azure'],
    etcd: { layout: { aws: 2, gcp: 2, azure: 1 }, ...extra },
  });

function objs(spec: StackConfig, cloud: Cloud): K8sObject[] {
  return clusterManifests(spec, cloud, placeholderSecrets(spec, cloud));
}
function flagsOf(sts: K8sObject): string[] {
  return (sts as any).spec.template.spec.containers[0].command as string[];
}
const etcdSets = (o: K8sObject[]) =>
  o.filter((x) => x.kind === 'StatefulSet' && x.metadata.labels?.['app.kubernetes.io/name'] === 'etcd');

describe('etcd manifests', () => {
  it('peers present a SAN-less client certificate restricted by CN (etcd checkSAN passes whatever the remote IP)', () => {
    const spec = three();
    for (const cloud of ['aws', 'gcp', 'azure'] as Cloud[]) {
      for (const sts of etcdSets(objs(spec, cloud))) {
        const f = flagsOf(sts);
        assert.ok(f.includes('--peer-client-cert-file=/etc/etcd/tls/peer-client.crt'), sts.metadata.name);
        assert.ok(f.includes('--peer-client-key-file=/etc/etcd/tls/peer-client.key'));
        assert.ok(f.includes(`--peer-cert-allowed-cn=${spec.mesh}-etcd-peer`));
        assert.ok(f.includes('--peer-client-cert-auth=true'));
        const secret = objs(spec, cloud).find(
          (o) => o.kind === 'Secret' && o.metadata.name === `${sts.metadata.name}-tls`,
        )!;
        assert.ok(
          'peer-client.crt' in (secret.stringData as object) &&
            'peer-client.key' in (secret.stringData as object),
        );
      }
    }
  });

  it('the program issues each member a peer client certificate without any IP or DNS SAN', async function () {
    this.timeout(60_000);
    const spec = three();
    const run = await runProgram(spec);
    const csrs = ofType(run, 'tls:index/certRequest:CertRequest');
    for (const m of etcdMembers(spec)) {
      const peer = csrs.find((c) => c.name === `etcd-pki-${m.name}-peer-client-csr`);
      assert.ok(peer, `${m.name} peer client CSR`);
      assert.equal(peer.inputs.subject.commonName, `${spec.mesh}-etcd-peer`);
      assert.deepEqual(peer.inputs.ipAddresses ?? [], []);
      assert.deepEqual(peer.inputs.dnsNames ?? [], []);
      const server = csrs.find((c) => c.name === `etcd-pki-${m.name}-csr`)!;
      assert.ok(server.inputs.ipAddresses.includes(m.address));
    }
    for (const c of ofType(run, 'tls:index/locallySignedCert:LocallySignedCert').filter((x) =>
      x.name.includes('-peer-client-'),
    ))
      assert.deepEqual(c.inputs.allowedUses.sort(), ['client_auth', 'digital_signature', 'key_encipherment']);
  });

  it('members of one cloud never share a node, prefer distinct zones, and a PDB lets one go at a time', () => {
    const spec = three();
    for (const cloud of ['aws', 'gcp'] as Cloud[]) {
      const o = objs(spec, cloud);
      for (const sts of etcdSets(o)) {
        const aff = (sts as any).spec.template.spec.affinity.podAntiAffinity;
        const req = aff.requiredDuringSchedulingIgnoredDuringExecution[0];
        assert.equal(req.topologyKey, 'kubernetes.io/hostname');
        assert.deepEqual(req.labelSelector.matchLabels, {
          'app.kubernetes.io/name': 'etcd',
          'app.kubernetes.io/part-of': 'udpmesh',
        });
        assert.equal(
          aff.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey,
          'topology.kubernetes.io/zone',
        );
      }
      const pdb = o.find((x) => x.kind === 'PodDisruptionBudget' && x.metadata.name === 'etcd') as any;
      assert.ok(pdb, `${cloud} etcd PDB`);
      assert.equal(pdb.spec.maxUnavailable, 1);
      assert.deepEqual(pdb.spec.selector.matchLabels, {
        'app.kubernetes.io/name': 'etcd',
        'app.kubernetes.io/part-of': 'udpmesh',
      });
    }
  });

  it('bootstraps with initial-cluster-state=new; a member listed in etcd.replaceMembers joins as existing', () => {
    const plain = three();
    for (const sts of etcdSets(objs(plain, 'aws')))
      assert.ok(flagsOf(sts).includes('--initial-cluster-state=new'));
    const spec = three({ replaceMembers: ['etcd-aws-1'] });
    const sets = etcdSets(objs(spec, 'aws'));
    const state = (n: string) =>
      flagsOf(sets.find((s) => s.metadata.name === n)!).find((f) => f.startsWith('--initial-cluster-state='));
    assert.equal(state('etcd-aws-1'), '--initial-cluster-state=existing');
    assert.equal(state('etcd-aws-0'), '--initial-cluster-state=new');
    // The replacement keeps the same name and advertised peer URL that `etcdctl member add` registered.
    const f = flagsOf(sets.find((s) => s.metadata.name === 'etcd-aws-1')!);
    const m = etcdMembers(spec).find((x) => x.name === 'etcd-aws-1')!;
    assert.ok(f.includes(`--initial-advertise-peer-urls=${m.peerUrl}`));
  });

  it('rejects replaceMembers naming no member, or more members than keep quorum', () => {
    assert.throws(
      () => three({ replaceMembers: ['etcd-aws-7'] }),
      (e: unknown) =>
        e instanceof StackConfigError &&
        e.issues.some((i) => i.key === 'etcd.replaceMembers[0]' && /no etcd member/.test(i.message)),
    );
    assert.throws(
      () => three({ replaceMembers: ['etcd-aws-0', 'etcd-aws-1', 'etcd-gcp-0'] }),
      (e: unknown) =>
        e instanceof StackConfigError &&
        e.issues.some((i) => i.key === 'etcd.replaceMembers' && /quorum/.test(i.message)),
    );
  });

  it('docs/infra.md documents the member replacement procedure', () => {
    const doc = readFileSync('docs/infra.md', 'utf8');
    assert.match(doc, /etcdctl .*member remove/);
    assert.match(doc, /etcdctl .*member add/);
    assert.match(doc, /replaceMembers/);
  });
});
