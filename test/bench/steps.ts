// One bench step: drive the ingress at a rate for a while, then gather what the sinks, the load
// generator, /proc and the replicators saw.
import { Histogram, percentiles, type Percentiles } from './hist.ts';
import { counterDelta, UsageSampler, type ProcRef, type UsageReport } from './measure.ts';
import { sleep } from './procs.ts';
import {
  CLUSTERS,
  type Cluster,
  type Mode,
  type Shared,
  type SystemKind,
  type SystemUnderTest,
} from './topology.ts';
import type { LoadCollectResult, LoadStepResult, LoadStepSpec, SinkStepReport } from './wire.ts';

export interface ClusterResult {
  received: number;
  deliveredPerSec: number;
  lossPct: number;
  outOfOrder: number;
  latencyUs: Percentiles;
}

export interface StepResult {
  system: SystemKind;
  mode: Mode;
  /** "5k", "max", "half" ... */
  label: string;
  /** Paced rate asked of the load generator, 0 = open loop. */
  targetRate: number;
  step: number;
  sessions: number;
  payloadBytes: number;
  sent: number;
  sendSeconds: number;
  offeredPerSec: number;
  /** Delivered to all three clusters: the smallest per-cluster delivered rate. */
  deliveredPerSec: number;
  /** Largest per-cluster loss. */
  lossPct: number;
  /** Delivery latency over every datagram at every cluster (send at client -> arrival at sink). */
  latencyUs: Percentiles;
  /** The same over the two remote clusters only (the replicated path). */
  remoteLatencyUs: Percentiles;
  clusters: Record<Cluster, ClusterResult>;
  /** Client side of reply mode; perSec = replies over the send window or until the last reply. */
  reply?: { replies: number; perSec: number; lossPct: number; rttUs: Percentiles };
  usage: UsageReport;
  /**
   * CPU time per datagram the ingress accepted (µs): of the ingress process, and of the three system
   * processes together. Less sensitive to other load on the host than rates are.
   */
  cpuUsPerDatagram: { ingress: number | null; system: number | null };
  udpmesh?: {
    ingress: number;
    retransmits: number;
    duplicatesDropped: number;
    dropped: Record<string, number>;
    etcdRequests: number;
    /** Time from the end of sending until every peer had acknowledged everything. */
    drainMs: number;
    lagAfterDrain: number;
    deliveredByReplicator: Record<string, Record<string, number>>;
  };
}

export interface StepOptions {
  label: string;
  rate: number;
  durationMs: number;
  sessions: number;
  payloadBytes: number;
  /** Left out of the results (warm-up). */
  warmup?: boolean;
}

let nextStep = 1;

/** A process of the system under test ended during a step (the step's numbers are void). */
export class SystemDied extends Error {}

const r1 = (v: number): number => Math.round(v * 10) / 10;

export async function runStep(shared: Shared, sut: SystemUnderTest, o: StepOptions): Promise<StepResult> {
  try {
    return await runStepInner(shared, sut, o);
  } catch (err) {
    if (err instanceof SystemDied) throw err;
    await sleep(300); // the exit event may trail the failed scrape
    const dead = sut.dead();
    if (dead) throw new SystemDied(`${dead} (${err instanceof Error ? err.message : String(err)})`);
    throw err;
  }
}

async function runStepInner(shared: Shared, sut: SystemUnderTest, o: StepOptions): Promise<StepResult> {
  const step = nextStep++;
  const deadBefore = sut.dead();
  if (deadBefore) throw new SystemDied(deadBefore);
  const procs: ProcRef[] = [
    ...sut.procs,
    ...shared.procRefs(),
    ...(sut.kind === 'udpmesh' ? shared.etcdRef() : []),
  ];
  const before = await sut.counters();
  const sampler = new UsageSampler(procs);
  const spec: LoadStepSpec = {
    step,
    host: sut.ingress.host,
    port: sut.ingress.port,
    rate: o.rate,
    durationMs: o.durationMs,
    sessions: o.sessions,
    payloadBytes: o.payloadBytes,
  };
  sampler.start();
  const load = await shared.loadgen.request<LoadStepResult>({ cmd: 'run', spec }, o.durationMs + 60_000);
  const usage = sampler.stop();
  // Let the system finish: udpmesh until every peer acknowledged everything (bounded), then a moment
  // for the sinks to read their sockets.
  const t0 = performance.now();
  let lag = 0;
  if (sut.kind === 'udpmesh') {
    const deadline = t0 + 15_000;
    for (;;) {
      lag = await sut.lag();
      if (lag === 0 || performance.now() > deadline) break;
      await sleep(50);
    }
  }
  const drainMs = performance.now() - t0;
  await sleep(300);
  const [reports, collected, after] = await Promise.all([
    Promise.all(shared.sinks.map((s) => s.proc.request<SinkStepReport>({ cmd: 'report', step }))),
    shared.loadgen.request<LoadCollectResult>({ cmd: 'collect', step }),
    sut.counters(),
  ]);
  const deadAfter = sut.dead();
  if (deadAfter) throw new SystemDied(deadAfter);
  const sendSeconds = (load.endNs - load.startNs) / 1e9;
  const clusters = {} as Record<Cluster, ClusterResult>;
  const all = new Histogram();
  const remote = new Histogram();
  CLUSTERS.forEach((c, i) => {
    const r = reports[i]!;
    const window = Math.max(sendSeconds, r.lastRxNs > 0 ? (r.lastRxNs - load.startNs) / 1e9 : 0);
    all.merge(r.latency);
    if (c !== 'aws') remote.merge(r.latency);
    clusters[c] = {
      received: r.received,
      deliveredPerSec: Math.round(window > 0 ? r.received / window : 0),
      lossPct: load.sent > 0 ? r1(Math.max(0, (1 - r.received / load.sent) * 100) * 100) / 100 : 0,
      outOfOrder: r.outOfOrder,
      latencyUs: percentiles(Histogram.from(r.latency)),
    };
  });
  const res: StepResult = {
    system: sut.kind,
    mode: sut.mode,
    label: o.label,
    targetRate: o.rate,
    step,
    sessions: o.sessions,
    payloadBytes: o.payloadBytes,
    sent: load.sent,
    sendSeconds: Math.round(sendSeconds * 1000) / 1000,
    offeredPerSec: Math.round(load.sent / sendSeconds),
    deliveredPerSec: Math.min(...CLUSTERS.map((c) => clusters[c].deliveredPerSec)),
    lossPct: Math.max(...CLUSTERS.map((c) => clusters[c].lossPct)),
    latencyUs: percentiles(all),
    remoteLatencyUs: percentiles(remote),
    clusters,
    usage,
    cpuUsPerDatagram: cpuPerDatagram(usage, sut, clusters.aws.received),
  };
  if (sut.mode === 'reply') {
    const replyWindow = Math.max(
      sendSeconds,
      collected.lastReplyNs > 0 ? (collected.lastReplyNs - load.startNs) / 1e9 : 0,
    );
    res.reply = {
      replies: collected.replies,
      perSec: Math.round(replyWindow > 0 ? collected.replies / replyWindow : 0),
      lossPct: load.sent > 0 ? Math.round(Math.max(0, 1 - collected.replies / load.sent) * 10000) / 100 : 0,
      rttUs: percentiles(Histogram.from(collected.rtt)),
    };
  }
  if (before && after) {
    const d = after.map((a, i) => counterDelta(before[i]!, a));
    const dropped: Record<string, number> = {};
    for (const x of d) for (const [k, v] of Object.entries(x.dropped)) dropped[k] = (dropped[k] ?? 0) + v;
    res.udpmesh = {
      ingress: d.reduce((a, x) => a + x.ingress, 0),
      retransmits: d.reduce((a, x) => a + x.retransmits, 0),
      duplicatesDropped: d.reduce((a, x) => a + x.duplicates, 0),
      dropped,
      etcdRequests: d.reduce((a, x) => a + x.etcdRequests, 0),
      drainMs: Math.round(drainMs),
      lagAfterDrain: lag,
      deliveredByReplicator: Object.fromEntries(d.map((x, i) => [CLUSTERS[i]!, x.delivered])),
    };
  }
  return res;
}

function cpuPerDatagram(
  usage: UsageReport,
  sut: SystemUnderTest,
  accepted: number,
): { ingress: number | null; system: number | null } {
  if (accepted <= 0) return { ingress: null, system: null };
  const us = (pct: number | null | undefined): number | null =>
    pct === null || pct === undefined ? null : r1(((pct / 100) * usage.seconds * 1e6) / accepted);
  const own = sut.procs.map((p) => usage.procs.find((u) => u.name === p.name && u.pid === p.pid)?.cpuPct);
  const total = own.every((v) => v !== null && v !== undefined)
    ? own.reduce<number>((a, v) => a + (v ?? 0), 0)
    : null;
  return { ingress: us(own[0]), system: us(total) };
}
