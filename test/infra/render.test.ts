// The rendered YAML parses, equals the objects the program registers (program.test.ts compares those
// with the same function), and validates against the Kubernetes / prometheus-operator OpenAPI schemas.
import assert from 'node:assert/strict';
import YAML from 'yaml';
import type { Cloud } from '../../infra/config/schema.ts';
import { enabledClouds } from '../../infra/config/schema.ts';
import { clusterManifests, placeholderSecrets } from '../../infra/manifests/index.ts';
import type { K8sObject } from '../../infra/manifests/index.ts';
import { loadStackSpec, renderCluster } from '../../infra/render.ts';

async function modelFor(o: K8sObject): Promise<(new (d: unknown) => { validate(): void }) | undefined> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  if (group === 'monitoring.coreos.com') {
    const m = (await import(
      `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`
    )) as Record<string, never>;
    return m[o.kind];
  }
  if (group === 'udpmesh.io' || group === 'security.istio.io') return undefined;
  const m = (await import(
    group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`
  )) as Record<string, never>;
  return m[o.kind];
}

describe('rendered manifests', () => {
  for (const stack of ['dev', 'prod']) {
    const spec = loadStackSpec(stack);
    for (const cloud of enabledClouds(spec) as Cloud[]) {
      it(`${stack}/${cloud}: YAML parses back to the program's objects and validates against the OpenAPI schemas`, async () => {
        const objects = clusterManifests(spec, cloud, placeholderSecrets(spec, cloud));
        const docs = YAML.parseAllDocuments(renderCluster(spec, cloud)).map((d) => d.toJS());
        assert.deepEqual(docs, JSON.parse(JSON.stringify(objects)));
        let validated = 0;
        for (const o of docs as K8sObject[]) {
          const Model = await modelFor(o);
          if (!Model) {
            assert.ok(['UdpReplicator', 'PeerAuthentication'].includes(o.kind), `no schema for ${o.kind}`);
            continue;
          }
          assert.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata.name}`);
          validated++;
        }
        assert.ok(validated >= docs.length - 2);
      });
    }
  }

  it('rejects an invalid object (the validators are live)', async () => {
    const spec = loadStackSpec('dev');
    const dep = clusterManifests(spec, 'aws', placeholderSecrets(spec, 'aws')).find(
      (o) => o.kind === 'Deployment',
    )!;
    const broken = JSON.parse(JSON.stringify(dep));
    broken.spec.replicas = 'three';
    const Model = (await modelFor(dep))!;
    assert.throws(() => new Model(broken).validate());
  });
});
