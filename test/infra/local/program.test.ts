// The infra program for a clouds: [local] stack under Pulumi mocks: what it registers (only components
// and the local dynamic resources: no provider plugin of any kind), how the pieces are wired (cluster
// identities, etcd, backends, Prometheus targets and rules, the key as a secret), the outputs contract,
// and the stack config rules that stop bad input before anything starts. The same program runs under
// the real engine in localStack.test.ts.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import * as pulumi from '@pulumi/pulumi';
import YAML from 'yaml';
import { parseStackConfig, StackConfigError, type StackConfigInput } from '../../../infra/config/schema.ts';
import { alertRuleGroups } from '../../../infra/monitoring/alertRules.ts';
import { parseUdpmeshOutputs, udpEndpoints } from '../../../infra/outputs.ts';
import { promiseOf, unwrapSecrets } from '../harness.ts';
import { killAllUnder, localTestEnv, type LocalTestEnv } from './support.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- mock inputs are untyped JSON */
interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
}

const hostUrl = (a: string, p: number) => `http://${a}:${p}`;

/** What the real providers would answer, computed from the inputs (no process is started). */
function mockOutputs(type: string, inputs: Record<string, any>): Record<string, unknown> {
  if (type.endsWith('LocalEtcdCluster'))
    return { endpoints: inputs.members.map((m: any) => hostUrl(m.address, m.clientPort)), running: true };
  if (type.endsWith('LocalEchoBackend'))
    return { endpoint: `${inputs.address}:${inputs.port}`, running: true };
  if (type.endsWith('LocalReplicator'))
    return {
      metricsUrl: `${hostUrl(inputs.config.metrics.address, inputs.config.metrics.port)}/metrics`,
      running: true,
    };
  if (type.endsWith('LocalPrometheus')) return { url: hostUrl(inputs.address, inputs.port), running: true };
  if (type.endsWith('LocalClusterKey')) return { key: 'mock-key' };
  return {};
}

async function runLocal(spec: ReturnType<typeof parseStackConfig>) {
  const resources: Registered[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        resources.push({ type: args.type, name: args.name, inputs: unwrapSecrets(args.inputs) });
        return {
          id: `${args.name}-id`,
          state: { ...args.inputs, ...mockOutputs(args.type, unwrapSecrets(args.inputs)) },
        };
      },
      call() {
        return {};
      },
    },
    'udpmesh',
    'test',
    false,
  );
  const created: pulumi.Resource[] = [];
  const opts: { type: string; opts: pulumi.CustomResourceOptions }[] = [];
  const { udpmeshProgram } = await import('../../../infra/program.ts');
  const outputs = await udpmeshProgram({
    spec,
    transformations: [
      (a) => {
        created.push(a.resource);
        opts.push({ type: a.type, opts: a.opts });
        return undefined;
      },
    ],
  });
  await Promise.all(created.map((r) => promiseOf(r.urn)));
  const resolved: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(outputs)) if (v !== undefined) resolved[k] = await promiseOf(v);
  return { resources, outputs: resolved, raw: outputs as Record<string, unknown>, opts };
}

describe('local target: the program under mocks', function () {
  this.timeout(60_000);
  let env: LocalTestEnv;
  beforeEach(async () => {
    env = await localTestEnv();
  });
  afterEach(async () => {
    await killAllUnder(env.stateDir);
  });

  it('registers only components and local dynamic resources (no provider plugin), wired per simulated cloud', async () => {
    const run = await runLocal(env.spec);
    const custom = run.resources.filter((r) => !r.type.startsWith('udpmesh:'));
    assert.ok(
      custom.every((r) => r.type.startsWith('pulumi-nodejs:dynamic/udpmesh:Local')),
      custom.map((r) => r.type).join(),
    );
    const count = (t: string) => run.resources.filter((r) => r.type.endsWith(t)).length;
    assert.deepEqual(
      ['LocalClusterKey', 'LocalEtcdCluster', 'LocalEchoBackend', 'LocalReplicator', 'LocalPrometheus'].map(
        count,
      ),
      [1, 1, 3, 3, 1],
    );
    const etcd = run.resources.find((r) => r.type.endsWith('LocalEtcdCluster'))!;
    assert.deepEqual(
      etcd.inputs.members.map((m: any) => m.address),
      [env.addresses.aws, env.addresses.gcp, env.addresses.azure],
    );
    const reps = run.resources.filter((r) => r.type.endsWith('LocalReplicator'));
    assert.deepEqual(reps.map((r) => r.inputs.config.cluster).sort(), ['aws', 'azure', 'gcp']);
    for (const r of reps) {
      const cloud = r.inputs.cloud as 'aws' | 'gcp' | 'azure';
      assert.deepEqual(r.inputs.config.ingress.addresses, [env.addresses[cloud]]);
      assert.deepEqual(r.inputs.config.delivery.backends, [
        `${env.addresses[cloud]}:${env.spec.local.echoPort}`,
      ]);
      assert.equal(r.inputs.config.etcd.endpoints.length, 3);
      assert.equal(r.inputs.config.mesh, env.spec.mesh);
    }
    // The frame key is a secret, generated by the provider, never a plain input.
    const keyOpts = run.opts.find((o) => o.type.endsWith('LocalClusterKey'))!;
    assert.ok(keyOpts.opts.additionalSecretOutputs?.includes('key'));
    assert.ok(
      run.opts
        .find((o) => o.type.endsWith('LocalReplicator'))!
        .opts.additionalSecretOutputs?.includes('clusterKey'),
    );
    const prom = run.resources.find((r) => r.type.endsWith('LocalPrometheus'))!;
    assert.deepEqual(prom.inputs.ruleGroups, alertRuleGroups(env.spec.etcd.interCloudRttMs));
    assert.equal(prom.inputs.targets.filter((t: any) => t.job === 'udpmesh-replicator').length, 3);
    assert.equal(prom.inputs.targets.filter((t: any) => t.job === 'etcd').length, 3);
  });

  it('your own backend per cloud replaces that cloud’s echo backend', async () => {
    const spec = parseStackConfig({
      ...env.input,
      local: { ...env.input.local, backends: { gcp: '127.0.0.1:6000' } },
    });
    const run = await runLocal(spec);
    assert.equal(run.resources.filter((r) => r.type.endsWith('LocalEchoBackend')).length, 2);
    const gcp = run.resources.find((r) => r.type.endsWith('LocalReplicator') && r.inputs.cloud === 'gcp')!;
    assert.deepEqual(gcp.inputs.config.delivery.backends, ['127.0.0.1:6000']);
  });

  it('returns the outputs contract of cloud stacks (plus target, metrics URLs and the Prometheus URL)', async () => {
    const run = await runLocal(env.spec);
    const o = parseUdpmeshOutputs(run.outputs);
    assert.equal(o.target, 'local');
    assert.deepEqual(o.clouds, ['aws', 'gcp', 'azure']);
    assert.deepEqual(o.etcdClientEndpoints, [
      hostUrl(env.addresses.aws, env.spec.etcd.clientPort),
      hostUrl(env.addresses.gcp, env.spec.etcd.clientPort),
      hostUrl(env.addresses.azure, env.spec.etcd.clientPort),
    ]);
    assert.deepEqual(
      udpEndpoints(o).map((e) => `${e.cloud} ${e.address}:${e.ports.join()}`),
      (['aws', 'gcp', 'azure'] as const).map(
        (c) => `${c} ${env.addresses[c]}:${env.spec.replicator.ingressPorts[0]}`,
      ),
    );
    assert.equal(o.prometheusUrl, hostUrl(env.addresses.aws, env.spec.local.prometheus.port));
    assert.equal(o.gcpMetricsUrl, `${hostUrl(env.addresses.gcp, env.spec.replicator.metricsPort)}/metrics`);
    assert.equal(o.awsKubeconfig, undefined);
    // A cloud stack still needs its kubeconfigs.
    assert.throws(() => parseUdpmeshOutputs({ ...run.outputs, target: undefined }), /awsKubeconfig missing/);
  });

  it('a port of the plan held by another program stops the program before it registers anything', async () => {
    const squatter = createSocket('udp4');
    const port = env.spec.replicator.replicationPort;
    await new Promise<void>((r) => squatter.bind(port, env.addresses.azure, r));
    try {
      await assert.rejects(
        runLocal(env.spec),
        (err: Error) =>
          err instanceof pulumi.RunError &&
          err.message.includes(
            `port ${port} on ${env.addresses.azure} (azure replicator replication (replicator.replicationPort))`,
          ),
      );
    } finally {
      squatter.close();
    }
  });
});

describe('local target: stack config', () => {
  const issues = (input: StackConfigInput): string[] => {
    try {
      parseStackConfig(input);
      return [];
    } catch (err) {
      assert.ok(err instanceof StackConfigError, String(err));
      return err.issues.map((i) => `${i.key}: ${i.message}`);
    }
  };

  it('the example stack Pulumi.local.yaml is valid', () => {
    const file = YAML.parse(readFileSync('Pulumi.local.yaml', 'utf8')) as { config: Record<string, unknown> };
    const raw = Object.fromEntries(
      Object.entries(file.config).map(([k, v]) => [k.replace(/^udpmesh:/, ''), v]),
    );
    const spec = parseStackConfig(raw);
    assert.deepEqual(spec.clouds, ['local']);
    assert.equal(spec.local.addresses.gcp, '127.0.0.2');
  });

  it('local cannot be combined with clouds', () => {
    assert.match(
      issues({ clouds: ['local', 'aws'] }).join('\n'),
      /clouds\[0\]: "local" .* cannot be combined/,
    );
  });

  it('two listeners on one address:port: the key and the port are named', () => {
    const found = issues({ clouds: ['local'], replicator: { metricsPort: 5353 } });
    assert.ok(
      found.some((i) =>
        i.startsWith('local.echoPort: port 5353 on 127.0.0.1 clashes with replicator.metricsPort'),
      ),
      found.join('\n'),
    );
    assert.match(
      issues({ clouds: ['local'], etcd: { clientPort: 7001 } }).join('\n'),
      /etcd.clientPort: port 7001 on 127\.0\.0\.1 clashes with replicator.ingressPorts\[0\]/,
    );
  });

  it('each simulated cloud needs its own address; etcd is 3 members', () => {
    assert.match(
      issues({ clouds: ['local'], local: { addresses: { gcp: '127.0.0.1' } } }).join('\n'),
      /local.addresses.gcp: 127\.0\.0\.1 is also local.addresses.aws/,
    );
    assert.match(
      issues({ clouds: ['local'], etcd: { members: 5 } }).join('\n'),
      /etcd.members: the local target runs 3/,
    );
  });
});
