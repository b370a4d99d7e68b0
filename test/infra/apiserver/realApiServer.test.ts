// The rendered manifests and the replicator's status reporter against a REAL kube-apiserver (built by
// scripts/install-kube-apiserver.sh from the Go module proxy) on a real etcd. Mocks and OpenAPI models
// accept what a cluster refuses: a CRD schema that is not structural, objects the schema would prune,
// immutable or cross-field rules, RBAC that does not grant what the code does. Here the API server's own
// validation, admission, pruning and RBAC decide.
//
// Each example stack (Pulumi.<stack>.yaml) × each enabled cloud is rendered exactly as `npm run render`
// does, server-side applied (Namespaces and CRDs first, then the rest), checked, then its namespaced
// objects are deleted so the next cloud's objects are created fresh (no nodes or controllers run here).
//
// Platform prerequisites that the Pulumi program gets from Helm charts, not from the rendered manifests,
// are stood in for before the applies: the `monitoring` namespace (kube-prometheus-stack's release,
// createNamespace) and the CRDs of istio-base (PeerAuthentication) and the prometheus-operator
// (ServiceMonitor, PrometheusRule). The stand-in CRDs have the real group, versions, kinds and scope but
// keep their spec unchecked: the content of those objects is validated against the operator's published
// schemas in test/infra/render.test.ts; here they prove only that they apply in their namespace.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import YAML from 'yaml';
import { enabledClouds } from '../../../infra/config/schema.ts';
import { loadStackSpec, renderCluster } from '../../../infra/render.ts';
import { startStatusReporter } from '../../../replicator/k8s/statusReporter.ts';
import { startEtcdCluster, type EtcdCluster } from '../../../replicator/local/etcdCluster.ts';
import { KubeApplier, objectId, type ManifestObject, type Rejection } from '../../harness/kubeApply.ts';
import { findKubeApiServer, startKubeApiServer, type KubeApiServer } from '../../harness/kubeApiServer.ts';
import { waitFor } from '../../harness/wait.ts';

const STACKS = readdirSync('.')
  .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
  .filter((s): s is string => s !== undefined)
  .sort();

/** Stand-ins for CRDs that Helm charts install in the real clusters (see the header). */
function standInCrd(group: string, kind: string, plural: string, versions: string[]): ManifestObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: versions.map((name, i) => ({
        name,
        served: true,
        storage: i === 0,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        },
      })),
    },
  };
}

const PREREQUISITES: ManifestObject[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'monitoring' } },
  standInCrd('security.istio.io', 'PeerAuthentication', 'peerauthentications', ['v1', 'v1beta1']),
  standInCrd('monitoring.coreos.com', 'ServiceMonitor', 'servicemonitors', ['v1']),
  standInCrd('monitoring.coreos.com', 'PrometheusRule', 'prometheusrules', ['v1']),
];

function isFirst(o: ManifestObject): boolean {
  return o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition';
}

function formatRejections(rs: Rejection[]): string {
  return rs.map((r) => `  ${r.object}: HTTP ${r.status} ${r.reason}: ${r.message}`).join('\n');
}

/** Applies Namespaces and CRDs first (waiting until each CRD is served), then the rest. */
async function applyAll(applier: KubeApplier, objects: ManifestObject[]): Promise<Rejection[]> {
  const rejections: Rejection[] = [];
  for (const o of objects.filter(isFirst)) {
    const r = await applier.apply(o);
    if (r) rejections.push(r);
    else if (o.kind === 'CustomResourceDefinition') await applier.waitEstablished(o);
  }
  for (const o of objects.filter((x) => !isFirst(x))) {
    const r = await applier.apply(o);
    if (r) rejections.push(r);
  }
  return rejections;
}

describe('infra manifests and the status reporter against a real kube-apiserver', function () {
  let etcd: EtcdCluster | undefined;
  let api: KubeApiServer | undefined;
  let applier: KubeApplier;
  const server = (): KubeApiServer => {
    if (!api) throw new Error('kube-apiserver is not running');
    return api;
  };

  before(async function () {
    const found = findKubeApiServer();
    if ('missing' in found) {
      console.log(`    skipped: ${found.missing}`);
      this.skip();
    }
    this.timeout(150_000);
    etcd = await startEtcdCluster({ size: 1, namePrefix: 'kube-etcd' });
    api = await startKubeApiServer({ binary: found.binary, etcdEndpoints: etcd.endpoints });
    applier = new KubeApplier(api);
  });

  /** Idempotent (server-side apply): every stack's describe calls it, whatever ran before. */
  async function ensurePrerequisites(): Promise<void> {
    const rejections = await applyAll(applier, PREREQUISITES);
    assert.deepEqual(rejections, [], `prerequisites rejected:\n${formatRejections(rejections)}`);
  }

  after(async function () {
    this.timeout(30_000);
    try {
      await api?.stop();
    } finally {
      await etcd?.stop();
    }
  });

  describe('Helm-chart prerequisites of the rendered manifests', () => {
    it('without them, exactly the objects of the stood-in CRDs and the monitoring namespace are refused', async function () {
      this.timeout(60_000);
      const chartKinds = new Set(
        PREREQUISITES.filter((o) => o.kind === 'CustomResourceDefinition').map(
          (o) => (o.spec as { names: { kind: string } }).names.kind,
        ),
      );
      const chartNamespaces = new Set(
        PREREQUISITES.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name),
      );
      for (const stack of STACKS) {
        for (const cloud of enabledClouds(loadStackSpec(stack))) {
          const objects = YAML.parseAllDocuments(renderCluster(loadStackSpec(stack), cloud)).map(
            (d) => d.toJS() as ManifestObject,
          );
          const refused: string[] = [];
          for (const o of objects.filter(isFirst)) {
            assert.equal(await applier.apply(o), undefined, `${objectId(o)} applies`);
            if (o.kind === 'CustomResourceDefinition') await applier.waitEstablished(o);
          }
          for (const o of objects.filter((x) => !isFirst(x)))
            if (await applier.apply(o, { dryRun: true })) refused.push(objectId(o));
          const expected = objects
            .filter((o) => chartKinds.has(o.kind) || chartNamespaces.has(o.metadata.namespace ?? ''))
            .map(objectId);
          assert.deepEqual(refused.sort(), expected.sort(), `stack ${stack}, cloud ${cloud}`);
        }
      }
      applier.warnings.splice(0);
    });
  });

  for (const stack of STACKS) {
    for (const cloud of enabledClouds(loadStackSpec(stack))) {
      describe(`stack ${stack}, cloud ${cloud}`, () => {
        before(async function () {
          this.timeout(60_000);
          if (api) await ensurePrerequisites();
        });

        // Parsed back from the YAML text, exactly what `npm run render -- --stack <stack>` prints.
        const objects = YAML.parseAllDocuments(renderCluster(loadStackSpec(stack), cloud)).map(
          (d) => d.toJS() as ManifestObject,
        );
        const replicator = objects.find((o) => o.kind === 'UdpReplicator');
        const deployment = objects.find(
          (o) => o.kind === 'Deployment' && o.metadata.name === 'udpmesh-replicator',
        );
        const namespace = replicator?.metadata.namespace ?? 'udpmesh';
        const serviceAccount = (deployment?.spec as { template?: { spec?: { serviceAccountName?: string } } })
          ?.template?.spec?.serviceAccountName;
        const unbound: ManifestObject = {
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name: 'udpmesh-unbound', namespace },
        };
        const statusPath = `/apis/udpmesh.io/v1alpha1/namespaces/${namespace}/udpreplicators/${replicator?.metadata.name}/status`;

        after(async function () {
          this.timeout(30_000);
          if (!api) return;
          // Namespaced objects go, so the next cloud's objects are created fresh (Namespaces and CRDs stay).
          for (const o of [...objects, unbound].reverse())
            if (o.metadata.namespace !== undefined) await applier.delete(o);
        });

        it('server-side applies every rendered object, and the API server accepts each one', async function () {
          this.timeout(60_000);
          const kinds = new Set(objects.map((o) => o.kind));
          for (const kind of [
            'CustomResourceDefinition',
            'UdpReplicator',
            'ServiceAccount',
            'Role',
            'RoleBinding',
            'NetworkPolicy',
            'HorizontalPodAutoscaler',
            'PodDisruptionBudget',
            'Service',
            'StatefulSet',
            'Deployment',
          ])
            assert.ok(kinds.has(kind), `the rendered manifests have a ${kind}`);
          const rejections = await applyAll(applier, objects);
          assert.deepEqual(
            rejections,
            [],
            `the API server rejected ${rejections.length} of ${objects.length} objects:\n${formatRejections(rejections)}`,
          );
          for (const o of objects) assert.ok(await applier.get(o), `${objectId(o)} is stored`);
          const warnings = applier.warnings.splice(0);
          assert.deepEqual(
            warnings,
            [],
            `the API server accepted with warnings:\n${warnings.map((w) => `  ${w.object}: ${w.warning}`).join('\n')}`,
          );
        });

        it('stores the UdpReplicator spec whole (the structural schema prunes none of its fields)', async () => {
          assert.ok(replicator);
          const stored = await applier.get(replicator);
          assert.ok(stored, `${objectId(replicator)} is stored`);
          assert.deepEqual(stored.spec, replicator.spec);
        });

        it("the status reporter, with a token of the replicator's ServiceAccount, patches its UdpReplicator's status", async () => {
          assert.ok(replicator && serviceAccount, 'the replicator Deployment names its ServiceAccount');
          const token = await server().serviceAccountToken(namespace, serviceAccount);
          // The RBAC authorizer reads Roles through an informer: wait (bounded) until it has seen the
          // ones just applied, asking it with the same token. A Role that never grants this times out.
          await waitFor(
            async () => {
              const r = await server().request(
                'POST',
                '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
                {
                  token,
                  body: {
                    apiVersion: 'authorization.k8s.io/v1',
                    kind: 'SelfSubjectAccessReview',
                    spec: {
                      resourceAttributes: {
                        group: 'udpmesh.io',
                        resource: 'udpreplicators',
                        subresource: 'status',
                        verb: 'patch',
                        namespace,
                        name: replicator.metadata.name,
                      },
                    },
                  },
                },
              );
              return (r.json?.status as { allowed?: boolean } | undefined)?.allowed === true;
            },
            { timeoutMs: 10_000, what: `RBAC lets ${serviceAccount} patch udpreplicators/status` },
          );
          const logs: string[] = [];
          const reporter = startStatusReporter({
            name: replicator.metadata.name,
            namespace,
            apiBase: server().url,
            ca: server().ca,
            token,
            reporter: 'pod-under-test',
            intervalMs: 3_600_000,
            log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields)}`),
            observe: () => ({
              peers: [{ name: 'peer-a', up: true, lagDatagrams: 5 }],
              sessions: 42,
              etcdUp: true,
            }),
          });
          try {
            assert.equal(await reporter.reportNow(), true, `the report was refused: ${logs.join('; ')}`);
          } finally {
            reporter.stop();
          }
          const stored = await applier.get(replicator);
          const status = stored?.status as Record<string, unknown> | undefined;
          assert.ok(status, 'the UdpReplicator has a status');
          assert.deepEqual(status.peers, [{ name: 'peer-a', up: true, lagDatagrams: 5 }]);
          assert.equal(status.sessions, 42);
          assert.equal(status.etcdUp, true);
          assert.equal(status.reporter, 'pod-under-test');
          assert.match(String(status.observedAt), /^\d{4}-\d{2}-\d{2}T/);
          assert.deepEqual(stored?.spec, replicator.spec, 'a status patch leaves the spec alone');
          // The CRD's printer columns (`kubectl get udpr`) point at real fields: the server renders them.
          const table = await server().request('GET', statusPath.replace(/\/status$/, ''), {
            accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
          });
          assert.equal(table.status, 200, table.text);
          const columns = (table.json?.columnDefinitions as { name: string }[]).map((c) => c.name);
          const cells = (table.json?.rows as { cells: unknown[] }[])[0].cells;
          const row = Object.fromEntries(columns.map((c, i) => [c, cells[i]]));
          const spec = replicator.spec as { cloud: string; replicas: number };
          assert.deepEqual(
            { Cloud: row.Cloud, Replicas: row.Replicas, Sessions: row.Sessions, Etcd: row.Etcd },
            { Cloud: spec.cloud, Replicas: spec.replicas, Sessions: 42, Etcd: true },
          );
          // Least privilege: the same token may not change the spec.
          const specPatch = await server().request('PATCH', statusPath.replace(/\/status$/, ''), {
            token,
            body: { spec: { replicas: 9 } },
            contentType: 'application/merge-patch+json',
          });
          assert.equal(
            specPatch.status,
            403,
            `patching the spec with the replicator's token: ${specPatch.text}`,
          );
        });

        it('a ServiceAccount without the RoleBinding is refused (403), and the reporter counts it', async () => {
          assert.ok(replicator);
          assert.equal(await applier.apply(unbound), undefined, 'the unbound ServiceAccount is created');
          const token = await server().serviceAccountToken(namespace, unbound.metadata.name);
          // The token authenticates (so the refusal below is authorization, not authentication).
          const who = await server().request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
            token,
            body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
          });
          assert.equal(who.status, 201, who.text);
          assert.equal(
            (who.json?.status as { userInfo?: { username?: string } })?.userInfo?.username,
            `system:serviceaccount:${namespace}:udpmesh-unbound`,
          );
          const logs: string[] = [];
          const reporter = startStatusReporter({
            name: replicator.metadata.name,
            namespace,
            apiBase: server().url,
            ca: server().ca,
            token,
            intervalMs: 3_600_000,
            log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields)}`),
            observe: () => ({ peers: [], sessions: 1, etcdUp: false }),
          });
          try {
            assert.equal(await reporter.reportNow(), false);
          } finally {
            reporter.stop();
          }
          assert.deepEqual(reporter.stats, { ok: 0, failed: 1 });
          assert.match(logs.join('\n'), /HTTP 403/);
          const direct = await server().request('PATCH', statusPath, {
            token,
            body: { status: { sessions: 1 } },
            contentType: 'application/merge-patch+json',
          });
          assert.equal(direct.status, 403, direct.text);
          assert.equal(direct.json?.reason, 'Forbidden');
        });
      });
    }
  }
});
