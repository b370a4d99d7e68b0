// `npm run bench`: udpmesh against a plain-Node baseline of the same shape, on loopback.
//   --quick              ~1 minute smoke run (2 s steps, rates 10k and max, 20k sessions)
//   --rates 5k,10k,max   paced rates in datagrams/s ("max" = open loop)
//   --duration 5         seconds per step
//   --sessions 64        client sessions (sockets) per step
//   --payload 64         datagram size in bytes
//   --modes oneway,reply
//   --session-count N    concurrent sessions for the memory step (0 skips it)
//   --out bench-results  where the JSON goes
//   --cpu-prof           V8 CPU profiles of the replicators (written on exit to <out>/profiles-<time>/)
//   --wait-idle 600      first wait up to this many seconds for the host to be mostly idle (shared machines)
// Steps alternate udpmesh / baseline at each rate so that load from elsewhere on the host hits both.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderText, writeJson, type BenchDoc, type SessionsResultDoc, type Summary } from './report.ts';
import { processTree, rssMb, round1, type ReplicatorCounters } from './measure.ts';
import { REPO_ROOT, sleep } from './procs.ts';
import { runStep, SystemDied, type StepResult } from './steps.ts';
import {
  CLUSTERS,
  Shared,
  startBaseline,
  startUdpmesh,
  type Mode,
  type SystemUnderTest,
} from './topology.ts';
import type { SessionsResult } from './wire.ts';

const USAGE = `usage: npm run bench -- [--quick] [--rates 5k,10k,20k,40k,max] [--duration 5] [--sessions 64] [--payload 64]
                       [--modes oneway,reply] [--session-count 100000] [--out bench-results] [--cpu-prof] [--wait-idle 600]`;

function parseRate(s: string): number {
  const t = s.trim().toLowerCase();
  if (t === 'max') return 0;
  const m = /^(\d+(?:\.\d+)?)(k?)$/.exec(t);
  if (!m) throw new Error(`--rates: cannot read ${JSON.stringify(s)} (use e.g. 5000, 20k or max)`);
  const v = Number(m[1]) * (m[2] ? 1000 : 1);
  if (!(v >= 1 && v <= 10_000_000)) throw new Error(`--rates: ${s} out of range`);
  return Math.round(v);
}

function rateLabel(rate: number): string {
  if (rate === 0) return 'max';
  return rate % 1000 === 0 ? `${rate / 1000}k` : String(rate);
}

function positive(name: string, v: string | undefined, dflt: number, max: number, allowZero = false): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < (allowZero ? 0 : 1e-9) || n > max)
    throw new Error(`${name}: expected a number up to ${max}, got ${v}`);
  return n;
}

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rates: { type: 'string' },
    duration: { type: 'string' },
    sessions: { type: 'string' },
    payload: { type: 'string' },
    modes: { type: 'string' },
    'session-count': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'wait-idle': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const quick = values.quick ?? false;
const opts = {
  quick,
  rates: (values.rates ?? (quick ? '10k,max' : '5k,10k,20k,40k,max')).split(',').map(parseRate),
  durationMs: Math.round(positive('--duration', values.duration, quick ? 2 : 5, 120) * 1000),
  sessions: Math.round(positive('--sessions', values.sessions, 64, 4096)),
  payloadBytes: Math.max(24, Math.round(positive('--payload', values.payload, 64, 1400))),
  modes: (values.modes ?? 'oneway,reply').split(',').map((m) => {
    if (m !== 'oneway' && m !== 'reply') throw new Error(`--modes: ${m} is not oneway or reply`);
    return m as Mode;
  }),
  sessionCount: Math.round(
    positive('--session-count', values['session-count'], quick ? 20_000 : 100_000, 1_000_000, true),
  ),
  out: values.out ?? join(REPO_ROOT, 'bench-results'),
  cpuProf: values['cpu-prof'] ?? false,
  waitIdleSeconds: positive('--wait-idle', values['wait-idle'], 0, 3600, true),
};
if (process.platform !== 'linux')
  throw new Error('the bench reads /proc and binds 127.x.y.z addresses: Linux only');

const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

const dir = mkdtempSync(join(tmpdir(), 'udpmesh-bench-'));
let shared: Shared | undefined;
const live = new Set<SystemUnderTest>();
let cleaning: Promise<void> | undefined;

function cleanup(keepLogs = false): Promise<void> {
  cleaning ??= (async () => {
    await Promise.allSettled([...live].map((s) => s.stop()));
    live.clear();
    await shared?.stop();
    if (keepLogs) log(`logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  })();
  return cleaning;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    interrupted = true;
    log(`${sig}: stopping every process and removing ${dir}`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function start<T extends SystemUnderTest>(p: Promise<T>): Promise<T> {
  const s = await p;
  live.add(s);
  return s;
}
async function stop(s: SystemUnderTest): Promise<void> {
  live.delete(s);
  await s.stop();
}

const sumCounters = (cs: ReplicatorCounters[] | undefined): { etcd: number; ingress: number } =>
  (cs ?? []).reduce((a, c) => ({ etcd: a.etcd + c.etcdRequests, ingress: a.ingress + c.ingress }), {
    etcd: 0,
    ingress: 0,
  });

/** Share of all cores busy over the next `ms` (from /proc/stat), in percent. */
async function hostBusyPct(ms: number): Promise<number> {
  const read = (): { busy: number; total: number } => {
    const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const idle = v[3]! + v[4]!;
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  };
  const a = read();
  await sleep(ms);
  const b = read();
  return b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * 100 : 0;
}

async function waitIdle(seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const busy = await hostBusyPct(3000);
    if (busy < 25) {
      log(`host ${busy.toFixed(0)}% busy: starting`);
      return;
    }
    if (Date.now() > deadline) {
      log(`host still ${busy.toFixed(0)}% busy after ${seconds} s: starting anyway`);
      return;
    }
    log(`host ${busy.toFixed(0)}% busy: waiting for it to quieten (--wait-idle)`);
    await sleep(7000);
  }
}

async function main(): Promise<void> {
  if (opts.waitIdleSeconds > 0) await waitIdle(opts.waitIdleSeconds);
  const startedAt = new Date().toISOString();
  const profDir = opts.cpuProf ? join(opts.out, `profiles-${startedAt.replace(/[:.]/g, '-')}`) : undefined;
  const env = profDir
    ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profDir}`.trim() }
    : undefined;
  if (profDir) log(`CPU profiles of the replicators go to ${profDir}`);
  const load0 = loadavg();
  log(
    `temp dir ${dir}; rates ${opts.rates.map(rateLabel).join(',')}; ${opts.durationMs / 1000} s steps; modes ${opts.modes.join(',')}`,
  );
  if (load0[0]! > 1)
    log(
      `note: load average is ${load0[0]!.toFixed(2)} before starting: other work on this host will skew the numbers (reported as other%)`,
    );
  const sh = await Shared.start(dir);
  shared = sh;
  const steps: StepResult[] = [];
  const etcdTotals = { requests: 0, ingress: 0 };
  const summary: Summary = { etcdRequestsPer1000: null };
  const stepOpts = (label: string, rate: number) => ({
    label,
    rate,
    durationMs: opts.durationMs,
    sessions: opts.sessions,
    payloadBytes: opts.payloadBytes,
  });
  const show = (r: StepResult): void => {
    const extra = r.reply ? `, rtt p99 ${r.reply.rttUs.p99} µs, reply loss ${r.reply.lossPct}%` : '';
    log(
      `${r.mode} ${r.system.padEnd(8)} ${r.label.padEnd(5)} offered ${r.offeredPerSec}/s delivered ${r.deliveredPerSec}/s loss ${r.lossPct}% ` +
        `p50 ${r.latencyUs.p50} p99 ${r.latencyUs.p99} µs${extra}; aws cpu ${r.usage.procs.find((p) => p.name === 'aws')?.cpuPct}%`,
    );
  };

  async function runMode(mode: Mode): Promise<void> {
    log(`${mode}: starting udpmesh (etcd + 3 replicators) and the baseline (3 plain forwarders)`);
    await sh.setEcho(mode === 'reply');
    const [um, bl] = await Promise.all([
      start(startUdpmesh(sh, { mode, mesh: `bench-${mode}`, env })),
      start(startBaseline(sh, mode)),
    ]);
    // Warm both up (JIT, socket buffers, sessions) before measuring.
    await runStep(sh, um, { ...stepOpts('warmup', 10_000), durationMs: 1500, warmup: true });
    await runStep(sh, bl, { ...stepOpts('warmup', 10_000), durationMs: 1500, warmup: true });
    const c0 = sumCounters(await um.counters());
    const modeSteps: StepResult[] = [];
    for (const rate of opts.rates) {
      for (const sut of [um, bl]) {
        const r = await runStep(sh, sut, stepOpts(rateLabel(rate), rate));
        show(r);
        modeSteps.push(r);
      }
    }
    const best = (kind: string): number =>
      Math.max(0, ...modeSteps.filter((s) => s.system === kind).map((s) => s.deliveredPerSec));
    const uMax = best('udpmesh');
    const bMax = best('baseline');
    const half = Math.max(1000, Math.round(uMax / 2 / 100) * 100);
    for (const sut of [um, bl]) {
      const r = await runStep(sh, sut, stepOpts('half', half));
      r.label = `half=${rateLabel(half)}`;
      show(r);
      modeSteps.push(r);
    }
    const c1 = sumCounters(await um.counters());
    etcdTotals.requests += c1.etcd - c0.etcd;
    etcdTotals.ingress += c1.ingress - c0.ingress;
    steps.push(...modeSteps);
    const hu = modeSteps.find((s) => s.system === 'udpmesh' && s.label.startsWith('half'))!;
    const hb = modeSteps.find((s) => s.system === 'baseline' && s.label.startsWith('half'))!;
    // CPU per datagram at the highest-rate step (max if it ran): the least noise-sensitive throughput figure.
    const topCpu = (kind: string): number | null => {
      const mine = modeSteps.filter((x) => x.system === kind && !x.label.startsWith('half'));
      const top = mine.find((x) => x.label === 'max') ?? mine[mine.length - 1];
      return top?.cpuUsPerDatagram.ingress ?? null;
    };
    const perCore = (us: number | null): number | null =>
      us === null || us <= 0 ? null : Math.round(1e6 / us);
    const diff = (a: number | null, b: number | null): number | null =>
      a === null || b === null ? null : round1(a - b);
    if (mode === 'oneway') {
      summary.oneway = {
        udpmeshMaxPerSec: uMax,
        baselineMaxPerSec: bMax,
        ratio: bMax > 0 ? Math.round((uMax / bMax) * 1000) / 1000 : 0,
        halfRate: half,
        p99UdpmeshUs: hu.latencyUs.p99,
        p99BaselineUs: hb.latencyUs.p99,
        p99AddedUs: diff(hu.latencyUs.p99, hb.latencyUs.p99),
        ingressCpuUs: { udpmesh: topCpu('udpmesh'), baseline: topCpu('baseline') },
        projectedOneCorePerSec: {
          udpmesh: perCore(topCpu('udpmesh')),
          baseline: perCore(topCpu('baseline')),
        },
      };
    } else {
      summary.reply = {
        udpmeshMaxPerSec: uMax,
        baselineMaxPerSec: bMax,
        ratio: bMax > 0 ? Math.round((uMax / bMax) * 1000) / 1000 : 0,
        halfRate: half,
        rttP99AddedUs: diff(hu.reply!.rttUs.p99, hb.reply!.rttUs.p99),
        deliveryP99AddedUs: diff(hu.latencyUs.p99, hb.latencyUs.p99),
      };
    }
    await Promise.all([stop(um), stop(bl)]);
  }

  const incidents: string[] = [];
  for (const mode of opts.modes) {
    // A process of the system dying mid-run (something else on the host signalling it) voids the mode's
    // numbers: start both systems again and redo the mode, at most twice.
    for (let attempt = 1; ; attempt++) {
      try {
        await runMode(mode);
        break;
      } catch (err) {
        await Promise.allSettled([...live].map((s) => stop(s)));
        if (!(err instanceof SystemDied) || attempt >= 3) throw err;
        incidents.push(`${mode} attempt ${attempt}: ${err.message}`);
        log(`${mode}: ${err.message}; starting the mode again`);
      }
    }
  }

  const sessions: SessionsResultDoc[] = [];
  if (opts.sessionCount > 0) {
    for (const mode of opts.modes) {
      for (let attempt = 1; ; attempt++) {
        try {
          sessions.push(await sessionsStep(sh, opts.sessionCount, mode));
          break;
        } catch (err) {
          if (!(err instanceof SystemDied) || attempt >= 2) throw err;
          incidents.push(`sessions ${mode} attempt ${attempt}: ${err.message}`);
          log(`sessions (${mode}): ${err.message}; again`);
        }
      }
    }
  }

  const per1000 = etcdTotals.ingress > 0 ? (etcdTotals.requests / etcdTotals.ingress) * 1000 : null;
  summary.etcdRequestsPer1000 = per1000 === null ? null : Math.round(per1000 * 1000) / 1000;
  summary.sessions = sessions.map((s) => {
    const rss = Object.values(s.rssMb)
      .flatMap((v) => [v.afterOpen, v.afterRefresh])
      .filter((v): v is number => v !== null);
    return {
      mode: s.mode,
      count: Math.max(s.sessionsActive.afterOpen, s.sessionsActive.afterRefresh),
      target: s.target,
      maxRssMb: rss.length ? Math.max(...rss) : null,
      projectedMb: s.projectedIngressRssMb,
    };
  });
  const targets: BenchDoc['targets'] = [];
  // A latency difference means nothing when other processes took the CPU during either half-rate step.
  const halfSteps = (mode: Mode): StepResult[] =>
    steps.filter((x) => x.mode === mode && x.label.startsWith('half'));
  const halfDisturbed = (mode: Mode): boolean => halfSteps(mode).some((x) => x.usage.foreignCpuPct > 25);
  const halfNote = (mode: Mode): string =>
    halfDisturbed(mode)
      ? `; not judged: other processes used ${halfSteps(mode)
          .map((x) => `${Math.round(x.usage.foreignCpuPct)}%`)
          .join('/')} of a core during these steps`
      : '';
  if (summary.oneway) {
    targets.push({
      name: 'one-way throughput vs baseline',
      target: '>= 0.6x',
      value: `${summary.oneway.ratio.toFixed(2)}x (${summary.oneway.udpmeshMaxPerSec}/s vs ${summary.oneway.baselineMaxPerSec}/s)`,
      pass: summary.oneway.ratio >= 0.6,
    });
    targets.push({
      name: `added p99 delivery latency at half max (${summary.oneway.halfRate}/s)`,
      target: '< 1000 µs',
      value:
        (summary.oneway.p99AddedUs === null
          ? '-'
          : `${summary.oneway.p99AddedUs} µs (${summary.oneway.p99UdpmeshUs} vs ${summary.oneway.p99BaselineUs})`) +
        halfNote('oneway'),
      pass:
        summary.oneway.p99AddedUs === null || halfDisturbed('oneway')
          ? null
          : summary.oneway.p99AddedUs < 1000,
    });
  }
  if (summary.oneway) {
    const c = summary.oneway.ingressCpuUs;
    const p = summary.oneway.projectedOneCorePerSec;
    targets.push({
      name: 'one-way ingress CPU per datagram (info)',
      target: '-',
      value: `${c.udpmesh ?? '-'} µs vs ${c.baseline ?? '-'} µs (one core: ~${p.udpmesh ?? '-'}/s vs ~${p.baseline ?? '-'}/s)`,
      pass: null,
    });
  }
  if (summary.reply) {
    targets.push({
      name: `added p99 reply RTT at half max (${summary.reply.halfRate}/s)`,
      target: '< 1000 µs',
      value:
        (summary.reply.rttP99AddedUs === null ? '-' : `${summary.reply.rttP99AddedUs} µs`) +
        halfNote('reply'),
      pass:
        summary.reply.rttP99AddedUs === null || halfDisturbed('reply')
          ? null
          : summary.reply.rttP99AddedUs < 1000,
    });
    targets.push({
      name: 'reply-mode throughput vs baseline (info)',
      target: '-',
      value: `${summary.reply.ratio.toFixed(2)}x (${summary.reply.udpmeshMaxPerSec}/s vs ${summary.reply.baselineMaxPerSec}/s)`,
      pass: null,
    });
  }
  for (const s of summary.sessions ?? []) {
    const reduced = s.target < opts.sessionCount;
    targets.push({
      name: `${opts.sessionCount.toLocaleString('en-US')} concurrent sessions (${s.mode}), RSS per replicator`,
      target: '< 512 MB',
      value: `${s.maxRssMb} MB max (${s.count} active${reduced ? `; only ${s.target} possible (fd limit); ${s.projectedMb} MB projected at ${opts.sessionCount}` : ''})`,
      pass: reduced
        ? s.projectedMb === null
          ? null
          : s.projectedMb < 512
        : s.maxRssMb !== null && s.maxRssMb < 512 && s.count >= opts.sessionCount,
    });
  }
  const doc: BenchDoc = {
    startedAt,
    finishedAt: new Date().toISOString(),
    host: { cpus: cpus().length, node: process.version, loadAvgAtStart: load0, kernel: release() },
    options: { ...opts },
    steps,
    sessions,
    incidents,
    validity: validity(steps),
    etcd: {
      requests: etcdTotals.requests,
      ingressDatagrams: etcdTotals.ingress,
      per1000: summary.etcdRequestsPer1000,
    },
    summary,
    targets,
  };
  const file = writeJson(doc, opts.out);
  process.stdout.write(`\n${renderText(doc)}\n\nJSON: ${file}\n`);
}

/**
 * Opens many concurrent sessions on the aws ingress and reads the replicators' memory. In reply mode every
 * session holds an upstream socket, so the ingress replicator's fd limit is raised first (prlimit, as root).
 */
async function sessionsStep(sh: Shared, count: number, mode: Mode): Promise<SessionsResultDoc> {
  log(`sessions (${mode}): starting udpmesh (maxSessions ${count * 2}) and opening ${count} sessions`);
  await sh.setEcho(false);
  const um = await start(
    startUdpmesh(sh, {
      mode,
      mesh: `bench-sessions-${mode}`,
      maxSessions: count * 2,
      sessionIdleTimeoutMs: 600_000,
    }),
  );
  try {
    const awsPid = um.procs[0]!.pid;
    let fdLimit: number | null = null;
    let note: string | undefined;
    let target = count;
    if (mode === 'reply') {
      fdLimit = raiseFdLimit(awsPid, count + 4096);
      if (fdLimit === null || fdLimit < count + 1024) {
        target = Math.max(0, (fdLimit ?? 1024) - 1024);
        note = `could not raise the fd limit to ${count + 4096}: opened ${target} sessions instead`;
        log(`sessions (${mode}): ${note}`);
      }
    }
    await sleep(1000);
    const rss = (): Record<string, number | null> =>
      Object.fromEntries(um.procs.map((p) => [p.name, rssOf(p.pid)]));
    const before = rss();
    const c0 = (await um.counters())!;
    const base = {
      host: um.ingress.host,
      port: um.ingress.port,
      count: target,
      batch: 250,
      rate: 15_000,
      payloadBytes: opts.payloadBytes,
    };
    const stepBase = mode === 'oneway' ? 900_000 : 910_000;
    const open = await sh.loadgen.request<SessionsResult>(
      { cmd: 'sessions', spec: { ...base, step: stepBase + 1, perSession: 2, refresh: false } },
      600_000,
    );
    await waitLag(um);
    await sleep(1500);
    const c1 = (await um.counters())!;
    const afterOpen = rss();
    log(
      `sessions (${mode}): ${open.sessions} opened in ${Math.round(open.elapsedMs)} ms; sessions_active ${c1[0]!.sessionsActive}; aws RSS ${afterOpen.aws} MB`,
    );
    // Refresh rounds from the same address:port tuples: they keep the sessions alive and open the ones
    // whose first datagrams the ingress socket dropped (a busy host drops at the kernel buffer).
    let c2 = c1;
    let refreshSent = 0;
    let refreshBindFailures = 0;
    let rounds = 0;
    do {
      rounds++;
      const refresh = await sh.loadgen.request<SessionsResult>(
        { cmd: 'sessions', spec: { ...base, step: stepBase + 2, perSession: 1, refresh: true } },
        600_000,
      );
      refreshSent += refresh.sent;
      refreshBindFailures += refresh.bindFailures;
      await waitLag(um);
      await sleep(1500);
      c2 = (await um.counters())!;
    } while (rounds < 3 && c2[0]!.sessionsActive < target);
    const afterRefresh = rss();
    log(
      `sessions (${mode}): ${rounds} refresh round(s) sent ${refreshSent} (${refreshBindFailures} bind failures); sessions_active ${c2[0]!.sessionsActive}; aws RSS ${afterRefresh.aws} MB`,
    );
    const reports = await Promise.all(
      sh.sinks.map((s) => s.proc.request<{ received: number }>({ cmd: 'report', step: stepBase + 1 })),
    );
    const dropped: Record<string, number> = {};
    for (const [k, v] of Object.entries(c2[0]!.dropped)) {
      const d = v - (c0[0]!.dropped[k] ?? 0);
      if (d) dropped[k] = d;
    }
    const ingressBefore = before.aws ?? null;
    const ingressAfter = afterRefresh.aws ?? null;
    const active = c2[0]!.sessionsActive;
    const perSession =
      ingressBefore !== null && ingressAfter !== null && active > 0
        ? ((ingressAfter - ingressBefore) * 1024 * 1024) / active
        : null;
    const mb = (b: number): number => round1(b / 1024 / 1024);
    return {
      mode,
      requested: count,
      target,
      fdLimit,
      note,
      established: open.sessions,
      sent: open.sent + refreshSent,
      bindFailures: open.bindFailures + refreshBindFailures,
      refreshRounds: rounds,
      elapsedMs: Math.round(open.elapsedMs),
      sessionsActive: { afterOpen: c1[0]!.sessionsActive, afterRefresh: c2[0]!.sessionsActive },
      rssMb: Object.fromEntries(
        CLUSTERS.map((c) => [
          c,
          {
            before: before[c] ?? null,
            afterOpen: afterOpen[c] ?? null,
            afterRefresh: afterRefresh[c] ?? null,
          },
        ]),
      ),
      bytesPerSessionIngress: perSession === null ? null : Math.round(perSession),
      projectedIngressRssMb:
        perSession === null || ingressBefore === null
          ? null
          : Math.round(ingressBefore + (perSession * count) / 1024 / 1024),
      ingressHeapUsedMb: {
        before: mb(c0[0]!.heapUsedBytes),
        afterOpen: mb(c1[0]!.heapUsedBytes),
        afterRefresh: mb(c2[0]!.heapUsedBytes),
      },
      ingressOpenFds: c2[0]!.openFds,
      delivered: Object.fromEntries(CLUSTERS.map((c, i) => [c, reports[i]!.received])),
      droppedAtIngress: dropped,
    };
  } catch (err) {
    await sleep(300);
    const dead = um.dead();
    throw dead ? new SystemDied(`${dead} (${err instanceof Error ? err.message : String(err)})`) : err;
  } finally {
    await stop(um);
  }
}

/** Raise RLIMIT_NOFILE of a running process (prlimit(1); needs root or CAP_SYS_RESOURCE). Returns the soft limit now in force. */
function raiseFdLimit(pid: number, want: number): number | null {
  spawnSync('prlimit', ['--pid', String(pid), `--nofile=${want}:${want}`], { stdio: 'ignore' });
  const r = spawnSync(
    'prlimit',
    ['--pid', String(pid), '--nofile', '--raw', '--noheadings', '--output', 'SOFT'],
    { encoding: 'utf8' },
  );
  const n = Number((r.stdout ?? '').trim());
  return r.status === 0 && Number.isFinite(n) ? n : null;
}

/**
 * The numbers mean something only if the bench had the host to itself: CPU taken by other processes
 * during the steps (in % of one core) above a quarter of a core marks the run as disturbed.
 */
function validity(steps: StepResult[]): BenchDoc['validity'] {
  const other = steps.map((s) => s.usage.foreignCpuPct);
  const avg = other.length ? other.reduce((a, b) => a + b, 0) / other.length : 0;
  const max = other.length ? Math.max(...other) : 0;
  const disturbed = avg > 25;
  return {
    foreignCpuPctAvg: round1(avg),
    foreignCpuPctMax: round1(max),
    disturbed,
    note: disturbed
      ? `other processes used ${round1(avg)}% of a core on average (of ${cpus().length * 100}%) during the steps: rates and latencies are not representative; rerun on an idle host (CPU µs per datagram is the least affected column)`
      : 'host quiet enough',
  };
}

function rssOf(pid: number): number | null {
  let total: number | null = null;
  for (const p of processTree(pid)) {
    const v = rssMb(p);
    if (v !== undefined) total = (total ?? 0) + v;
  }
  return total === null ? null : round1(total);
}

async function waitLag(sut: SystemUnderTest): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && (await sut.lag()) > 0) await sleep(100);
}

main().then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  async (err: unknown) => {
    if (interrupted) return; // the signal handler cleans up and exits
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup(true);
    process.exit(1);
  },
);
