// End to end on the real Pulumi engine (issue 8 §4), the way a platform uses udpmesh: through the portal
// service's HTTP API (PulumiEngine running the repo's program as a local program, file backend), a
// `clouds: [local]` stack: POST up → SSE to succeeded → GET outputs → UDP from many sessions into an
// ingress taken from the outputs, every cloud's backend (our own recording backends) gets every datagram
// in order and every reply comes back → PATCH a replicator setting + POST up while traffic flows (applied
// through etcd, no restart, nothing accepted lost) → SIGKILL a replicator → Prometheus's HTTP API shows
// UdpmeshPeerDown firing (the project's rule, its `for: 2m` unchanged) → POST refresh reports the dead
// process, POST up restarts only it → the alert resolves → a consumer project reads the outputs through
// StackReference on the same backend → POST destroy → no process left, every port free. Prints the
// timeline. Skips (printing why) only when the engine, etcd or prometheus is absent.
// Duration, about 4.5–6 min on a loaded 2-core machine: mostly the alert's own `for: 2m`, which is kept as
// it is (the local target already evaluates every 5 s; shortening `for` would change what the alert
// means), and the engine running the program twice per portal `up` (the portal's replace-guard preview,
// then the update). Every process, address and port is the test's own: 127.a.b.c triples, free ports, a
// temp state dir whose pid files the after hook uses to kill anything a failure left behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { PulumiEngine } from '../../automation/pulumiEngine.ts';
import { localPlan } from '../../infra/local/plan.ts';
import { requireBinary } from '../../infra/local/providers/common.ts';
import { parseUdpmeshOutputs, type UdpmeshOutputs } from '../../infra/outputs.ts';
import { isRunning, readPidFile, type PidRecord } from '../../replicator/local/detached.ts';
import { isPortFree } from '../../replicator/local/freePort.ts';
import { api, readEvents, startTestService, type TestService } from '../automation/support/harness.ts';
import { exactlyOnceInOrder, formatReport, type Expected } from '../harness/deliveryCheck.ts';
import { findPulumiEngine, engineSandbox, REPO_ROOT, type EngineSandbox } from '../harness/pulumiEngine.ts';
import {
  startRemoteRecordingBackend,
  type RemoteRecordingBackend,
} from '../harness/remoteRecordingBackend.ts';
import { delay, waitFor } from '../harness/wait.ts';
import { killAllUnder, localTestEnv, runningUnder, type LocalTestEnv } from '../infra/local/support.ts';
import { alertsNamed, ContinuousLoad, instantQuery, Timeline } from './support.ts';

const CLOUDS = ['aws', 'gcp', 'azure'] as const;
const CONSUMER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'consumer');
const STACK = 'e2e';
const PEER_DOWN = 'UdpmeshPeerDown';

/** Resource changes of a job, from its SSE result event ({status, result: {changes}}). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const changesOf = (result: any): Record<string, number> => result?.data?.result?.changes ?? {};

describe('e2e: portal service → real Pulumi engine → local target', function () {
  this.timeout(600_000);
  const timeline = new Timeline();
  let sb: EngineSandbox | undefined;
  let env: LocalTestEnv | undefined;
  let svc: TestService | undefined;
  let destroyed = false;
  const backends: Partial<Record<(typeof CLOUDS)[number], RemoteRecordingBackend>> = {};
  const loads: ContinuousLoad[] = [];

  before(function () {
    const probe = findPulumiEngine();
    let reason = probe.ok ? undefined : probe.reason;
    for (const [cmd, pkg, envVar] of [
      ['etcd', 'etcd-server', 'ETCD_BIN'],
      ['prometheus', 'prometheus', 'PROMETHEUS_BIN'],
    ] as const) {
      try {
        requireBinary(cmd, pkg, envVar);
      } catch (err) {
        reason ??= (err as Error).message;
      }
    }
    if (reason) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
  });

  after(async function () {
    this.timeout(180_000);
    if (timeline.steps.length > 0) console.log(`      timeline:\n${timeline.format()}`);
    await Promise.all(loads.map((l) => l.close()));
    // Destroy through the service when the test stopped before its own destroy; then kill whatever is
    // still recorded in the state dir's pid files (a failed destroy, a provider that leaked a process).
    if (svc && !destroyed) {
      try {
        const r = await api(svc.url, 'POST', `/v1/stacks/${STACK}/destroy`, { token: svc.operate, body: {} });
        if (r.status === 202)
          await Promise.race([readEvents(svc.url, r.json.jobId, svc.read), delay(120_000)]);
      } catch (err) {
        console.log(`      cleanup: destroy failed: ${(err as Error).message}`);
      }
    }
    if (env) {
      const left = runningUnder(env.stateDir);
      if (left.length > 0) console.log(`      cleanup: killing what is left: ${left.join(', ')}`);
      await killAllUnder(env.stateDir);
    }
    await Promise.all(Object.values(backends).map((b) => b.close()));
    await svc?.close({ jobTimeoutMs: 10_000 });
    sb?.cleanup();
  });

  /** POSTs an operation and follows its SSE stream to the end; returns the stream and the result event. */
  async function operate(op: string, body: Record<string, unknown> = {}) {
    const r = await api(svc!.url, 'POST', `/v1/stacks/${STACK}/${op}`, { token: svc!.operate, body });
    assert.equal(r.status, 202, `POST ${op}: ${r.status} ${r.text}`);
    const stream = await readEvents(svc!.url, r.json.jobId, svc!.read);
    assert.equal(stream.status, 200);
    const result = stream.events.find((e) => e.event === 'result');
    if (process.env.E2E_TRACE)
      for (const e of stream.events)
        console.log(
          `        ${e.parsed.time} ${e.event} ${e.parsed.data?.type ?? ''} ${e.parsed.data?.op ?? ''} ${String(
            e.parsed.data?.urn ?? e.parsed.data?.message ?? '',
          )
            .split('::')
            .pop()}`.slice(0, 200),
        );
    assert.ok(result, `no result event for ${op}:\n${stream.raw.slice(-3000)}`);
    const job = (await api(svc!.url, 'GET', `/v1/jobs/${r.json.jobId}`, { token: svc!.read })).json;
    assert.equal(
      job.status,
      'succeeded',
      `${op} ${job.status}: ${JSON.stringify(job.error)}\n${stream.raw.slice(-3000)}`,
    );
    return { stream, result: result.parsed, job };
  }

  const pidFile = (cloud: string) => path.join(env!.stateDir, `replicator-${cloud}`, 'replicator.pid');
  const replicatorPid = (cloud: string): PidRecord => {
    const rec = readPidFile(pidFile(cloud));
    assert.ok(rec && isRunning(rec), `${cloud} replicator is not running`);
    return rec;
  };

  /** Where each backend's log stands now (the next traffic is checked from here). */
  const marks = (label: string) =>
    Promise.all(
      CLOUDS.map(async (c) => ({
        mark: await backends[c]!.mark(label),
        distinct: (await backends[c]!.stats()).distinct,
      })),
    );

  /** Waits until every backend has every datagram of the run, then checks order and the echoes. */
  async function checkDelivery(
    label: string,
    load: ContinuousLoad,
    from: { mark: number; distinct: number }[],
  ): Promise<void> {
    const expected: Expected = load.expected;
    const total = expected.sessions.length * expected.perSession;
    await waitFor(
      async () => {
        for (const [i, c] of CLOUDS.entries())
          if ((await backends[c]!.stats()).distinct < from[i]!.distinct + total) return false;
        return load.replyReport().missing === 0;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: `${label}: every backend has all ${total} datagrams and every echo is back`,
        detail: async () => {
          const lines: string[] = [];
          for (const [i, c] of CLOUDS.entries())
            lines.push(
              formatReport(`${c} backend`, (await backends[c]!.snapshot()).report(expected, from[i]!.mark)),
            );
          lines.push(formatReport('echo replies', load.replyReport()));
          return lines.join('\n');
        },
      },
    );
    for (const [i, c] of CLOUDS.entries()) {
      const log = await backends[c]!.snapshot();
      const r = log.report(expected, from[i]!.mark);
      assert.ok(exactlyOnceInOrder(r), formatReport(`${label}: ${c} backend`, r));
      assert.equal(log.invalid, 0, `${label}: ${c} backend got altered payloads`);
    }
    const replies = load.replyReport();
    assert.equal(
      replies.missing + replies.duplicates + replies.unexpected,
      0,
      formatReport('echoes', replies),
    );
    assert.equal(load.invalidReplies, 0);
  }

  it('up, traffic, a live setting change, a SIGKILL with the alert, refresh and repair, StackReference, destroy', async () => {
    const probe = findPulumiEngine();
    assert.ok(probe.ok);
    sb = engineSandbox(probe.binDir, 'udpmesh-e2e-');
    for (const c of CLOUDS) backends[c] = await startRemoteRecordingBackend(`${c}-backend`);
    env = await localTestEnv({});
    const spec = {
      ...env.input,
      local: {
        ...env.input.local,
        backends: Object.fromEntries(CLOUDS.map((c) => [c, backends[c]!.endpoint])),
      },
    };
    const pick = (k: string) => (sb!.env[k] !== undefined ? { [k]: sb!.env[k]! } : {});
    const engine = new PulumiEngine({
      stateDir: path.join(sb.dir, 'portal'),
      projectDir: REPO_ROOT,
      backendUrl: `file://${sb.backendDir}`,
      pulumiRoot: path.dirname(probe.binDir),
      pulumiHome: sb.env.PULUMI_HOME!,
      envVars: {
        ...pick('PATH'),
        ...pick('PULUMI_CONFIG_PASSPHRASE'),
        ...pick('PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION'),
        ...pick('NO_COLOR'),
      },
    });
    svc = await startTestService(engine, { heartbeatMs: 5000 });
    console.log(`      state dir: ${env.stateDir}; engine sandbox: ${sb.dir}`);

    // 1. A new stack from its spec; the job's event stream followed to the end.
    const created = await timeline.step('POST up (new stack, spec) → SSE to succeeded', () =>
      operate('up', { spec, message: 'e2e: create' }),
    );
    assert.ok(
      created.stream.events.some((e) => e.event === 'engine' && e.parsed.data?.type === 'summary'),
      'the stream carried the engine summary',
    );

    // 2. Outputs through the portal (the outputs contract).
    const outputs: UdpmeshOutputs = await timeline.step('GET outputs', async () => {
      const r = await api(svc!.url, 'GET', `/v1/stacks/${STACK}/outputs`, { token: svc!.read });
      assert.equal(r.status, 200, r.text);
      const plain = Object.fromEntries(
        Object.entries(r.json.outputs as Record<string, { value: unknown }>).map(([k, v]) => [k, v.value]),
      );
      return parseUdpmeshOutputs(plain);
    });
    assert.equal(outputs.target, 'local');
    assert.deepEqual(outputs.clouds, [...CLOUDS]);
    assert.ok(outputs.prometheusUrl);
    const ingressHost = outputs.awsUdpEndpoint!;
    const ingressPort = outputs.udpPorts[0]!;
    assert.equal(ingressHost, env.addresses.aws);
    const pidsAtStart = Object.fromEntries(CLOUDS.map((c) => [c, replicatorPid(c)]));
    const everyPid: PidRecord[] = [];
    const collectPids = () => {
      for (const p of localPlan(env!.spec, 'udpmesh', STACK).processes) {
        const rec = readPidFile(p.pidFile);
        if (rec && !everyPid.some((x) => x.pid === rec.pid && x.startTime === rec.startTime))
          everyPid.push(rec);
      }
    };
    collectPids();

    // 3. Several sessions into the aws ingress: every cloud's backend gets every datagram in order.
    await timeline.step('UDP: 20 sessions × 100 into aws ingress → all backends, all echoes', async () => {
      const from = await marks('first');
      const load = await new ContinuousLoad(ingressHost, ingressPort, 20, 1000, 1).start();
      loads.push(load);
      await waitFor(() => load.sent >= 2000, { timeoutMs: 20_000, what: '2000 datagrams sent' });
      await load.stop();
      await checkDelivery('first traffic', load, from);
    });

    // 4. A replicator setting the replicators reload from etcd, changed while traffic flows.
    await timeline.step('PATCH spec + POST up (allowedSourceRanges) during traffic', async () => {
      const from = await marks('change');
      const logMarks = CLOUDS.map((c) => readFileSync(replicatorLog(c), 'utf8').length);
      const load = await new ContinuousLoad(ingressHost, ingressPort, 20, 500, 101).start();
      loads.push(load);
      const patched = await api(svc!.url, 'PATCH', `/v1/stacks/${STACK}/spec`, {
        token: svc!.operate,
        body: { replicator: { allowedSourceRanges: ['127.0.0.0/8'] } },
      });
      assert.equal(patched.status, 200, patched.text);
      assert.equal(patched.json.version, 2);
      const { result } = await operate('up', { message: 'e2e: admission list' });
      const sentDuringUp = load.sent;
      await delay(500);
      await load.stop();
      assert.ok(sentDuringUp > 0 && load.startedAt > 0);
      assert.equal(changesOf(result).update, 3, JSON.stringify(result));
      for (const [i, c] of CLOUDS.entries()) {
        assert.equal(replicatorPid(c).pid, pidsAtStart[c]!.pid, `${c} replicator was not restarted`);
        const fresh = readFileSync(replicatorLog(c), 'utf8').slice(logMarks[i]);
        assert.match(fresh, /applied dynamic config/, `${c} replicator applied the new settings`);
        const cfg = JSON.parse(
          readFileSync(path.join(env!.stateDir, `replicator-${c}`, 'replicator.config.json'), 'utf8'),
        ) as { ingress: { allowCidrs: string[] } };
        assert.deepEqual(cfg.ingress.allowCidrs, ['127.0.0.0/8']);
      }
      await checkDelivery('traffic during the change', load, from);
    });

    // 5. SIGKILL gcp's replicator; the project's peer-down alert fires in Prometheus.
    const killed = replicatorPid('gcp');
    await timeline.step('SIGKILL gcp replicator', async () => {
      process.kill(killed.pid, 'SIGKILL');
      await waitFor(() => !isRunning(killed), { timeoutMs: 5000, what: 'the gcp replicator is gone' });
    });
    let pendingAfterMs = 0;
    await timeline.step(`Prometheus API: ${PEER_DOWN} pending, then firing (for: 2m)`, async () => {
      const t0 = Date.now();
      await waitFor(
        async () => {
          const alerts = await alertsNamed(outputs.prometheusUrl!, PEER_DOWN);
          if (!pendingAfterMs && alerts.length > 0) pendingAfterMs = Date.now() - t0;
          return alerts.some((a) => a.state === 'firing' && a.labels.peer?.startsWith('gcp'));
        },
        {
          timeoutMs: 200_000,
          intervalMs: 1000,
          what: `${PEER_DOWN} fires for the gcp peer`,
          detail: async () =>
            `alerts: ${JSON.stringify(await alertsNamed(outputs.prometheusUrl!, PEER_DOWN))}\n` +
            `udpmesh_peer_up: ${JSON.stringify(await instantQuery(outputs.prometheusUrl!, 'udpmesh_peer_up'))}`,
        },
      );
    });
    console.log(`      (${PEER_DOWN} was pending ${(pendingAfterMs / 1000).toFixed(1)} s after the kill)`);

    // 6. refresh records the dead process (drift), up restarts it and only it.
    await timeline.step('POST refresh → drift reported', async () => {
      const { stream, result } = await operate('refresh', { message: 'e2e: refresh' });
      const gcp = stream.events.filter(
        (e) => e.event === 'engine' && String(e.parsed.data?.urn ?? '').endsWith('::gcp-replicator'),
      );
      // The engine refreshed gcp's replicator and its recorded state changed (running: false, pid: 0).
      assert.ok(
        gcp.some((e) => e.parsed.data.type === 'resource-outputs' && e.parsed.data.op === 'update'),
        JSON.stringify(gcp.map((e) => e.parsed.data)),
      );
      console.log(`      refresh: ${JSON.stringify(changesOf(result))}; gcp-replicator updated in the state`);
      assert.equal(changesOf(result).update, 1, JSON.stringify(result));
    });
    await timeline.step('POST up → repaired (only gcp restarted)', async () => {
      const { result } = await operate('up', { message: 'e2e: repair' });
      assert.equal(changesOf(result).update, 1, JSON.stringify(result));
      assert.notEqual(replicatorPid('gcp').pid, killed.pid);
      for (const c of ['aws', 'azure'] as const)
        assert.equal(replicatorPid(c).pid, pidsAtStart[c]!.pid, `${c} untouched`);
      collectPids();
    });
    await timeline.step(`Prometheus API: ${PEER_DOWN} resolved`, async () => {
      await waitFor(async () => (await alertsNamed(outputs.prometheusUrl!, PEER_DOWN)).length === 0, {
        timeoutMs: 60_000,
        intervalMs: 1000,
        what: `${PEER_DOWN} is no longer active`,
        detail: async () => JSON.stringify(await alertsNamed(outputs.prometheusUrl!, PEER_DOWN)),
      });
    });

    // 7. Another project on the same backend reads the outputs through StackReference.
    await timeline.step('consumer project: pulumi up (StackReference)', async () => {
      const dir = path.join(sb!.dir, 'consumer');
      mkdirSync(dir, { recursive: true });
      const project = YAML.parse(readFileSync(path.join(CONSUMER, 'Pulumi.yaml'), 'utf8')) as Record<
        string,
        unknown
      >;
      project.main = path.join(CONSUMER, 'index.ts');
      writeFileSync(path.join(dir, 'Pulumi.yaml'), YAML.stringify(project));
      symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
      const cli = (args: string[]) => {
        const r = spawnSync(probe.pulumi, [...args, '--non-interactive'], {
          cwd: dir,
          env: sb!.env,
          encoding: 'utf8',
          timeout: 180_000,
        });
        assert.equal(r.status, 0, `pulumi ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`.slice(-4000));
        return r.stdout;
      };
      cli(['stack', 'init', 'consumer']);
      cli(['config', 'set', 'udpmeshStack', `organization/udpmesh/${STACK}`]);
      cli(['up', '--yes', '--skip-preview']);
      const read = JSON.parse(cli(['stack', 'output', '--json', '--show-secrets'])) as Record<
        string,
        unknown
      >;
      assert.equal(read.target, 'local');
      assert.deepEqual(read.etcd, outputs.etcdClientEndpoints);
      assert.equal(read.prometheusUrl, outputs.prometheusUrl);
      assert.deepEqual(
        read.endpoints,
        CLOUDS.map((c) => `${c}=${env!.addresses[c]}:${ingressPort}`),
      );
      cli(['destroy', '--yes', '--skip-preview', '--remove']);
    });

    // 8. destroy: nothing left running, every port free.
    await timeline.step('POST destroy → no process, every port free', async () => {
      await operate('destroy', { message: 'e2e: destroy' });
      destroyed = true;
      assert.deepEqual(runningUnder(env!.stateDir), []);
      const alive = everyPid.filter((r) => isRunning(r));
      assert.deepEqual(alive, [], 'every process the stack started is gone');
      assert.deepEqual(processesMentioning(env!.stateDir), [], 'no process refers to the state dir');
      for (const p of localPlan(env!.spec, 'udpmesh', STACK).processes)
        for (const l of p.listeners)
          assert.ok(await isPortFree(l.port, l.address), `${l.what} ${l.address}:${l.port} still taken`);
    });
  });

  /** Processes whose command line names dir (also those no pid file recorded). */
  function processesMentioning(dir: string): string[] {
    const out: string[] = [];
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
        if (cmd.includes(dir)) out.push(`${pid}: ${cmd.slice(0, 160)}`);
      } catch {
        /* gone meanwhile */
      }
    }
    return out;
  }

  function replicatorLog(cloud: string): string {
    return path.join(env!.stateDir, `replicator-${cloud}`, 'replicator.log');
  }
});
