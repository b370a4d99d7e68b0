// The sessions part: N concurrent client sessions on one ingress replicator (distinct source tuples
// 127.1.x.y:61000+, see loadgen.ts), its memory per session, and the throughput of a paced load while
// they are held. One-way sessions hold no socket; reply sessions hold one upstream socket each, which
// costs a file descriptor and an ephemeral port:
//   - fds: RLIMIT_NOFILE is raised with prlimit (root with CAP_SYS_RESOURCE). Without that privilege
//     the replicator runs with enough workers that each stays under the hard limit (each worker is a
//     process with its own limit and owns the sessions SO_REUSEPORT hashes to it);
//   - ports: the kernel's ephemeral range (ip_local_port_range) bounds the upstream sockets of the whole
//     host, so the count is capped to the free part of it, and the report says so.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processTree, rssMb, round1 } from './measure.ts';
import { sleep } from './procs.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { SessionsResultDoc } from './report.ts';
import { runStep, SystemDied } from './steps.ts';
import { CLUSTERS, startUdpmesh, type Mode, type Shared, type SystemUnderTest } from './topology.ts';
import type { SessionsResult } from './wire.ts';

export interface SessionsOptions {
  mode: Mode;
  count: number;
  payloadBytes: number;
  /** Datagrams/s while opening (one datagram per new session). */
  openRate: number;
  /** Paced load while the sessions are held (64 sessions of its own), and its duration. */
  heldRate: number;
  heldDurationMs: number;
}

const FD_MARGIN = 1024;

/** Hard RLIMIT_NOFILE of this process (children inherit it). */
function hardFdLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(
    readFileSync('/proc/self/limits', 'utf8'),
  );
  const v = m?.[2];
  return v === undefined ? 1024 : v === 'unlimited' ? 1 << 30 : Number(v);
}

/** Whether prlimit may set RLIMIT_NOFILE to `want` (tried on a throwaway process). */
function canRaiseFdLimit(want: number): boolean {
  return spawnSync('prlimit', [`--nofile=${want}:${want}`, 'true'], { stdio: 'ignore' }).status === 0;
}

/** Raise RLIMIT_NOFILE of every process in pid's tree; the smallest soft limit now in force. */
function raiseFdLimitTree(pid: number, want: number): number | null {
  let min: number | null = null;
  for (const p of processTree(pid)) {
    spawnSync('prlimit', ['--pid', String(p), `--nofile=${want}:${want}`], { stdio: 'ignore' });
    const r = spawnSync(
      'prlimit',
      ['--pid', String(p), '--nofile', '--raw', '--noheadings', '--output', 'SOFT'],
      {
        encoding: 'utf8',
      },
    );
    const n = Number((r.stdout ?? '').trim());
    if (r.status === 0 && Number.isFinite(n)) min = min === null ? n : Math.min(min, n);
  }
  return min;
}

/** Ephemeral ports (ip_local_port_range) not held by any UDP socket right now. */
export function freeEphemeralUdpPorts(): { range: [number, number]; free: number } {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number) as [number, number];
  const used = new Set<number>();
  for (const f of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (!local) continue;
      const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      if (port >= lo && port <= hi) used.add(port);
    }
  }
  return { range: [lo, hi], free: hi - lo + 1 - used.size };
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
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && (await sut.lag()) > 0) await sleep(100);
}

export async function sessionsStep(
  sh: Shared,
  o: SessionsOptions,
  lc: Lifecycle,
): Promise<SessionsResultDoc> {
  const { mode, count } = o;
  const notes: string[] = [];
  let target = count;
  let workers = 1;
  let fdWant: number | null = null;
  let canRaise = false;
  if (mode === 'reply') {
    const ports = freeEphemeralUdpPorts();
    const portCap = Math.max(0, ports.free - 2000);
    if (portCap < target) {
      notes.push(
        `each reply session holds an upstream socket on an ephemeral port: ${ports.free} of ip_local_port_range ${ports.range.join('-')} are free, so ${portCap} sessions were opened (widen the range, e.g. sysctl net.ipv4.ip_local_port_range="1024 60999", for more)`,
      );
      target = portCap;
    }
    fdWant = target + 4096;
    canRaise = canRaiseFdLimit(fdWant);
    if (!canRaise) {
      const hard = hardFdLimit();
      workers = Math.min(8, Math.max(1, Math.ceil(target / Math.max(1, hard - FD_MARGIN - 2000))));
      notes.push(
        `RLIMIT_NOFILE cannot be raised above the hard limit ${hard} here (no CAP_SYS_RESOURCE): the replicator ran with workers: ${workers}, each worker a process with its own limit`,
      );
    }
  }
  lc.log(
    `sessions (${mode}): starting udpmesh (maxSessions ${count * 2}${workers > 1 ? `, workers ${workers}` : ''}) and opening ${target} sessions`,
  );
  await sh.setEcho(false);
  const um = await lc.start(
    startUdpmesh(sh, {
      mode,
      mesh: `bench-sessions-${mode}`,
      maxSessions: count * 2,
      sessionIdleTimeoutMs: 900_000,
      workers: { aws: workers },
    }),
  );
  try {
    const awsPid = um.procs[0]!.pid;
    let fdLimit: number | null = null;
    if (mode === 'reply' && canRaise && fdWant !== null) fdLimit = raiseFdLimitTree(awsPid, fdWant);
    else if (mode === 'reply') fdLimit = hardFdLimit();
    await sleep(1000);
    const rss = (): Record<string, number | null> =>
      Object.fromEntries(um.procs.map((p) => [p.name, rssOf(p.pid)]));
    const before = rss();
    const c0 = (await um.counters())!;
    const base = {
      host: um.ingress.host,
      port: um.ingress.port,
      count: target,
      batch: 500,
      rate: o.openRate,
      payloadBytes: o.payloadBytes,
    };
    const stepBase = mode === 'oneway' ? 900_000 : 910_000;
    const open = await sh.loadgen.request<SessionsResult>(
      { cmd: 'sessions', spec: { ...base, step: stepBase + 1, perSession: 1, refresh: false } },
      900_000,
    );
    await waitLag(um);
    await sleep(1500);
    const c1 = (await um.counters())!;
    const afterOpen = rss();
    lc.log(
      `sessions (${mode}): ${open.sessions} opened in ${Math.round(open.elapsedMs)} ms; sessions_active ${c1[0]!.sessionsActive}; aws RSS ${afterOpen.aws} MB`,
    );
    // Refresh rounds from the same address:port tuples, only while sessions are missing (their first
    // datagram was dropped at a full socket buffer on a busy host): they open the missing ones.
    let c2 = c1;
    let refreshSent = 0;
    let refreshBindFailures = 0;
    let rounds = 0;
    while (rounds < 2 && c2[0]!.sessionsActive < target) {
      rounds++;
      const refresh = await sh.loadgen.request<SessionsResult>(
        { cmd: 'sessions', spec: { ...base, step: stepBase + 2, perSession: 1, refresh: true } },
        900_000,
      );
      refreshSent += refresh.sent;
      refreshBindFailures += refresh.bindFailures;
      await waitLag(um);
      await sleep(1500);
      c2 = (await um.counters())!;
      lc.log(`sessions (${mode}): refresh round ${rounds}: sessions_active ${c2[0]!.sessionsActive}`);
    }
    const afterRefresh = rss();
    // A paced load from 64 sessions of its own while the table is full.
    if (mode === 'reply') await sh.setEcho(true);
    const held = await runStep(sh, um, {
      label: `held@${o.heldRate}`,
      rate: o.heldRate,
      durationMs: o.heldDurationMs,
      sessions: 64,
      payloadBytes: o.payloadBytes,
    });
    await sh.setEcho(false);
    const c3 = (await um.counters())!;
    const afterHeld = rss();
    lc.log(
      `sessions (${mode}): held ${c3[0]!.sessionsActive} sessions; paced ${o.heldRate}/s delivered ${held.deliveredPerSec}/s, loss ${held.lossPct}%, p99 ${held.latencyUs.p99} µs; aws RSS ${afterHeld.aws} MB`,
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
      workers,
      fdLimit,
      note: notes.length ? notes.join('; ') : undefined,
      established: open.sessions,
      sent: open.sent + refreshSent,
      bindFailures: open.bindFailures + refreshBindFailures,
      refreshRounds: rounds,
      elapsedMs: Math.round(open.elapsedMs),
      sessionsActive: {
        afterOpen: c1[0]!.sessionsActive,
        afterRefresh: c2[0]!.sessionsActive,
        afterHeld: c3[0]!.sessionsActive,
      },
      rssMb: Object.fromEntries(
        CLUSTERS.map((c) => [
          c,
          {
            before: before[c] ?? null,
            afterOpen: afterOpen[c] ?? null,
            afterRefresh: afterRefresh[c] ?? null,
            afterHeld: afterHeld[c] ?? null,
          },
        ]),
      ),
      bytesPerSessionIngress: perSession === null ? null : Math.round(perSession),
      // With several workers the ingress's "before" holds several Node processes: project from one
      // (the single-process gcp replicator's) instead, so the figure is that of one replicator process.
      projectedIngressRssMb:
        perSession === null || ingressBefore === null
          ? null
          : Math.round(
              (workers > 1 ? (before.gcp ?? ingressBefore) : ingressBefore) +
                (perSession * count) / 1024 / 1024,
            ),
      ingressHeapUsedMb: {
        before: mb(c0[0]!.heapUsedBytes),
        afterOpen: mb(c1[0]!.heapUsedBytes),
        afterRefresh: mb(c2[0]!.heapUsedBytes),
      },
      ingressOpenFds: c2[0]!.openFds,
      delivered: Object.fromEntries(CLUSTERS.map((c, i) => [c, reports[i]!.received])),
      droppedAtIngress: dropped,
      held: {
        rate: o.heldRate,
        offeredPerSec: held.offeredPerSec,
        deliveredPerSec: held.deliveredPerSec,
        lossPct: held.lossPct,
        latencyUs: held.latencyUs,
        reply: held.reply
          ? { perSec: held.reply.perSec, lossPct: held.reply.lossPct, rttUs: held.reply.rttUs }
          : null,
        ingressCpuPct: held.usage.procs.find((p) => p.name === 'aws')?.cpuPct ?? null,
      },
    };
  } catch (err) {
    await sleep(300);
    const dead = um.dead();
    throw dead ? new SystemDied(`${dead} (${err instanceof Error ? err.message : String(err)})`) : err;
  } finally {
    await lc.stop(um);
  }
}
