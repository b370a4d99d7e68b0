// The scaling part: udpmesh one-way at open loop with the ingress replicator at `workers: 1`, then 2 (...),
// many client sessions so that SO_REUSEPORT spreads them over the workers. Reports delivered/s to all
// three clusters, the CPU the ingress replicator (primary + workers) used, and the ratio to 1 worker.
// On a host with few cores the load generator, the sinks and the other two replicators compete for
// the same cores: the CPU columns show where the time went.
import { cpus } from 'node:os';
import type { Lifecycle } from './lifecycle.ts';
import { runStep, type StepResult } from './steps.ts';
import { startUdpmesh, type Shared } from './topology.ts';

export interface ScalingOptions {
  workers: number[];
  durationMs: number;
  sessions: number;
  payloadBytes: number;
}

export interface ScalingRow {
  workers: number;
  deliveredPerSec: number;
  offeredPerSec: number;
  lossPct: number;
  /** Cores used by the ingress replicator's process tree, by the two receivers, and by the whole machine. */
  ingressCores: number | null;
  receiverCores: number | null;
  loadgenCores: number | null;
  sinkCores: number | null;
  machineBusyPct: number;
  foreignCpuPct: number;
  ingressCpuUsPerDatagram: number | null;
  /** Share (%) of the step's datagrams each ingress worker accepted (SO_REUSEPORT's spread); [100] for 1. */
  workerSharePct: number[];
  /** deliveredPerSec / the same at the first worker count. */
  ratio: number | null;
  step: StepResult;
}

export interface ScalingDoc {
  hostCpus: number;
  sessions: number;
  rows: ScalingRow[];
}

export async function runScaling(sh: Shared, o: ScalingOptions, lc: Lifecycle): Promise<ScalingDoc> {
  await sh.setEcho(false);
  const rows: ScalingRow[] = [];
  for (const workers of o.workers) {
    lc.log(`scaling: udpmesh one-way, ingress with workers: ${workers}, ${o.sessions} sessions, open loop`);
    const um = await lc.start(
      startUdpmesh(sh, { mode: 'oneway', mesh: `bench-scaling-w${workers}`, workers: { aws: workers } }),
    );
    try {
      const base = { sessions: o.sessions, payloadBytes: o.payloadBytes };
      await runStep(sh, um, { ...base, label: 'warmup', rate: 10_000, durationMs: 1500, warmup: true });
      const w0 = workers > 1 ? await um.workerIngress?.() : undefined;
      const s = await runStep(sh, um, { ...base, label: `w${workers}`, rate: 0, durationMs: o.durationMs });
      const w1 = workers > 1 ? await um.workerIngress?.() : undefined;
      const perWorker = w0 && w1 ? w1.map((v, i) => v - (w0[i] ?? 0)) : [1];
      const all = perWorker.reduce((a, b) => a + b, 0);
      const workerSharePct = perWorker.map((v) => (all > 0 ? Math.round((v / all) * 1000) / 10 : 0));
      const pct = (names: string[]): number | null => {
        const v = names.map((n) => s.usage.procs.find((p) => p.name === n)?.cpuPct);
        return v.every((x) => typeof x === 'number')
          ? Math.round((v as number[]).reduce((a, b) => a + b, 0)) / 100
          : null;
      };
      rows.push({
        workers,
        deliveredPerSec: s.deliveredPerSec,
        offeredPerSec: s.offeredPerSec,
        lossPct: s.lossPct,
        ingressCores: pct(['aws']),
        receiverCores: pct(['gcp', 'azure']),
        loadgenCores: pct(['loadgen']),
        sinkCores: pct(['sink-aws', 'sink-gcp', 'sink-azure']),
        machineBusyPct: s.usage.machineBusyPct,
        foreignCpuPct: s.usage.foreignCpuPct,
        ingressCpuUsPerDatagram: s.cpuUsPerDatagram.ingress,
        workerSharePct,
        ratio: null,
        step: s,
      });
      lc.log(
        `scaling: workers ${workers}: delivered ${s.deliveredPerSec}/s (offered ${s.offeredPerSec}/s), ingress ${pct(['aws'])} cores, split ${workerSharePct.join('/')}%`,
      );
    } finally {
      await lc.stop(um);
    }
  }
  const first = rows[0]?.deliveredPerSec ?? 0;
  for (const r of rows) r.ratio = first > 0 ? Math.round((r.deliveredPerSec / first) * 100) / 100 : null;
  return { hostCpus: cpus().length, sessions: o.sessions, rows };
}
