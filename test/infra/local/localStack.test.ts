// The local target under the real Pulumi engine (scripts/install-pulumi-engine.sh), the way a user runs
// it: `pulumi stack init local`, a preview refused because a port is taken (nothing started), `pulumi up`
// (real etcd, replicators, echo backends, Prometheus; datagrams through every cloud), a setting the
// replicators reload from etcd applied without a restart, a replicator
// SIGKILLed → `pulumi refresh` records it dead → `pulumi up` restarts only that one, a consumer project
// reads the outputs through the StackReference helper, and `pulumi destroy` leaves nothing running and
// every port free. The dynamic providers run in Pulumi's own provider process here, so this is also the
// proof that their serialized closures work. Prints the timeline.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { localPlan } from '../../../infra/local/plan.ts';
import { parseUdpmeshOutputs } from '../../../infra/outputs.ts';
import { isPortFree } from '../../../replicator/local/freePort.ts';
import {
  engineSandbox,
  REPO_ROOT,
  requirePulumiEngine,
  type EngineSandbox,
} from '../../harness/pulumiEngine.ts';
import { killAllUnder, localTestEnv, roundTrip, runningUnder, type LocalTestEnv } from './support.ts';

/** A work dir: Pulumi.yaml copied with `main` pointing into the repo, node_modules linked (the engine's
 * dynamic-provider launcher resolves @pulumi/pulumi from its working directory). */
function workDir(sb: EngineSandbox, name: string, project: Record<string, unknown>): string {
  const dir = path.join(sb.dir, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'Pulumi.yaml'), YAML.stringify(project));
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

/** The repo's Pulumi.local.yaml with this test's addresses, ports and state dir laid over it. */
function stackFile(env: LocalTestEnv): string {
  const example = YAML.parse(readFileSync(path.join(REPO_ROOT, 'Pulumi.local.yaml'), 'utf8')) as {
    config: Record<string, unknown>;
  };
  const config: Record<string, unknown> = { ...example.config };
  for (const [k, v] of Object.entries(env.input)) {
    const prev = config[`udpmesh:${k}`];
    config[`udpmesh:${k}`] =
      prev &&
      typeof prev === 'object' &&
      !Array.isArray(prev) &&
      v &&
      typeof v === 'object' &&
      !Array.isArray(v)
        ? { ...prev, ...v }
        : v;
  }
  return YAML.stringify({ config });
}

interface StateResource {
  urn: string;
  type: string;
  outputs?: Record<string, unknown>;
}

describe('local target under the real Pulumi engine', function () {
  this.timeout(900_000);
  let bin: string;
  let sb: EngineSandbox | undefined;
  let env: LocalTestEnv | undefined;
  const timeline: [string, number][] = [];

  before(function () {
    bin = requirePulumiEngine(this).pulumi;
  });
  after(async () => {
    if (timeline.length) {
      console.log('      timeline:');
      for (const [step, ms] of timeline)
        console.log(`        ${step.padEnd(58)} ${(ms / 1000).toFixed(1)} s`);
    }
    if (env) await killAllUnder(env.stateDir);
    sb?.cleanup();
  });

  function run(cwd: string, args: string[], step?: string): { status: number | null; out: string } {
    const t0 = Date.now();
    const r = spawnSync(bin, [...args, '--non-interactive'], {
      cwd,
      env: sb!.env,
      encoding: 'utf8',
      timeout: 400_000,
    });
    if (step) timeline.push([step, Date.now() - t0]);
    return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
  }
  function ok(cwd: string, args: string[], step?: string): string {
    const r = run(cwd, args, step);
    assert.equal(r.status, 0, `pulumi ${args.join(' ')} failed:\n${r.out.slice(-4000)}`);
    return r.out;
  }
  function state(cwd: string): StateResource[] {
    const exp = JSON.parse(ok(cwd, ['stack', 'export', '-s', 'local'])) as {
      deployment: { resources?: StateResource[] };
    };
    return exp.deployment.resources ?? [];
  }
  const replicatorOf = (res: StateResource[], cloud: string) =>
    res.find((r) => r.type.endsWith('LocalReplicator') && r.urn.endsWith(`::${cloud}-replicator`))!.outputs!;

  it('stack init, preview refused on a taken port, up, no-change preview, a dynamic update, refresh after a SIGKILL, up repairs, StackReference, destroy', async () => {
    sb = engineSandbox(path.dirname(bin), 'udpmesh-localstack-');
    env = await localTestEnv();
    const project = YAML.parse(readFileSync(path.join(REPO_ROOT, 'Pulumi.yaml'), 'utf8')) as Record<
      string,
      unknown
    >;
    project.main = path.join(REPO_ROOT, 'infra', 'index.ts');
    const dir = workDir(sb, 'udpmesh', project);
    writeFileSync(path.join(dir, 'Pulumi.local.yaml'), stackFile(env));
    ok(dir, ['stack', 'init', 'local'], 'pulumi stack init local');

    // A port of the plan held by another program: preview names it, and nothing was started.
    const plan = localPlan(env.spec, 'udpmesh', 'local');
    const ingressPort = env.spec.replicator.ingressPorts[0]!;
    const squatter = createSocket('udp4');
    await new Promise<void>((r) => squatter.bind(ingressPort, env!.addresses.gcp, r));
    try {
      const refused = run(dir, ['preview', '-s', 'local'], 'pulumi preview (port taken: refused)');
      assert.notEqual(refused.status, 0);
      assert.match(
        refused.out,
        new RegExp(
          `port ${ingressPort} on ${env.addresses.gcp.replace(/\./g, '\\.')} \\(gcp replicator ingress`,
        ),
      );
      assert.deepEqual(runningUnder(env.stateDir), []);
    } finally {
      await new Promise<void>((r) => squatter.close(() => r()));
    }

    ok(dir, ['up', '-s', 'local', '--yes', '--skip-preview'], 'pulumi up (create 11 resources)');
    const outputs = parseUdpmeshOutputs(
      JSON.parse(ok(dir, ['stack', 'output', '-s', 'local', '--json', '--show-secrets'])),
    );
    assert.equal(outputs.target, 'local');
    assert.deepEqual(outputs.clouds, ['aws', 'gcp', 'azure']);
    assert.equal(outputs.etcdClientEndpoints.length, 3);
    assert.ok(outputs.prometheusUrl);
    for (const cloud of outputs.clouds) {
      const address = outputs[`${cloud}UdpEndpoint`]!;
      assert.equal(
        await roundTrip(address, outputs.udpPorts[0]!, `hello ${cloud}`, 3000),
        `hello ${cloud}`,
        cloud,
      );
      const metrics = await fetch(outputs[`${cloud}MetricsUrl`]!);
      assert.equal(metrics.status, 200);
    }
    const ready = await fetch(`${outputs.prometheusUrl}/-/ready`);
    assert.equal(ready.status, 200);

    // The frame key is a secret in the state (ciphertext, never the plain key).
    const exported = state(dir);
    const secretSig = '4dabf18193072939515e22adb298388d';
    const keyRes = exported.find((r) => r.type.endsWith('LocalClusterKey'))!.outputs!;
    assert.equal((keyRes.key as Record<string, unknown>)[secretSig], '1b47061264138c4ac30d75fd1eb44270');
    assert.ok((replicatorOf(exported, 'aws').clusterKey as Record<string, unknown>).ciphertext);

    // Nothing changed: a preview agrees (every provider's diff is empty).
    ok(dir, ['preview', '-s', 'local', '--expect-no-changes'], 'pulumi preview (no changes)');

    // A setting the replicators reload from etcd: applied to all three without a restart.
    const pids = (res: StateResource[]) => ['aws', 'gcp', 'azure'].map((c) => replicatorOf(res, c).pid);
    const pidsBefore = pids(state(dir));
    ok(dir, ['config', 'set', '-s', 'local', '--path', 'udpmesh:replicator.drainDeadlineMs', '2500']);
    ok(
      dir,
      ['up', '-s', 'local', '--yes', '--skip-preview'],
      'pulumi up (drain deadline: dynamic, via etcd)',
    );
    const dyn = state(dir);
    assert.deepEqual(pids(dyn), pidsBefore, 'no replicator restarted');
    for (const c of ['aws', 'gcp', 'azure']) {
      assert.equal(replicatorOf(dyn, c).lastApply, 'dynamic', c);
      assert.equal((replicatorOf(dyn, c).config as { drain: { deadlineMs: number } }).drain.deadlineMs, 2500);
    }

    // SIGKILL gcp's replicator: refresh records it dead, up restarts it (and only it).
    const before = state(dir);
    const gcpPid = replicatorOf(before, 'gcp').pid as number;
    const awsPid = replicatorOf(before, 'aws').pid as number;
    process.kill(gcpPid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const refreshed = ok(
      dir,
      ['refresh', '-s', 'local', '--yes', '--skip-preview'],
      'pulumi refresh (gcp replicator killed)',
    );
    assert.match(refreshed, /1 updated/);
    const drift = replicatorOf(state(dir), 'gcp');
    assert.equal(drift.running, false);
    assert.equal(drift.pid, 0);
    ok(dir, ['up', '-s', 'local', '--yes', '--skip-preview'], 'pulumi up (repair)');
    const after = state(dir);
    assert.equal(replicatorOf(after, 'gcp').running, true);
    assert.notEqual(replicatorOf(after, 'gcp').pid, gcpPid);
    assert.equal(replicatorOf(after, 'aws').pid, awsPid, 'aws untouched');
    assert.equal(await roundTrip(env.addresses.gcp, ingressPort, 'again', 3000), 'again');

    // Another project reads the outputs through the StackReference helper.
    const consumer = workDir(sb, 'consumer', {
      name: 'consumer',
      runtime: project.runtime,
      main: path.join(REPO_ROOT, 'examples', 'consumer', 'index.ts'),
    });
    ok(consumer, ['stack', 'init', 'c']);
    ok(consumer, ['config', 'set', '-s', 'c', 'udpmeshStack', 'organization/udpmesh/local']);
    ok(consumer, ['up', '-s', 'c', '--yes', '--skip-preview'], 'consumer pulumi up (StackReference)');
    const read = JSON.parse(ok(consumer, ['stack', 'output', '-s', 'c', '--json', '--show-secrets'])) as {
      endpoints: string[];
      etcd: string[];
    };
    assert.deepEqual(read.etcd, outputs.etcdClientEndpoints);
    assert.ok(read.endpoints.includes(`gcp: ${env.addresses.gcp}:${ingressPort}`), read.endpoints.join(' '));
    ok(consumer, ['destroy', '-s', 'c', '--yes', '--skip-preview']);

    ok(dir, ['destroy', '-s', 'local', '--yes', '--skip-preview'], 'pulumi destroy');
    assert.deepEqual(runningUnder(env.stateDir), []);
    for (const p of plan.processes)
      for (const l of p.listeners)
        assert.ok(await isPortFree(l.port, l.address), `${l.what} ${l.address}:${l.port} still taken`);
  });
});
