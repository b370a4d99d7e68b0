// The local target's dynamic providers called directly (create/read/diff/update/delete), on real
// processes: Debian etcd, replicators, echo backends, Prometheus. The same functions run inside
// Pulumi's dynamic-provider process under the real engine (localStack.test.ts).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { localPlan } from '../../../infra/local/plan.ts';
import * as echo from '../../../infra/local/providers/echo.ts';
import * as etcd from '../../../infra/local/providers/etcd.ts';
import * as prometheus from '../../../infra/local/providers/prometheus.ts';
import * as replicator from '../../../infra/local/providers/replicator.ts';
import { requireBinary } from '../../../infra/local/providers/common.ts';
import { alertRuleGroups } from '../../../infra/monitoring/alertRules.ts';
import { isPortFree } from '../../../replicator/local/freePort.ts';
import { localReplicatorConfig } from '../../../replicator/local/localNode.ts';
import { waitFor } from '../../harness/wait.ts';
import { killAllUnder, localTestEnv, roundTrip, runningUnder, type LocalTestEnv } from './support.ts';

describe('local target: dynamic providers on real processes', function () {
  this.timeout(120_000);
  let env: LocalTestEnv;
  const plan = () => localPlan(env.spec, 'udpmesh', 'test');

  beforeEach(async () => {
    env = await localTestEnv();
  });
  afterEach(async () => {
    await killAllUnder(env.stateDir);
  });

  async function upMesh() {
    const p = plan();
    const e = await etcd.create({
      dir: p.etcd.dir,
      token: p.etcd.token,
      members: p.etcd.members.map(({ name, address, clientPort, peerPort }) => ({
        name,
        address,
        clientPort,
        peerPort,
      })),
      heartbeatMs: p.etcd.heartbeatMs,
      electionMs: p.etcd.electionMs,
      readyTimeoutMs: 30_000,
    });
    const echoes = await Promise.all(
      p.clouds.map((c) =>
        echo.create({
          dir: c.echo!.dir,
          cloud: c.cloud,
          address: c.address,
          port: c.echo!.port,
          readyTimeoutMs: 20_000,
        }),
      ),
    );
    const r = env.spec.replicator;
    const reps = await Promise.all(
      p.clouds.map((c, i) =>
        replicator.create({
          dir: c.replicatorDir,
          cloud: c.cloud,
          config: localReplicatorConfig({
            cloud: c.cloud,
            mesh: env.spec.mesh,
            address: c.address,
            ingressPorts: r.ingressPorts,
            replicationPort: r.replicationPort,
            metricsPort: r.metricsPort,
            backend: echoes[i]!.outs.endpoint,
            etcdEndpoints: e.outs.endpoints,
            drainDeadlineMs: r.drainDeadlineMs,
          }),
          clusterKey: 'k'.repeat(64),
          readyTimeoutMs: 45_000,
        }),
      ),
    );
    return { p, e, echoes, reps };
  }

  it('create starts etcd, echo backends and replicators that carry datagrams; read sees a SIGKILLed replicator or etcd member; update restarts it; delete stops everything and frees every port', async () => {
    const { p, e, echoes, reps } = await upMesh();
    assert.equal(e.outs.running, true);
    assert.ok(reps.every((x) => x.outs.running && x.outs.pid > 0));
    const aws = p.clouds[0]!;
    assert.equal(await roundTrip(aws.address, env.spec.replicator.ingressPorts[0]!, 'hello', 2000), 'hello');

    // SIGKILL gcp's replicator: refresh (read) reports it, diff wants an update, update restarts it.
    const gcp = reps[1]!;
    process.kill(gcp.outs.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const seen = replicator.read(gcp.id, gcp.outs);
    assert.equal(seen.running, false);
    assert.equal(seen.pid, 0);
    assert.equal(replicator.diff(gcp.id, seen, gcp.outs).changes, true);
    const fixed = await replicator.update(gcp.id, seen, gcp.outs);
    assert.equal(fixed.outs.running, true);
    assert.equal(fixed.outs.lastApply, 'restart');
    assert.notEqual(fixed.outs.pid, gcp.outs.pid);
    assert.equal(replicator.diff(gcp.id, replicator.read(gcp.id, fixed.outs), gcp.outs).changes, false);

    // A dead etcd member: read reports it, update restarts it on its data and the cluster is whole again.
    const member1 = e.outs.memberStates[1]!.pid;
    process.kill(member1, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const etcdSeen = etcd.read(e.id, e.outs);
    assert.equal(etcdSeen.running, false);
    assert.deepEqual(
      etcdSeen.memberStates.map((m) => m.running),
      [true, false, true],
    );
    assert.equal(etcd.diff(e.id, etcdSeen, e.outs).changes, true);
    const etcdFixed = await etcd.update(e.id, etcdSeen, e.outs);
    assert.equal(etcdFixed.outs.running, true);
    assert.equal(etcdFixed.outs.memberStates[0]!.pid, e.outs.memberStates[0]!.pid, 'the others untouched');

    // A config file edited behind our back is drift too.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${reps[2]!.id}/replicator.config.json`, '{}\n');
    const drifted = replicator.read(reps[2]!.id, reps[2]!.outs);
    assert.notEqual(drifted.configHash, reps[2]!.outs.configHash);
    assert.equal(replicator.diff(reps[2]!.id, drifted, reps[2]!.outs).changes, true);

    // Delete: every process stopped, state removed, every port free again.
    for (const [i, x] of reps.entries()) await replicator.remove(x.id, i === 1 ? fixed.outs : x.outs);
    for (const x of echoes) await echo.remove(x.id, x.outs);
    await etcd.remove(e.id, etcdFixed.outs);
    assert.deepEqual(runningUnder(env.stateDir), []);
    for (const proc of p.processes) {
      if (proc.what === 'prometheus') continue;
      assert.equal(existsSync(proc.pidFile), false, proc.pidFile);
      for (const l of proc.listeners)
        assert.ok(await isPortFree(l.port, l.address), `${l.what} ${l.address}:${l.port}`);
    }
  });

  it('a new backend goes through etcd without a restart; a new log level restarts only that replicator', async () => {
    const { reps, echoes } = await upMesh();
    const aws = reps[0]!;
    const dyn = structuredClone(aws.outs.config);
    dyn.delivery = { backends: [echoes[1]!.outs.endpoint] };
    assert.equal(replicator.diff(aws.id, aws.outs, { ...aws.outs, config: dyn }).changes, true);
    const applied = await replicator.update(aws.id, aws.outs, { ...aws.outs, config: dyn });
    assert.equal(applied.outs.lastApply, 'dynamic');
    assert.equal(applied.outs.pid, aws.outs.pid, 'same process');

    const restartCfg = structuredClone(dyn);
    restartCfg.log = { level: 'debug' };
    const restarted = await replicator.update(aws.id, applied.outs, { ...applied.outs, config: restartCfg });
    assert.equal(restarted.outs.lastApply, 'restart');
    assert.notEqual(restarted.outs.pid, aws.outs.pid);
    assert.equal(replicator.read(reps[1]!.id, reps[1]!.outs).pid, reps[1]!.outs.pid, 'gcp untouched');
  });

  it('Prometheus starts with the udpmesh alert rules, reloads new targets without a restart, and stops', async () => {
    const p = plan();
    const prom = p.prometheus!;
    const inputs = {
      dir: prom.dir,
      address: prom.address,
      port: prom.port,
      scrapeIntervalSeconds: 5,
      targets: [{ job: 'udpmesh-replicator', target: `${env.addresses.aws}:1`, labels: { cloud: 'aws' } }],
      ruleGroups: alertRuleGroups(60),
      readyTimeoutMs: 30_000,
    };
    const c = await prometheus.create(inputs);
    const rules = (await (await fetch(`${c.outs.url}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string }[] }[] };
    };
    const names = rules.data.groups.flatMap((g) => g.rules.map((r) => r.name));
    assert.ok(names.includes('UdpmeshPeerDown'), names.join(','));
    const more = {
      ...inputs,
      targets: [...inputs.targets, { job: 'etcd', target: `${env.addresses.gcp}:2`, labels: {} }],
    };
    assert.equal(prometheus.diff(c.id, c.outs, more).changes, true);
    const u = await prometheus.update(c.id, c.outs, more);
    assert.equal(u.outs.pid, c.outs.pid);
    // Reloaded config: the new job shows up among the targets (discovery takes a moment).
    await waitFor(
      async () => {
        const targets = (await (await fetch(`${c.outs.url}/api/v1/targets`)).json()) as {
          data: { activeTargets: { labels: { job: string } }[] };
        };
        return targets.data.activeTargets.some((t) => t.labels.job === 'etcd');
      },
      { timeoutMs: 15_000, what: 'the etcd job among the targets' },
    );
    await prometheus.remove(c.id, u.outs);
    assert.ok(await isPortFree(prom.port, prom.address));
  });

  it('a port taken at create time: an error naming it, and nothing left running', async () => {
    const p = plan();
    const c = p.clouds[0]!;
    const squatter = createSocket('udp4');
    await new Promise<void>((r) => squatter.bind(c.echo!.port, c.address, r));
    try {
      await assert.rejects(
        echo.create({
          dir: c.echo!.dir,
          cloud: 'aws',
          address: c.address,
          port: c.echo!.port,
          readyTimeoutMs: 5000,
        }),
        new RegExp(
          `port ${c.echo!.port} on ${c.address.replace(/\./g, '\\.')} \\(aws echo backend\\) is already in use`,
        ),
      );
      assert.deepEqual(runningUnder(env.stateDir), []);
      assert.equal(existsSync(c.echo!.dir), false);
    } finally {
      squatter.close();
    }
  });

  it('create after an interrupted create (process running, not in the state) replaces the orphan instead of failing on its port', async () => {
    const c = plan().clouds[0]!;
    const inputs = {
      dir: c.echo!.dir,
      cloud: 'aws',
      address: c.address,
      port: c.echo!.port,
      readyTimeoutMs: 20_000,
    };
    const first = await echo.create(inputs);
    const second = await echo.create(inputs);
    assert.equal(second.outs.running, true);
    assert.notEqual(second.outs.pid, first.outs.pid);
    assert.equal(echo.read(first.id, first.outs).pid, second.outs.pid, 'one echo backend, the new one');
    await echo.remove(second.id, second.outs);
    assert.deepEqual(runningUnder(env.stateDir), []);
  });

  it('a missing etcd or prometheus binary: the apt command that installs it', () => {
    assert.throws(
      () => requireBinary('udpmesh-no-such-prometheus', 'prometheus'),
      /sudo apt-get update && sudo apt-get install -y prometheus/,
    );
  });
});
