// The peers part: udpmesh next to other relays on the same paths, at open loop (throughput, CPU per
// core) and at one paced rate (latency).
//   reply path (client -> relay -> sink-aws -> relay -> client): udpmesh (3 replicators, replication on),
//     the plain Node relay, nginx's stream UDP proxy (1 worker), socat;
//   one-way fan-out path (client -> ingress -> 3 sinks): udpmesh and the plain Node fan-out forwarders.
// "Per core" = datagrams/s divided by the CPU cores the relay's own process tree used during the step
// (utime + stime from /proc): nginx master + its 1 worker, socat + its children, the udpmesh ingress
// replicator (which also does the replication), or all three replicators. udpmesh runs twice, with
// io: batched (the udp_batch addon) and io: dgram; for those rows the ingress's GC time per million
// datagrams, heap, RSS and datagrams per syscall come from its /metrics around the open-loop step.
import { scrapeMetrics, sumOf, type Sample } from '../../replicator/local/promText.ts';
import type { Percentiles } from './hist.ts';
import type { BaselineTree } from './baselineRef.ts';
import { rateLabel, type Lifecycle } from './lifecycle.ts';
import { ensureRelayTools, startNginx, startNodeRelay, startSocat, type RelayTools } from './relays.ts';
import { runStep, type StepResult } from './steps.ts';
import { startBaseline, startUdpmesh, type Mode, type Shared, type SystemUnderTest } from './topology.ts';

export interface PeersOptions {
  durationMs: number;
  sessions: number;
  payloadBytes: number;
  /** Paced rate of the latency step. */
  pacedRate: number;
  paths: Mode[];
  /** Only the rows whose system name contains one of these (e.g. ["udpmesh"]); default all. */
  systems?: string[];
  /**
   * --baseline-ref: the replicator of an earlier commit as one more udpmesh row on both paths (with
   * io: dgram, or its only I/O if it predates the io setting); or why it could not be prepared.
   */
  baseline?: { ref: string; tree: BaselineTree } | { ref: string; skipped: string };
  /** Extra environment for the replicators (--cpu-prof). */
  env?: Record<string, string>;
}

/** The peers row name of the --baseline-ref system. */
export const baselineSystem = (ref: string, path: Mode): string =>
  `udpmesh @ ${ref} dgram${path === 'reply' ? ' (replication on)' : ''}`;

/**
 * The udpmesh ingress process over the open-loop step, from its /metrics (prom-client's default GC
 * histogram and heap gauges, the io counters): GC time per million client datagrams, heap and RSS after
 * the step, and how many datagrams each receive / send syscall carried.
 */
export interface IngressRuntime {
  ingressDatagrams: number;
  gcMsPer1M: number | null;
  gcPauses: number;
  heapUsedMb: number;
  heapTotalMb: number;
  rssMb: number;
  datagramsPerRecvSyscall: number | null;
  datagramsPerSendSyscall: number | null;
  gsoMessages: number;
}

export interface PeerRow {
  path: Mode;
  system: string;
  /** Why this row has no numbers (missing tool, failed start): never silent. */
  skipped?: string;
  /** Reply path: replies back at the client per second; one-way: delivered to all three sinks per second. */
  maxPerSec: number | null;
  /** CPU cores (1 = one core busy) used at open loop by the relay / ingress process tree ... */
  relayCores: number | null;
  /** ... and by every process of the system (udpmesh: all three replicators). */
  systemCores: number | null;
  perCore: number | null;
  perCoreSystem: number | null;
  /** The same at the paced rate: the relay's CPU per datagram when nothing is dropped. */
  pacedCores: number | null;
  perCorePaced: number | null;
  /** Reply: client round trip; one-way: client -> sink delivery, over every cluster. */
  latencyMaxUs: Percentiles | null;
  latencyPacedUs: Percentiles | null;
  pacedRate: number;
  pacedLossPct: number | null;
  maxLossPct: number | null;
  steps: StepResult[];
  runtime?: IngressRuntime;
}

export interface PeersDoc {
  tools: RelayTools;
  rows: PeerRow[];
}

const cores = (s: StepResult, names: string[]): number | null => {
  const v = names.map((n) => s.usage.procs.find((p) => p.name === n)?.cpuPct);
  return v.every((x) => typeof x === 'number') ? (v as number[]).reduce((a, b) => a + b, 0) / 100 : null;
};
const r2 = (v: number | null): number | null => (v === null ? null : Math.round(v * 100) / 100);

function row(path: Mode, system: string, max: StepResult, paced: StepResult, own: string[]): PeerRow {
  const reply = path === 'reply';
  const perSec = reply ? max.reply!.perSec : max.deliveredPerSec;
  const relayCores = cores(max, ['aws']);
  const systemCores = cores(max, own);
  const per = (c: number | null): number | null => (c && c > 0 ? Math.round(perSec / c) : null);
  const pacedPerSec = reply ? paced.reply!.perSec : paced.deliveredPerSec;
  const pacedCores = cores(paced, ['aws']);
  return {
    path,
    system,
    maxPerSec: perSec,
    relayCores: r2(relayCores),
    systemCores: r2(systemCores),
    perCore: per(relayCores),
    perCoreSystem: per(systemCores),
    pacedCores: r2(pacedCores),
    perCorePaced: pacedCores && pacedCores > 0 ? Math.round(pacedPerSec / pacedCores) : null,
    latencyMaxUs: reply ? max.reply!.rttUs : max.latencyUs,
    latencyPacedUs: reply ? paced.reply!.rttUs : paced.latencyUs,
    pacedRate: paced.targetRate,
    pacedLossPct: reply ? paced.reply!.lossPct : paced.lossPct,
    maxLossPct: reply ? max.reply!.lossPct : max.lossPct,
    steps: [max, paced],
  };
}

function skippedRow(path: Mode, system: string, why: string, pacedRate: number): PeerRow {
  return {
    path,
    system,
    skipped: why,
    maxPerSec: null,
    relayCores: null,
    systemCores: null,
    perCore: null,
    perCoreSystem: null,
    pacedCores: null,
    perCorePaced: null,
    latencyMaxUs: null,
    latencyPacedUs: null,
    pacedRate,
    pacedLossPct: null,
    maxLossPct: null,
    steps: [],
  };
}

const mb = (b: number): number => Math.round((b / 1048576) * 10) / 10;

function runtimeOf(a: Sample[], b: Sample[]): IngressRuntime {
  const d = (name: string, labels?: Record<string, string>): number =>
    sumOf(b, name, labels) - sumOf(a, name, labels);
  const ingress = d('udpmesh_ingress_datagrams_total');
  const gcS = d('udpmesh_process_nodejs_gc_duration_seconds_sum');
  const recv = d('udpmesh_io_syscalls_total', { op: 'recv' });
  const send = d('udpmesh_io_syscalls_total', { op: 'send' });
  const ratio = (n: number, calls: number): number | null =>
    calls > 0 ? Math.round((n / calls) * 100) / 100 : null;
  return {
    ingressDatagrams: ingress,
    gcMsPer1M: ingress > 0 ? Math.round(((gcS * 1000) / ingress) * 1e6 * 10) / 10 : null,
    gcPauses: d('udpmesh_process_nodejs_gc_duration_seconds_count'),
    heapUsedMb: mb(sumOf(b, 'udpmesh_process_nodejs_heap_size_used_bytes')),
    heapTotalMb: mb(sumOf(b, 'udpmesh_process_nodejs_heap_size_total_bytes')),
    rssMb: mb(sumOf(b, 'udpmesh_process_process_resident_memory_bytes')),
    datagramsPerRecvSyscall: ratio(d('udpmesh_io_datagrams_total', { direction: 'received' }), recv),
    datagramsPerSendSyscall: ratio(d('udpmesh_io_datagrams_total', { direction: 'sent' }), send),
    gsoMessages: d('udpmesh_io_gso_messages_total'),
  };
}

export async function runPeers(sh: Shared, o: PeersOptions, lc: Lifecycle): Promise<PeersDoc> {
  const tools = ensureRelayTools(lc.log);
  const rows: PeerRow[] = [];
  const step = (sut: SystemUnderTest, label: string, rate: number, warmup = false): Promise<StepResult> =>
    runStep(sh, sut, {
      label,
      rate,
      durationMs: warmup ? 1000 : o.durationMs,
      sessions: o.sessions,
      payloadBytes: o.payloadBytes,
      warmup,
    });
  const measure = async (
    path: Mode,
    system: string,
    starter: () => Promise<SystemUnderTest>,
  ): Promise<void> => {
    if (o.systems && !o.systems.some((x) => system.includes(x))) return;
    let sut: SystemUnderTest | undefined;
    try {
      sut = await lc.start(starter());
      await step(sut, 'warmup', Math.min(o.pacedRate, 5000), true);
      const ingressMetrics = sut.metricsUrls?.[0];
      const before = ingressMetrics ? await scrapeMetrics(ingressMetrics, 5000) : undefined;
      const max = await step(sut, 'max', 0);
      const after = ingressMetrics ? await scrapeMetrics(ingressMetrics, 5000) : undefined;
      const paced = await step(sut, rateLabel(o.pacedRate), o.pacedRate);
      const own = sut.procs.map((p) => p.name);
      const r = row(path, system, max, paced, own);
      if (before && after) r.runtime = runtimeOf(before, after);
      rows.push(r);
      lc.log(
        `peers ${path} ${system}: ${r.maxPerSec}/s on ${r.relayCores} cores (${r.perCore}/s per core); ` +
          `p50/p99 ${r.latencyPacedUs?.p50}/${r.latencyPacedUs?.p99} µs at ${rateLabel(o.pacedRate)}/s` +
          (r.runtime
            ? `; ingress GC ${r.runtime.gcMsPer1M} ms per 1M datagrams (${r.runtime.gcPauses} pauses), heap ${r.runtime.heapUsedMb}/${r.runtime.heapTotalMb} MB, RSS ${r.runtime.rssMb} MB, ` +
              `${r.runtime.datagramsPerRecvSyscall} datagrams per recv and ${r.runtime.datagramsPerSendSyscall} per send syscall, ${r.runtime.gsoMessages} GSO sends`
            : ''),
      );
    } catch (err) {
      const why = `failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
      lc.log(`peers ${path} ${system}: ${why}`);
      rows.push(skippedRow(path, system, why, o.pacedRate));
    } finally {
      if (sut) await lc.stop(sut);
    }
  };

  const env = o.env;
  const baselineRow = async (path: Mode): Promise<void> => {
    const b = o.baseline;
    if (!b) return;
    const system = baselineSystem('tree' in b ? b.tree.short : b.ref, path);
    if ('skipped' in b) {
      if (!o.systems || o.systems.some((x) => system.includes(x)))
        rows.push(skippedRow(path, system, `SKIPPED: ${b.skipped}`, o.pacedRate));
      return;
    }
    const tree = b.tree;
    await measure(path, system, () =>
      startUdpmesh(sh, {
        mode: path,
        mesh: `bench-peers-${path}-base-${tree.short}`,
        ...(tree.hasIo ? { io: 'dgram' as const } : {}),
        tree,
        env,
      }),
    );
  };

  if (o.paths.includes('reply')) {
    await sh.setEcho(true);
    for (const io of ['batched', 'dgram'] as const)
      await measure('reply', `udpmesh ${io} (replication on)`, () =>
        startUdpmesh(sh, { mode: 'reply', mesh: `bench-peers-reply-${io}`, io, env }),
      );
    await baselineRow('reply');
    await measure('reply', 'node relay', () => startNodeRelay(sh));
    const ng = tools.nginx;
    if ('bin' in ng) await measure('reply', `nginx ${ng.version} (1 worker)`, () => startNginx(sh, ng));
    else rows.push(skippedRow('reply', 'nginx', `SKIPPED: ${ng.skipped}`, o.pacedRate));
    const so = tools.socat;
    if ('bin' in so) await measure('reply', `socat ${so.version} (fork)`, () => startSocat(sh, so));
    else rows.push(skippedRow('reply', 'socat', `SKIPPED: ${so.skipped}`, o.pacedRate));
  }
  if (o.paths.includes('oneway')) {
    await sh.setEcho(false);
    for (const io of ['batched', 'dgram'] as const)
      await measure('oneway', `udpmesh ${io}`, () =>
        startUdpmesh(sh, { mode: 'oneway', mesh: `bench-peers-oneway-${io}`, io, env }),
      );
    await baselineRow('oneway');
    await measure('oneway', 'node fan-out', () => startBaseline(sh, 'oneway'));
  }
  return { tools, rows };
}
