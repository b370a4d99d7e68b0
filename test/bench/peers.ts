// The peers part: udpmesh next to other relays on the same paths, at open loop (throughput, CPU per
// core) and at one paced rate (latency).
//   reply path (client -> relay -> sink-aws -> relay -> client): udpmesh (3 replicators, replication on),
//     the plain Node relay, nginx's stream UDP proxy (1 worker), socat;
//   one-way fan-out path (client -> ingress -> 3 sinks): udpmesh and the plain Node fan-out forwarders.
// "Per core" = datagrams/s divided by the CPU cores the relay's own process tree used during the step
// (utime + stime from /proc): nginx master + its 1 worker, socat + its children, the udpmesh ingress
// replicator (which also does the replication), or all three replicators.
import type { Percentiles } from './hist.ts';
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
    let sut: SystemUnderTest | undefined;
    try {
      sut = await lc.start(starter());
      await step(sut, 'warmup', Math.min(o.pacedRate, 5000), true);
      const max = await step(sut, 'max', 0);
      const paced = await step(sut, rateLabel(o.pacedRate), o.pacedRate);
      const own = sut.procs.map((p) => p.name);
      const r = row(path, system, max, paced, own);
      rows.push(r);
      lc.log(
        `peers ${path} ${system}: ${r.maxPerSec}/s on ${r.relayCores} cores (${r.perCore}/s per core); ` +
          `p50/p99 ${r.latencyPacedUs?.p50}/${r.latencyPacedUs?.p99} µs at ${rateLabel(o.pacedRate)}/s`,
      );
    } catch (err) {
      const why = `failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
      lc.log(`peers ${path} ${system}: ${why}`);
      rows.push(skippedRow(path, system, why, o.pacedRate));
    } finally {
      if (sut) await lc.stop(sut);
    }
  };

  if (o.paths.includes('reply')) {
    await sh.setEcho(true);
    await measure('reply', 'udpmesh (replication on)', () =>
      startUdpmesh(sh, { mode: 'reply', mesh: 'bench-peers-reply' }),
    );
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
    await measure('oneway', 'udpmesh', () =>
      startUdpmesh(sh, { mode: 'oneway', mesh: 'bench-peers-oneway' }),
    );
    await measure('oneway', 'node fan-out', () => startBaseline(sh, 'oneway'));
  }
  return { tools, rows };
}
