// The printed comparison (plain aligned text) and the JSON document.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Percentiles } from './hist.ts';
import { fmtInt, fmtPct, fmtUs, table } from './format.ts';
import type { PeersDoc } from './peers.ts';
import { renderStartup, type StartupDoc } from './startup.ts';
import { renderPeers, renderScaling } from './reportParts.ts';
import type { ScalingDoc } from './scaling.ts';
import type { StepResult } from './steps.ts';
import type { Mode } from './topology.ts';

export interface SessionsResultDoc {
  mode: Mode;
  /** Sessions asked for (--session-count). */
  requested: number;
  /** Sessions attempted (fewer than requested when the fd limit does not allow them). */
  target: number;
  /** Worker processes of the ingress replicator (more than 1 when its fd limit could not be raised). */
  workers: number;
  /** RLIMIT_NOFILE given to the ingress replicator (reply mode holds one socket per session). */
  fdLimit: number | null;
  note?: string;
  established: number;
  sent: number;
  bindFailures: number;
  refreshRounds: number;
  elapsedMs: number;
  sessionsActive: { afterOpen: number; afterRefresh: number; afterHeld: number };
  /** RSS (MB) of each replicator: before, after opening, after the refresh rounds, after the held load. */
  rssMb: Record<
    string,
    { before: number | null; afterOpen: number | null; afterRefresh: number | null; afterHeld: number | null }
  >;
  /** (RSS after the refresh rounds - before) / active sessions, bytes, at the ingress replicator. */
  bytesPerSessionIngress: number | null;
  /** RSS before + bytesPerSession x the requested count (for when the fd limit capped the count). */
  projectedIngressRssMb: number | null;
  /** V8 heap used (MB) at the ingress replicator before and after opening; open fds after. */
  ingressHeapUsedMb: { before: number; afterOpen: number; afterRefresh: number };
  ingressOpenFds: number;
  delivered: Record<string, number>;
  droppedAtIngress: Record<string, number>;
  /** A paced load (64 sessions of its own) while the sessions are held. */
  held: {
    rate: number;
    offeredPerSec: number;
    deliveredPerSec: number;
    lossPct: number;
    latencyUs: Percentiles;
    reply: { perSec: number; lossPct: number; rttUs: Percentiles } | null;
    ingressCpuPct: number | null;
  };
}

export interface Summary {
  oneway?: {
    udpmeshMaxPerSec: number;
    baselineMaxPerSec: number;
    ratio: number;
    halfRate: number;
    p99AddedUs: number | null;
    p99UdpmeshUs: number | null;
    p99BaselineUs: number | null;
    /** CPU µs per datagram in the ingress process at the highest-rate step, and 1e6 / that (one core). */
    ingressCpuUs: { udpmesh: number | null; baseline: number | null };
    projectedOneCorePerSec: { udpmesh: number | null; baseline: number | null };
  };
  reply?: {
    udpmeshMaxPerSec: number;
    baselineMaxPerSec: number;
    ratio: number;
    halfRate: number;
    rttP99AddedUs: number | null;
    deliveryP99AddedUs: number | null;
  };
  etcdRequestsPer1000: number | null;
  sessions?: Array<{
    mode: Mode;
    count: number;
    target: number;
    requested: number;
    workers: number;
    note: string | undefined;
    bytesPerSession: number | null;
    heldDeliveredPerSec: number;
    heldRate: number;
    maxRssMb: number | null;
    projectedMb: number | null;
  }>;
}

export interface BenchDoc {
  startedAt: string;
  finishedAt: string;
  host: { cpus: number; node: string; loadAvgAtStart: number[]; kernel: string };
  options: Record<string, unknown>;
  steps: StepResult[];
  /** Which parts ran (--only). */
  parts: string[];
  peers?: PeersDoc;
  scaling?: ScalingDoc;
  startup?: StartupDoc;
  sessions: SessionsResultDoc[];
  /** Processes of a system under test that died during the run (each voided and redid its mode). */
  incidents: string[];
  validity: { foreignCpuPctAvg: number; foreignCpuPctMax: number; disturbed: boolean; note: string };
  etcd: { requests: number; ingressDatagrams: number; per1000: number | null };
  summary: Summary;
  targets: Array<{ name: string; target: string; value: string; pass: boolean | null }>;
}

function lat(p: Percentiles): string[] {
  return [fmtUs(p.p50), fmtUs(p.p99), fmtUs(p.p999)];
}

function modeTable(steps: StepResult[], mode: Mode): string {
  const u = steps.filter((s) => s.system === 'udpmesh' && s.mode === mode);
  const b = steps.filter((s) => s.system === 'baseline' && s.mode === mode);
  const labels = [...new Set([...u, ...b].map((s) => s.label))];
  const reply = mode === 'reply';
  const per = (s: StepResult | undefined): string[] => {
    if (!s) return Array(reply ? 13 : 10).fill('-');
    const cells = [
      fmtInt(s.offeredPerSec),
      fmtInt(s.deliveredPerSec),
      fmtPct(s.lossPct),
      ...lat(s.latencyUs),
    ];
    if (reply) cells.push(...lat(s.reply!.rttUs), fmtPct(s.reply!.lossPct));
    cells.push(
      fmtPct(s.usage.procs.find((p) => p.name === 'aws')?.cpuPct),
      fmtUs(s.cpuUsPerDatagram.ingress),
      fmtUs(s.cpuUsPerDatagram.system),
      fmtInt(s.usage.foreignCpuPct),
    );
    return cells;
  };
  const sub = [
    'offered/s',
    'deliv/s',
    'loss%',
    'p50',
    'p99',
    'p99.9',
    ...(reply ? ['rtt50', 'rtt99', 'rtt99.9', 'rloss%'] : []),
    'ingCPU%',
    'ing-µs',
    'sys-µs',
    'other%',
  ];
  const n = sub.length;
  const h1 = ['', ...padGroup('udpmesh', n), '|', ...padGroup('baseline', n)];
  const h2 = ['rate', ...sub, '|', ...sub];
  const rows = labels.map((l) => [
    l,
    ...per(u.find((s) => s.label === l)),
    '|',
    ...per(b.find((s) => s.label === l)),
  ]);
  return table([h1, h2], rows);
}

function padGroup(name: string, n: number): string[] {
  const out = Array<string>(n).fill('');
  out[0] = name;
  return out;
}

function cpuTable(steps: StepResult[]): string {
  const names = ['aws', 'gcp', 'azure', 'sink-aws', 'sink-gcp', 'sink-azure', 'loadgen', 'etcd'];
  const h = ['mode', 'rate', 'system', ...names.map((n) => `${n}`), 'machine%'];
  const rows = steps.map((s) => [
    s.mode,
    s.label,
    s.system,
    ...names.map((n) => {
      const p = s.usage.procs.find((x) => x.name === n);
      return p ? `${fmtInt(p.cpuPct)}/${fmtInt(p.rssMaxMb)}` : '-';
    }),
    fmtInt(s.usage.machineBusyPct),
  ]);
  return table([h], rows);
}

export function renderText(doc: BenchDoc): string {
  const out: string[] = [];
  const o = doc.options;
  out.push(
    `udpmesh bench  ${doc.startedAt}  ${doc.host.cpus} CPUs, node ${doc.host.node}, load avg at start ${doc.host.loadAvgAtStart.map((x) => x.toFixed(2)).join(' ')}`,
    `${o.payloadBytes} B datagrams, ${o.sessions} client sessions, ${Number(o.durationMs) / 1000} s per step, loopback only; latency in µs (client send -> sink), rates in datagrams/s`,
    `deliv/s = delivered to all three clusters (min over clusters); loss% = worst cluster; ingCPU% = ingress process (aws), % of one core`,
    `ing-µs / sys-µs = CPU µs per accepted datagram in the ingress process / in all three system processes; other% = CPU (% of one core) used by processes outside the bench`,
    '',
  );
  for (const mode of ['oneway', 'reply'] as const) {
    if (!doc.steps.some((s) => s.mode === mode)) continue;
    out.push(
      mode === 'oneway'
        ? 'ONE-WAY'
        : 'REPLY (rtt = client round trip through the ingress; rloss% = requests without a reply)',
      modeTable(doc.steps, mode),
      '',
    );
  }
  if (doc.steps.length > 0)
    out.push(
      'CPU % of one core / max RSS MB per process (aws/gcp/azure = replicators or plain forwarders)',
      cpuTable(doc.steps),
      '',
    );
  const u = doc.steps.filter((s) => s.system === 'udpmesh' && s.udpmesh);
  if (u.length > 0) {
    out.push('udpmesh counters per step (sum over the three replicators)');
    out.push(
      table(
        [
          [
            'mode',
            'rate',
            'ingress',
            'retransmits',
            'dup-dropped',
            'drain ms',
            'dropped',
            'out-of-order at sinks',
          ],
        ],
        u.map((s) => [
          s.mode,
          s.label,
          fmtInt(s.udpmesh!.ingress),
          fmtInt(s.udpmesh!.retransmits),
          fmtInt(s.udpmesh!.duplicatesDropped),
          fmtInt(s.udpmesh!.drainMs),
          Object.entries(s.udpmesh!.dropped)
            .map(([k, v]) => `${k}=${v}`)
            .join(',') || '0',
          String(Object.values(s.clusters).reduce((a, c) => a + c.outOfOrder, 0)),
        ]),
      ),
      '',
    );
  }
  for (const s of doc.sessions) {
    out.push(
      `SESSIONS (${s.mode}): ${fmtInt(s.established)} of ${fmtInt(s.target)} client tuples (distinct source address:port) sent 1 datagram each to the aws ingress` +
        `${s.workers > 1 ? ` (workers: ${s.workers})` : ''} in ${fmtInt(s.elapsedMs)} ms; ` +
        `udpmesh_sessions_active ${fmtInt(s.sessionsActive.afterOpen)} after opening, ${fmtInt(s.sessionsActive.afterRefresh)} after ${s.refreshRounds} refresh round(s), ${fmtInt(s.sessionsActive.afterHeld)} after the held load` +
        (s.fdLimit !== null ? `; fd limit ${fmtInt(s.fdLimit)}, ${fmtInt(s.ingressOpenFds)} fds open` : '') +
        (s.note ? `; ${s.note}` : ''),
    );
    out.push(
      table(
        [['replicator', 'RSS before MB', 'after open MB', 'after refresh MB', 'after held load MB']],
        Object.entries(s.rssMb).map(([k, v]) => [
          k,
          fmtInt(v.before),
          fmtInt(v.afterOpen),
          fmtInt(v.afterRefresh),
          fmtInt(v.afterHeld),
        ]),
      ),
    );
    const h = s.held;
    out.push(
      `ingress: ~${fmtInt(s.bytesPerSessionIngress)} B RSS per session (${fmtInt(s.projectedIngressRssMb)} MB projected at ${fmtInt(s.requested)}); V8 heap used ${s.ingressHeapUsedMb.before} -> ${s.ingressHeapUsedMb.afterOpen} -> ${s.ingressHeapUsedMb.afterRefresh} MB; ` +
        `delivered ${JSON.stringify(s.delivered)}; ingress drops ${JSON.stringify(s.droppedAtIngress)}`,
      `while held: paced ${fmtInt(h.rate)}/s from 64 more sessions: offered ${fmtInt(h.offeredPerSec)}/s, delivered to all ${fmtInt(h.deliveredPerSec)}/s, loss ${fmtPct(h.lossPct)}%, ` +
        `p50/p99 ${fmtUs(h.latencyUs.p50)}/${fmtUs(h.latencyUs.p99)} µs` +
        (h.reply
          ? `, replies ${fmtInt(h.reply.perSec)}/s (loss ${fmtPct(h.reply.lossPct)}%), rtt p50/p99 ${fmtUs(h.reply.rttUs.p50)}/${fmtUs(h.reply.rttUs.p99)} µs`
          : '') +
        `; ingress CPU ${fmtInt(h.ingressCpuPct)}%`,
      '',
    );
  }
  if (doc.peers) out.push(renderPeers(doc.peers), '');
  if (doc.scaling) out.push(renderScaling(doc.scaling), '');
  if (doc.startup) out.push(renderStartup(doc.startup), '');
  out.push(
    `etcd requests per 1,000 datagrams (udpmesh, whole run, 3 replicators): ${doc.etcd.per1000 === null ? '-' : doc.etcd.per1000.toFixed(3)} (${doc.etcd.requests} requests / ${fmtInt(doc.etcd.ingressDatagrams)} datagrams)`,
    '',
  );
  if (doc.incidents.length > 0) out.push(`INCIDENTS (redone): ${doc.incidents.join(' | ')}`, '');
  if (doc.validity.disturbed) out.push(`WARNING: ${doc.validity.note}`, '');
  out.push('TARGETS');
  out.push(
    table(
      [['target', 'wanted', 'measured', 'result']],
      doc.targets.map((t) => [t.name, t.target, t.value, t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL']),
    ),
  );
  return out.join('\n');
}

export function writeJson(doc: BenchDoc, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${doc.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  return file;
}
