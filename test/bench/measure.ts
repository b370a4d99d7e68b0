// Per-process CPU and memory from /proc (run time per thread from schedstat, else utime+stime; VmRSS
// sampled, VmHWM), the machine's
// total CPU use from /proc/stat (to see how much of the 2 cores something else took), and the
// replicators' counters from /metrics.
import { readdirSync, readFileSync } from 'node:fs';
import { scrapeMetrics, select, sumOf, type Sample } from '../../replicator/local/promText.ts';

const CLK_TCK = 100; // USER_HZ: 100 on every Linux ABI Node runs on

export interface ProcRef {
  /** e.g. "aws", "sink-gcp", "loadgen", "etcd". */
  name: string;
  pid: number;
}

/** pid and all its descendants (a replicator with workers > 1 is a primary plus worker processes). */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number, depth: number): void => {
    out.push(p);
    if (depth > 4) return;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/)) {
          const n = Number(c);
          if (c !== '' && Number.isInteger(n) && n > 0) visit(n, depth + 1);
        }
      } catch {
        /* gone */
      }
    }
  };
  visit(pid, 0);
  return out;
}

function treeCpuSeconds(pids: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of pids) {
    const t = cpuSeconds(p);
    if (t !== undefined) m.set(p, t);
  }
  return m;
}

/**
 * CPU time of a process in seconds: the scheduler's run time of each of its threads
 * (/proc/<pid>/task/<tid>/schedstat, nanoseconds), else utime + stime (/proc/<pid>/stat, clock ticks).
 * The tick counts are too coarse for processes that run in bursts shorter than a tick: the 64 children of
 * a socat relay at 5k/s showed 0.09 cores in ticks and 0.20 in run time.
 */
function cpuSeconds(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* thread gone */
      }
    }
    if (ns > 0 && Number.isFinite(ns)) return ns / 1e9;
  } catch {
    /* no schedstat: fall back to ticks */
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may contain spaces).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // utime, stime (fields 14, 15)
  } catch {
    return undefined;
  }
}

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function rssMb(pid: number): number | undefined {
  const kb = statusKb(pid, 'VmRSS');
  return kb === undefined ? undefined : kb / 1024;
}

function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export interface ProcUsage {
  name: string;
  pid: number;
  /** Percent of one core over the window (the process and its descendants). */
  cpuPct: number | null;
  /** Largest VmRSS sampled during the window (summed over the process tree), MB. */
  rssMaxMb: number | null;
}

export interface UsageReport {
  seconds: number;
  procs: ProcUsage[];
  /** Whole machine, percent of ALL cores (100 = every core busy). */
  machineBusyPct: number;
  /** CPU used by processes that are not ours, in percent of one core (other work on the host). */
  foreignCpuPct: number;
}

/** Samples CPU and RSS of a set of processes between start() and stop(). */
export class UsageSampler {
  private t0 = 0;
  /** Per reference: CPU seconds at start of every process of its tree (processes appearing later start at 0). */
  private cpu0 = new Map<number, Map<number, number>>();
  private m0 = { busy: 0, total: 0 };
  private rssMax = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly procs: ProcRef[]) {}

  start(): void {
    this.t0 = performance.now();
    this.m0 = machineTicks();
    for (const p of this.procs) this.cpu0.set(p.pid, treeCpuSeconds(processTree(p.pid)));
    this.sampleRss();
    this.timer = setInterval(() => this.sampleRss(), 250);
  }

  private sampleRss(): void {
    for (const p of this.procs) {
      let total: number | undefined;
      for (const q of processTree(p.pid)) {
        const r = rssMb(q);
        if (r !== undefined) total = (total ?? 0) + r;
      }
      if (total !== undefined) this.rssMax.set(p.pid, Math.max(this.rssMax.get(p.pid) ?? 0, total));
    }
  }

  stop(): UsageReport {
    clearInterval(this.timer);
    this.sampleRss();
    const seconds = (performance.now() - this.t0) / 1000;
    const m1 = machineTicks();
    const procs: ProcUsage[] = this.procs.map((p) => {
      const start = this.cpu0.get(p.pid);
      const now = treeCpuSeconds(processTree(p.pid));
      let used = 0;
      for (const [q, t] of now) used += t - (start?.get(q) ?? 0);
      const cpu =
        start !== undefined && start.size > 0 && now.size > 0 && seconds > 0 ? (used / seconds) * 100 : null;
      const rss = this.rssMax.get(p.pid);
      return {
        name: p.name,
        pid: p.pid,
        cpuPct: cpu === null ? null : round1(cpu),
        rssMaxMb: rss === undefined ? null : round1(rss),
      };
    });
    const dt = m1.total - this.m0.total;
    const busyTicks = m1.busy - this.m0.busy;
    const machineBusyPct = dt > 0 ? (busyTicks / dt) * 100 : 0;
    // /proc/stat ticks are summed over cores: busyTicks / CLK_TCK / seconds = cores busy.
    const oursPct = procs.reduce((a, p) => a + (p.cpuPct ?? 0), 0);
    const allPct = seconds > 0 ? (busyTicks / CLK_TCK / seconds) * 100 : 0;
    return {
      seconds: round1(seconds),
      procs,
      machineBusyPct: round1(machineBusyPct),
      foreignCpuPct: round1(Math.max(0, allPct - oursPct)),
    };
  }
}

export function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

/** Counters of one replicator at one instant. */
export interface ReplicatorCounters {
  ingress: number;
  delivered: Record<string, number>;
  etcdRequests: number;
  retransmits: number;
  lag: number;
  dropped: Record<string, number>;
  sessionsActive: number;
  duplicates: number;
  /** V8 heap in use and open file descriptors (prom-client default metrics). */
  heapUsedBytes: number;
  openFds: number;
}

export function countersFrom(samples: Sample[]): ReplicatorCounters {
  const delivered: Record<string, number> = {};
  for (const s of select(samples, 'udpmesh_delivered_datagrams_total'))
    delivered[s.labels.origin ?? '?'] = s.value;
  const dropped: Record<string, number> = {};
  for (const s of select(samples, 'udpmesh_dropped_datagrams_total'))
    dropped[s.labels.reason ?? '?'] = s.value;
  return {
    ingress: sumOf(samples, 'udpmesh_ingress_datagrams_total'),
    delivered,
    etcdRequests: sumOf(samples, 'udpmesh_etcd_requests_total'),
    retransmits: sumOf(samples, 'udpmesh_retransmits_total'),
    lag: sumOf(samples, 'udpmesh_replication_lag_datagrams'),
    dropped,
    sessionsActive: sumOf(samples, 'udpmesh_sessions_active'),
    duplicates: sumOf(samples, 'udpmesh_duplicates_dropped_total'),
    heapUsedBytes: sumOf(samples, 'udpmesh_process_nodejs_heap_size_used_bytes'),
    openFds: sumOf(samples, 'udpmesh_process_process_open_fds'),
  };
}

export async function scrapeCounters(metricsUrl: string): Promise<ReplicatorCounters> {
  return countersFrom(await scrapeMetrics(metricsUrl, 5000));
}

/** b - a for every numeric field (maps key by key); gauges (lag, sessionsActive) keep b's value. */
export function counterDelta(a: ReplicatorCounters, b: ReplicatorCounters): ReplicatorCounters {
  const sub = (x: Record<string, number>, y: Record<string, number>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
      const d = (y[k] ?? 0) - (x[k] ?? 0);
      if (d !== 0) out[k] = d;
    }
    return out;
  };
  return {
    ingress: b.ingress - a.ingress,
    delivered: sub(a.delivered, b.delivered),
    etcdRequests: b.etcdRequests - a.etcdRequests,
    retransmits: b.retransmits - a.retransmits,
    lag: b.lag,
    dropped: sub(a.dropped, b.dropped),
    sessionsActive: b.sessionsActive,
    duplicates: b.duplicates - a.duplicates,
    heapUsedBytes: b.heapUsedBytes,
    openFds: b.openFds,
  };
}
