// The chaos table: one row per scenario, then the details (per-fault windows, notes, failures).
import type { ScenarioResult } from './scenario.ts';

function secs(ms: number): string {
  return (ms / 1000).toFixed(1);
}

export function windowCell(r: ScenarioResult): string {
  const w = r.windows
    .filter((x) => x.outage)
    .map((x) => (x.recoveredAt === undefined ? undefined : x.recoveredAt - x.injectedAt));
  if (w.length === 0) return '-';
  if (w.some((x) => x === undefined))
    return `not recovered (${w.filter((x) => x === undefined).length}/${w.length})`;
  const v = w as number[];
  if (v.length === 1) return secs(v[0]!);
  if (v.length <= 3) return v.map(secs).join(' / ');
  return `max ${secs(Math.max(...v))}, mean ${secs(v.reduce((a, b) => a + b, 0) / v.length)} (n=${v.length})`;
}

export function resultOk(r: ScenarioResult): boolean {
  return r.failures.length === 0;
}

export function formatTable(results: ScenarioResult[]): string {
  const header = [
    'fault',
    'datagrams accepted',
    'delivered aws / gcp / azure',
    'lost',
    'abandoned at origin',
    'duplicates',
    'order violations',
    'outage window (s)',
    'result',
  ];
  const rows = results.map((r) => [
    r.name,
    String(r.accepted),
    r.clouds.map((c) => c.analysis.distinct).join(' / '),
    String(r.lost),
    String(Object.values(r.abandoned).reduce((a, b) => a + b, 0)),
    r.duplicateBudget > 0 || r.receiverKills > 0
      ? `${r.duplicates} (budget ${r.duplicateBudget})`
      : String(r.duplicates),
    String(r.orderViolations),
    windowCell(r),
    resultOk(r) ? 'PASS' : 'FAIL',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n');
}

export function formatDetails(results: ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(
      `${r.name} (${secs(r.durationMs)} s): sent ${r.sent}, accepted ${r.accepted}` +
        (r.movedByHandover > 0 ? `, ${r.movedByHandover} moved to another replica by hand-over` : ''),
    );
    for (const w of r.windows) {
      const rec = !w.outage
        ? 'no outage expected'
        : w.recoveredAt === undefined
          ? 'not recovered'
          : `recovered ${secs(w.recoveredAt - w.injectedAt)} s after injection (${secs(w.recoveredAt - w.healedAt)} s after heal)`;
      out.push(`  - ${w.label}: fault held ${secs(w.healedAt - w.injectedAt)} s, ${rec}`);
    }
    for (const c of r.clouds) {
      const a = c.analysis;
      const segs =
        a.segments.length > 1
          ? `, ${a.segments.length} incarnation segments (${a.segments.map((s) => s.received).join('+')} arrivals)`
          : '';
      out.push(
        `  - ${c.cloud}: received ${a.received}, distinct ${a.distinct}, lost ${c.lost}, duplicates ${a.duplicates} (within one incarnation ${a.duplicatesWithinSegment}), ` +
          `out of order ${a.outOfOrder}${segs}` +
          (c.stats
            ? `; kernel drops (cumulative) backend ${c.stats.kernelDrops}, by port ${JSON.stringify(c.stats.portDrops)}`
            : '') +
          (c.stats?.proxy
            ? `; proxy in front of its replication port: ${c.stats.proxy.received} in, ${c.stats.proxy.dropped} dropped, ${c.stats.proxy.duplicated} duplicated, ${c.stats.proxy.reordered} reordered (cumulative)`
            : ''),
      );
    }
    for (const n of r.notes) out.push(`  note: ${n}`);
    for (const f of r.failures) out.push(`  FAILED: ${f}`);
  }
  return out.join('\n');
}
