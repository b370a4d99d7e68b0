/* eslint-disable @typescript-eslint/no-explicit-any -- mock inputs and schemas are untyped JSON */
// The example stacks (Pulumi.dev.yaml / Pulumi.prod.yaml), Pulumi.yaml's config declarations, the
// replicator config file and UdpReplicator resource the manifests ship, and the consumer helper.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as pulumi from '@pulumi/pulumi';
import YAML from 'yaml';
import { replicatorConfigSchema } from '../../replicator/config/schema.ts';
import type { Cloud } from '../../infra/config/schema.ts';
import {
  CONFIG_KEYS,
  enabledClouds,
  etcdLayout,
  parseStackConfig,
  readStackConfig,
} from '../../infra/config/schema.ts';
import { udpReplicatorCrd } from '../../infra/manifests/crd.ts';
import { clusterManifests, placeholderSecrets } from '../../infra/manifests/index.ts';
import { CONTRACT_VERSION, udpEndpoints, udpmeshStackOutputs } from '../../infra/outputs.ts';
import { loadStackSpec } from '../../infra/render.ts';
import type { Registered } from './harness.ts';
import { installMocks, promiseOf, runProgram } from './harness.ts';

/** Stack file values as the Pulumi CLI hands them to the program: strings as-is, the rest as JSON. */
function cliConfig(stack: string): Record<string, string> {
  const doc = YAML.parse(readFileSync(`Pulumi.${stack}.yaml`, 'utf8')) as { config: Record<string, unknown> };
  return Object.fromEntries(
    Object.entries(doc.config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );
}

/** Minimal structural JSON-schema check (the subset the CRD's openAPIV3Schema uses). */
function checkSchema(schema: any, value: any, path = '$'): string[] {
  const errs: string[] = [];
  const t = schema.type;
  if (t === 'object') {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      return [`${path}: expected object`];
    for (const r of schema.required ?? []) if (!(r in value)) errs.push(`${path}.${r}: required`);
    for (const [k, v] of Object.entries(value)) {
      const sub = schema.properties?.[k];
      if (!sub) errs.push(`${path}.${k}: unknown field`);
      else errs.push(...checkSchema(sub, v, `${path}.${k}`));
    }
  } else if (t === 'array') {
    if (!Array.isArray(value)) return [`${path}: expected array`];
    if (schema.minItems !== undefined && value.length < schema.minItems) errs.push(`${path}: too few items`);
    value.forEach((v, i) => errs.push(...checkSchema(schema.items, v, `${path}[${i}]`)));
  } else if (t === 'integer') {
    if (!Number.isInteger(value)) errs.push(`${path}: expected integer`);
    else if (
      (schema.minimum !== undefined && value < schema.minimum) ||
      (schema.maximum !== undefined && value > schema.maximum)
    )
      errs.push(`${path}: out of range`);
  } else if (t === 'string') {
    if (typeof value !== 'string') errs.push(`${path}: expected string`);
    else if (schema.enum && !schema.enum.includes(value)) errs.push(`${path}: not one of ${schema.enum}`);
  } else if (t === 'boolean' && typeof value !== 'boolean') errs.push(`${path}: expected boolean`);
  return errs;
}

describe('example stacks and contracts', function () {
  this.timeout(60_000);

  it('Pulumi.yaml declares exactly the stack config keys and runs infra/index.ts through tsx', () => {
    const project = YAML.parse(readFileSync('Pulumi.yaml', 'utf8'));
    assert.equal(project.name, 'udpmesh');
    assert.equal(project.main, 'infra/index.ts');
    assert.equal(project.runtime.name, 'nodejs');
    assert.match(project.runtime.options.nodeargs, /--import=tsx/);
    assert.deepEqual(Object.keys(project.config).sort(), CONFIG_KEYS.map((k) => `udpmesh:${k}`).sort());
  });

  it('dev is a cheap single-cloud stack and prod spans three clouds with etcd 2/2/1', () => {
    const dev = loadStackSpec('dev');
    assert.deepEqual(enabledClouds(dev), ['aws']);
    assert.equal(dev.monitoring.enabled, false);
    const prod = loadStackSpec('prod');
    assert.deepEqual(enabledClouds(prod), ['aws', 'gcp', 'azure']);
    assert.deepEqual(etcdLayout(prod), { aws: 2, gcp: 2, azure: 1 });
  });

  for (const stack of ['dev', 'prod']) {
    it(`${stack}: the replicator config file in every cluster is valid for the replicator's own schema`, () => {
      const spec = loadStackSpec(stack);
      for (const cloud of enabledClouds(spec) as Cloud[]) {
        const objs = clusterManifests(spec, cloud, placeholderSecrets(spec, cloud));
        const cm = objs.find(
          (o) => o.kind === 'ConfigMap' && o.metadata.name === 'udpmesh-replicator-config',
        )!;
        const cfg = replicatorConfigSchema.parse(
          YAML.parse((cm.data as Record<string, string>)['config.yaml']),
        );
        assert.equal(cfg.cluster, cloud);
        assert.equal(cfg.workers, spec.replicator.workers);
        assert.deepEqual(cfg.ingress.ports, spec.replicator.ingressPorts);
        assert.equal(cfg.replication.port, spec.replicator.replicationPort);
        assert.equal(cfg.metrics.port, spec.replicator.metricsPort);
        assert.equal(
          cfg.etcd!.endpoints.length,
          Object.values(etcdLayout(spec)).reduce((a, b) => a + b, 0),
        );
        const cr = objs.find((o) => o.kind === 'UdpReplicator')!;
        const schema = (udpReplicatorCrd().spec as any).versions[0].schema.openAPIV3Schema;
        assert.deepEqual(checkSchema(schema, { spec: cr.spec }), []);
        // The status the reporter writes fits the status schema; a wrong one does not.
        assert.deepEqual(
          checkSchema(schema, {
            spec: cr.spec,
            status: { peers: [{ name: 'gcp', up: true, lagDatagrams: 0 }], sessions: 1, etcdUp: true },
          }),
          [],
        );
        assert.notDeepEqual(checkSchema(schema, { spec: cr.spec, status: { peers: [{ up: 'yes' }] } }), []);
      }
    });

    it(`${stack}: deploys through the program (resource inventory)`, async () => {
      const spec = loadStackSpec(stack);
      const run = await runProgram(spec);
      const counts: Record<string, number> = {};
      for (const r of run.resources) counts[r.type] = (counts[r.type] ?? 0) + 1;
      const clouds = enabledClouds(spec);
      assert.equal(counts['kubernetes:apps/v1:Deployment'], clouds.length);
      assert.equal(
        counts['kubernetes:apps/v1:StatefulSet'],
        Object.values(etcdLayout(spec)).reduce((a, b) => a + b, 0),
      );
      assert.equal(
        counts['kubernetes:helm.sh/v3:Release'],
        // istio base + istiod per cluster, kube-prometheus-stack, and on EKS the LB controller + metrics-server.
        clouds.length * 2 + (spec.monitoring.enabled ? clouds.length : 0) + (clouds.includes('aws') ? 2 : 0),
      );
      if (process.env.UDPMESH_PRINT_INVENTORY)
        console.log(stack, run.resources.length, JSON.stringify(counts, null, 1));
    });
  }

  it('reports the Grafana load balancer URL when Grafana is exposed, a port-forward hint otherwise', async () => {
    const exposed = await runProgram(
      parseStackConfig({ clouds: ['gcp'], monitoring: { exposeGrafana: true } }),
    );
    assert.equal(exposed.outputs.grafanaUrl, 'http://gcp-workloads-monitoring-grafana.lb.example');
    const internal = await runProgram(parseStackConfig({ clouds: ['gcp'] }));
    assert.match(String(internal.outputs.grafanaUrl), /port-forward svc\/kube-prometheus-stack-grafana/);
    const off = await runProgram(parseStackConfig({ clouds: ['gcp'], monitoring: { enabled: false } }));
    assert.equal(off.outputs.grafanaUrl, undefined);
    assert.equal(
      off.resources.filter((r) => r.type.startsWith('kubernetes:monitoring.coreos.com')).length,
      0,
    );
  });

  it('infra/index.ts (the Pulumi entry point) reads the prod stack config and exports the contract', async () => {
    const resources: Registered[] = [];
    await installMocks(resources);
    pulumi.runtime.setAllConfig(cliConfig('prod'));
    try {
      const readBack = readStackConfig(new pulumi.Config('udpmesh'));
      assert.deepEqual(readBack, loadStackSpec('prod'));
      const entry = (await import('../../infra/index.ts')) as Record<
        string,
        pulumi.Output<unknown> | undefined
      >;
      assert.equal(await promiseOf(entry.contractVersion), CONTRACT_VERSION);
      assert.deepEqual(await promiseOf(entry.clouds), ['aws', 'gcp', 'azure']);
      assert.equal(await promiseOf(entry.gcpClusterName), 'udpmesh-gcp');
      assert.equal(await pulumi.isSecret(entry.azureKubeconfig as pulumi.Output<unknown>), true);
      assert.ok(resources.some((r) => r.type === 'aws:eks/cluster:Cluster'));
    } finally {
      pulumi.runtime.setAllConfig({});
    }
  });

  it('the consumer helper reads and validates the outputs through a StackReference', async () => {
    const outputs = {
      contractVersion: CONTRACT_VERSION,
      mesh: 'udpmesh',
      clouds: ['aws', 'gcp'],
      udpPorts: [7001],
      etcdClientEndpoints: ['https://10.10.15.245:2379'],
      awsClusterName: 'udpmesh-aws',
      awsKubeconfig: 'kc-aws',
      awsUdpEndpoint: 'nlb.example',
      gcpClusterName: 'udpmesh-gcp',
      gcpKubeconfig: 'kc-gcp',
      gcpUdpEndpoint: '203.0.113.7',
    };
    let refName = '';
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          if (args.type === 'pulumi:pulumi:StackReference') {
            refName = args.inputs.name;
            return {
              id: args.inputs.name,
              state: {
                name: args.inputs.name,
                outputs,
                secretOutputNames: ['awsKubeconfig', 'gcpKubeconfig'],
              },
            };
          }
          return { id: `${args.name}-id`, state: args.inputs };
        },
        call: () => ({}),
      },
      'consumer',
      'test',
    );
    const o = udpmeshStackOutputs('acme/udpmesh/prod');
    const v = (await promiseOf(o))!;
    assert.equal(refName, 'acme/udpmesh/prod');
    assert.deepEqual(udpEndpoints(v), [
      { cloud: 'aws', address: 'nlb.example', ports: [7001] },
      { cloud: 'gcp', address: '203.0.113.7', ports: [7001] },
    ]);
    assert.equal(await pulumi.isSecret(o), true);

    // A stack missing a per-cloud output breaks the contract loudly.
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => ({
          id: 'x',
          state: { name: args.inputs.name, outputs: { ...outputs, gcpUdpEndpoint: undefined } },
        }),
        call: () => ({}),
      },
      'consumer',
      'test',
    );
    const broken = udpmeshStackOutputs('acme/udpmesh/broken');
    const err = await new Promise<unknown>((resolve) => {
      process.once('unhandledRejection', resolve);
      broken.apply((x) => resolve(x));
    });
    assert.match(String(err), /gcpUdpEndpoint missing for enabled cloud gcp/);
  });
});
