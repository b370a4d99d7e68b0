// `npm run bench`: udpmesh against a plain-Node baseline of the same shape, on loopback.
//   --quick              ~1 minute smoke run (2 s steps, rates 10k and max, 20k sessions)
//   --rates 5k,10k,max   paced rates in datagrams/s ("max" = open loop)
//   --duration 5         seconds per step
//   --sessions 64        client sessions (sockets) per step
//   --payload 64         datagram size in bytes
//   --modes oneway,reply
//   --only rates,peers,scaling,sessions,startup   run only these parts (default: all)
//   --peers-systems udpmesh   only the peers rows whose system contains one of these (udpmesh, nginx, ...)
//   --session-count N    concurrent sessions for the memory step, both modes (0 skips it); or
//   --sessions-oneway 1000000 --sessions-reply 50000
//   --held-rate 10k      paced load while the sessions are held
//   --peers-rate 5k      paced rate of the peers part's latency step
//   --scaling-workers 1,2 --scaling-sessions 256
//   --out bench-results  where the JSON goes
//   --cpu-prof           V8 CPU profiles of the replicators (written on exit to <out>/profiles-<time>/)
//   --wait-idle 600      first wait up to this many seconds for the host to be mostly idle (shared machines)
//   --baseline-ref fddffe6  also run that commit's replicator in the peers part (baselineRef.ts): "per core
//                        no worse than before the change" judged side by side in one run
// rates: steps alternate udpmesh / baseline at each rate so that load from elsewhere on the host hits both.
// peers (peers.ts): nginx, socat, a Node relay and udpmesh side by side; scaling (scaling.ts): workers 1
// vs 2; sessions (sessions.ts): concurrent sessions held by one replicator.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { rateLabel, type Lifecycle } from './lifecycle.ts';
import { round1, type ReplicatorCounters } from './measure.ts';
import { prepareBaseline } from './baselineRef.ts';
import { baselineSystem, runPeers, type PeersDoc, type PeersOptions } from './peers.ts';
import { REPO_ROOT, sleep } from './procs.ts';
import { renderText, writeJson, type BenchDoc, type SessionsResultDoc, type Summary } from './report.ts';
import { runScaling, type ScalingDoc } from './scaling.ts';
import { runStartup } from './startup.ts';
import { sessionsStep } from './sessions.ts';
import { runStep, SystemDied, type StepResult } from './steps.ts';
import { Shared, startBaseline, startUdpmesh, type Mode, type SystemUnderTest } from './topology.ts';

const USAGE = `usage: npm run bench -- [--quick] [--only rates,peers,scaling,sessions,startup] [--peers-systems udpmesh,nginx] [--rates 5k,10k,20k,40k,max] [--duration 5]
                       [--sessions 64] [--payload 64] [--modes oneway,reply] [--session-count N]
                       [--sessions-oneway 1000000] [--sessions-reply 50000] [--held-rate 10k] [--peers-rate 5k]
                       [--scaling-workers 1,2] [--scaling-sessions 256] [--out bench-results] [--cpu-prof] [--wait-idle 600]
                       [--baseline-ref <git ref>]`;
const PARTS = ['rates', 'peers', 'scaling', 'sessions', 'startup'] as const;
type Part = (typeof PARTS)[number];

function parseRate(s: string): number {
  const t = s.trim().toLowerCase();
  if (t === 'max') return 0;
  const m = /^(\d+(?:\.\d+)?)(k?)$/.exec(t);
  if (!m) throw new Error(`--rates: cannot read ${JSON.stringify(s)} (use e.g. 5000, 20k or max)`);
  const v = Number(m[1]) * (m[2] ? 1000 : 1);
  if (!(v >= 1 && v <= 10_000_000)) throw new Error(`--rates: ${s} out of range`);
  return Math.round(v);
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
    'sessions-oneway': { type: 'string' },
    'sessions-reply': { type: 'string' },
    'held-rate': { type: 'string' },
    'peers-rate': { type: 'string' },
    'peers-systems': { type: 'string' },
    'scaling-workers': { type: 'string' },
    'scaling-sessions': { type: 'string' },
    only: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'wait-idle': { type: 'string' },
    'baseline-ref': { type: 'string' },
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
  sessionCount: {
    oneway: Math.round(
      positive(
        '--sessions-oneway',
        values['sessions-oneway'] ?? values['session-count'],
        quick ? 100_000 : 1_000_000,
        5_000_000,
        true,
      ),
    ),
    reply: Math.round(
      positive(
        '--sessions-reply',
        values['sessions-reply'] ?? values['session-count'],
        quick ? 20_000 : 50_000,
        1_000_000,
        true,
      ),
    ),
  },
  heldRate: values['held-rate'] ? parseRate(values['held-rate']) : 10_000,
  peersRate: values['peers-rate'] ? parseRate(values['peers-rate']) : 5_000,
  peersSystems: values['peers-systems']?.split(','),
  scalingWorkers: (values['scaling-workers'] ?? '1,2').split(',').map((w) => {
    const n = Number(w);
    if (!Number.isInteger(n) || n < 1 || n > 16) throw new Error(`--scaling-workers: ${w} is not 1-16`);
    return n;
  }),
  scalingSessions: Math.round(positive('--scaling-sessions', values['scaling-sessions'], 256, 4096)),
  parts: (values.only ?? PARTS.join(',')).split(',').map((p) => {
    if (!(PARTS as readonly string[]).includes(p))
      throw new Error(`--only: ${p} is not one of ${PARTS.join(', ')}`);
    return p as Part;
  }),
  out: values.out ?? join(REPO_ROOT, 'bench-results'),
  cpuProf: values['cpu-prof'] ?? false,
  waitIdleSeconds: positive('--wait-idle', values['wait-idle'], 0, 3600, true),
  baselineRef: values['baseline-ref'],
};
for (const r of [opts.heldRate, opts.peersRate])
  if (r === 0) throw new Error('--held-rate / --peers-rate: a paced rate, not max');
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

const lifecycle: Lifecycle = { log, start, stop };

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
  // Before anything is measured: exporting the ref and its npm ci (first time only) would load the host.
  let baseline: PeersOptions['baseline'];
  if (opts.baselineRef !== undefined && opts.parts.includes('peers')) {
    try {
      baseline = { ref: opts.baselineRef, tree: prepareBaseline(opts.baselineRef, log) };
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      log(`--baseline-ref ${opts.baselineRef}: ${why}`);
      baseline = { ref: opts.baselineRef, skipped: why };
    }
  }
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
  const runs = (part: Part): boolean => opts.parts.includes(part);
  for (const mode of runs('rates') ? opts.modes : []) {
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

  // A part whose system died mid-run is redone once; a second failure ends the bench.
  async function retried<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        await Promise.allSettled([...live].map((s) => stop(s)));
        if (!(err instanceof SystemDied) || attempt >= 2) throw err;
        incidents.push(`${what} attempt ${attempt}: ${err.message}`);
        log(`${what}: ${err.message}; again`);
      }
    }
  }

  let peers: PeersDoc | undefined;
  if (runs('peers')) {
    peers = await runPeers(
      sh,
      {
        durationMs: opts.durationMs,
        sessions: opts.sessions,
        payloadBytes: opts.payloadBytes,
        pacedRate: opts.peersRate,
        paths: (['reply', 'oneway'] as const).filter((m) => opts.modes.includes(m)),
        systems: opts.peersSystems,
        baseline,
        env,
      },
      lifecycle,
    );
  }

  const startup = runs('startup') ? await runStartup(lifecycle) : undefined;

  let scaling: ScalingDoc | undefined;
  if (runs('scaling')) {
    scaling = await retried('scaling', () =>
      runScaling(
        sh,
        {
          workers: opts.scalingWorkers,
          durationMs: opts.durationMs,
          sessions: opts.scalingSessions,
          payloadBytes: opts.payloadBytes,
        },
        lifecycle,
      ),
    );
  }

  const sessions: SessionsResultDoc[] = [];
  for (const mode of runs('sessions') ? opts.modes : []) {
    const count = opts.sessionCount[mode];
    if (count <= 0) continue;
    sessions.push(
      await retried(`sessions ${mode}`, () =>
        sessionsStep(
          sh,
          {
            mode,
            count,
            payloadBytes: opts.payloadBytes,
            openRate: mode === 'oneway' ? 25_000 : 10_000,
            heldRate: opts.heldRate,
            heldDurationMs: opts.durationMs,
          },
          lifecycle,
        ),
      ),
    );
  }

  const per1000 = etcdTotals.ingress > 0 ? (etcdTotals.requests / etcdTotals.ingress) * 1000 : null;
  summary.etcdRequestsPer1000 = per1000 === null ? null : Math.round(per1000 * 1000) / 1000;
  summary.sessions = sessions.map((s) => {
    const rss = Object.values(s.rssMb)
      .flatMap((v) => [v.afterOpen, v.afterRefresh, v.afterHeld])
      .filter((v): v is number => v !== null);
    return {
      mode: s.mode,
      count: Math.max(s.sessionsActive.afterOpen, s.sessionsActive.afterRefresh),
      requested: s.requested,
      workers: s.workers,
      note: s.note,
      bytesPerSession: s.bytesPerSessionIngress,
      heldDeliveredPerSec: s.held.deliveredPerSec,
      heldRate: s.held.rate,
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
    // Fewer sessions than asked (ephemeral ports), or spread over workers (fd limit): judge the projection.
    const reduced = s.target < s.requested || s.workers > 1;
    // One-way sessions hold no socket: the goal is 1,000,000 in under 1 GiB. Reply sessions: 512 MB.
    const limitMb = s.mode === 'oneway' ? 1024 : 512;
    targets.push({
      name: `${s.requested.toLocaleString('en-US')} concurrent sessions (${s.mode}), RSS per replicator`,
      target: `< ${limitMb === 1024 ? '1 GiB' : `${limitMb} MB`}`,
      value:
        `${s.maxRssMb} MB max (${s.count.toLocaleString('en-US')} active, ~${s.bytesPerSession ?? '-'} B each` +
        `${reduced ? `; ${s.target < s.requested ? `only ${s.target} possible; ` : ''}${s.workers > 1 ? `${s.workers} worker processes; ` : ''}one process projected at ${s.requested}: ${s.projectedMb} MB` : ''})`,
      pass: reduced
        ? s.projectedMb === null
          ? null
          : s.projectedMb < limitMb
        : s.maxRssMb !== null && s.maxRssMb < limitMb && s.count >= s.requested,
    });
    targets.push({
      name: `throughput while ${s.count.toLocaleString('en-US')} ${s.mode} sessions are held (info)`,
      target: '-',
      value: `${s.heldDeliveredPerSec}/s delivered to all of ${s.heldRate}/s paced`,
      pass: null,
    });
  }
  if (peers) {
    const nginx = peers.rows.find((r) => r.path === 'reply' && r.system.startsWith('nginx'));
    const um = peers.rows.find((r) => r.path === 'reply' && r.system.startsWith('udpmesh'));
    targets.push({
      name: 'reply-relay throughput per core vs nginx (ingress process)',
      target: '>= nginx',
      value:
        nginx?.skipped || !nginx
          ? `nginx ${nginx?.skipped ?? 'not run'}`
          : `${um?.perCore ?? '-'}/s vs ${nginx.perCore ?? '-'}/s per core (all 3 replicators: ${um?.perCoreSystem ?? '-'}/s per core; absolute ${um?.maxPerSec ?? '-'}/s vs ${nginx.maxPerSec ?? '-'}/s)`,
      pass:
        !nginx || nginx.skipped || um?.perCore == null || nginx.perCore === null
          ? null
          : um.perCore >= nginx.perCore,
    });
  }
  if (peers && baseline) {
    // Issue 10: "throughput per core no worse than before the change", same run, same host load.
    const name = baselineSystem('tree' in baseline ? baseline.tree.short : baseline.ref, 'reply');
    const base = peers.rows.find((r) => r.path === 'reply' && r.system === name);
    for (const io of ['dgram', 'batched']) {
      const cur = peers.rows.find((r) => r.path === 'reply' && r.system === `udpmesh ${io} (replication on)`);
      if (!cur) continue;
      const ratio = cur.perCore && base?.perCore ? cur.perCore / base.perCore : null;
      targets.push({
        name: `reply-relay throughput per core, ${io} vs ${name.replace(' (replication on)', '')} (ingress process)`,
        target: '>= 0.95x (5% run-to-run noise)',
        value: base?.skipped
          ? `baseline ${base.skipped}`
          : `${cur.perCore ?? '-'}/s vs ${base?.perCore ?? '-'}/s per core (${ratio?.toFixed(2) ?? '-'}x; all 3 replicators ${cur.perCoreSystem ?? '-'}/s vs ${base?.perCoreSystem ?? '-'}/s per core; paced ${cur.perCorePaced ?? '-'}/s vs ${base?.perCorePaced ?? '-'}/s per core; absolute ${cur.maxPerSec ?? '-'}/s vs ${base?.maxPerSec ?? '-'}/s)`,
        pass: ratio === null ? null : ratio >= 0.95,
      });
    }
  }
  if (peers) {
    const fan = (io: string): number | null =>
      peers!.rows.find((r) => r.path === 'oneway' && r.system === `udpmesh ${io}`)?.perCoreSystem ?? null;
    const b = fan('batched');
    const d = fan('dgram');
    const node =
      peers.rows.find((r) => r.path === 'oneway' && r.system === 'node fan-out')?.perCoreSystem ?? null;
    targets.push({
      name: 'one-way fan-out delivered per core of all three replicators, batched vs dgram',
      target: '>= 2x',
      value: `${b ?? '-'}/s vs ${d ?? '-'}/s per core (${b && d ? (b / d).toFixed(2) : '-'}x; node fan-out ${node ?? '-'}/s)`,
      pass: b === null || d === null ? null : b >= 2 * d,
    });
  }
  if (startup) {
    const [tsx, dist] = startup.rows;
    targets.push({
      name: 'compiled dist vs tsx: start-up and RSS of one replicator (info)',
      target: '-',
      value: `${dist?.medianStartupMs} ms vs ${tsx?.medianStartupMs} ms to ready; RSS ${dist?.medianRssMb} MB vs ${tsx?.medianRssMb} MB`,
      pass: null,
    });
  }
  if (scaling && scaling.rows.length > 1) {
    const last = scaling.rows[scaling.rows.length - 1]!;
    const first = scaling.rows[0]!;
    targets.push({
      name: `scaling, workers ${first.workers} -> ${last.workers} (one-way, delivered/s)`,
      target: '>= 1.7x',
      value:
        `${last.ratio?.toFixed(2) ?? '-'}x (${first.deliveredPerSec}/s -> ${last.deliveredPerSec}/s; ingress ${first.ingressCores} -> ${last.ingressCores} cores, ` +
        `machine ${first.machineBusyPct}% -> ${last.machineBusyPct}% of ${scaling.hostCpus} CPUs)`,
      pass: last.ratio === null ? null : last.ratio >= 1.7,
    });
  }
  const doc: BenchDoc = {
    startedAt,
    finishedAt: new Date().toISOString(),
    host: { cpus: cpus().length, node: process.version, loadAvgAtStart: load0, kernel: release() },
    options: { ...opts },
    parts: opts.parts,
    steps,
    ...(peers ? { peers } : {}),
    ...(scaling ? { scaling } : {}),
    ...(startup ? { startup } : {}),
    sessions,
    incidents,
    validity: validity([
      ...steps,
      ...(peers?.rows.flatMap((r) => r.steps) ?? []),
      ...(scaling?.rows.map((r) => r.step) ?? []),
    ]),
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
