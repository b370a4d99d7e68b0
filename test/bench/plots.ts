// SVG plots for docs/capacity.md from a `npm run bench` result (bench-results/bench-<time>.json):
//   node --import tsx test/bench/plots.ts bench-results/bench-<time>.json [--out docs/img]
// writes, per mode (oneway, reply): delivered vs offered datagrams/s, p99 delivery latency vs offered,
// and datagrams/s per core (1e6 / CPU µs per datagram of the system's processes), udpmesh against the
// plain-forwarder baseline. Plain SVG strings: no charting dependency for three line charts, and the
// output is a deterministic function of the JSON so regenerating it gives reviewable diffs.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchDoc } from './report.ts';
import type { StepResult } from './steps.ts';

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

const W = 640;
const H = 360;
const M = { left: 70, right: 20, top: 40, bottom: 50 };

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

const fmt = (v: number): string =>
  v >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : v >= 1e3 ? `${+(v / 1e3).toFixed(1)}k` : `${+v.toFixed(1)}`;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A line chart with axes, 5 ticks per axis and a legend. */
export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const all = series.flatMap((s) => s.points);
  const xMax = niceMax(Math.max(0, ...all.map((p) => p[0])));
  const yMax = niceMax(Math.max(0, ...all.map((p) => p[1])));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number): number => M.left + (v / xMax) * pw;
  const y = (v: number): number => M.top + ph - (v / yMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="black"/>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const xv = (xMax * i) / 5;
    const yv = (yMax * i) / 5;
    out.push(
      `<text x="${x(xv).toFixed(1)}" y="${M.top + ph + 18}" text-anchor="middle">${fmt(xv)}</text>`,
      `<line x1="${M.left}" y1="${y(yv).toFixed(1)}" x2="${M.left + pw}" y2="${y(yv).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${M.left - 6}" y="${(y(yv) + 4).toFixed(1)}" text-anchor="end">${fmt(yv)}</text>`,
    );
  }
  out.push(
    `<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (pts.length > 0)
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"/>`,
        ...pts.map(
          ([a, b]) => `<circle cx="${x(a).toFixed(1)}" cy="${y(b).toFixed(1)}" r="3" fill="${s.color}"/>`,
        ),
      );
    out.push(
      `<rect x="${M.left + 10}" y="${M.top + 6 + i * 16}" width="12" height="3" fill="${s.color}"/>`,
      `<text x="${M.left + 28}" y="${M.top + 11 + i * 16}">${esc(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

const COLORS: Record<string, string> = { udpmesh: '#1f77b4', baseline: '#ff7f0e' };

function seriesOf(
  steps: StepResult[],
  mode: string,
  value: (s: StepResult) => number | null | undefined,
): Series[] {
  return (['udpmesh', 'baseline'] as const).map((system) => ({
    name: system === 'baseline' ? 'plain Node forwarder' : system,
    color: COLORS[system]!,
    points: steps
      .filter((s) => s.system === system && s.mode === mode && s.offeredPerSec > 0)
      .flatMap((s): Array<[number, number]> => {
        const v = value(s);
        return v === null || v === undefined || !Number.isFinite(v) ? [] : [[s.offeredPerSec, v]];
      }),
  }));
}

/** File name -> SVG, for every mode present in the document. */
export function benchPlots(doc: BenchDoc): Map<string, string> {
  const out = new Map<string, string>();
  const payload = doc.steps[0]?.payloadBytes;
  const sub = `${payload ?? '?'}-byte payloads, ${doc.host.cpus} CPUs`;
  for (const mode of [...new Set(doc.steps.map((s) => s.mode))]) {
    out.set(
      `throughput-${mode}.svg`,
      lineChart(
        `Delivered to all three clouds (${mode}, ${sub})`,
        'offered datagrams/s',
        'delivered datagrams/s',
        seriesOf(doc.steps, mode, (s) => s.deliveredPerSec),
      ),
    );
    out.set(
      `latency-p99-${mode}.svg`,
      lineChart(
        `p99 delivery latency (${mode}, ${sub})`,
        'offered datagrams/s',
        'p99 latency (µs)',
        seriesOf(doc.steps, mode, (s) => s.latencyUs.p99),
      ),
    );
    out.set(
      `per-core-${mode}.svg`,
      lineChart(
        `Datagrams per second per core (${mode}, ${sub})`,
        'offered datagrams/s',
        'datagrams/s per core (1e6 / CPU µs per datagram)',
        seriesOf(doc.steps, mode, (s) =>
          s.cpuUsPerDatagram.system ? 1e6 / s.cpuUsPerDatagram.system : null,
        ),
      ),
    );
  }
  return out;
}

function main(): number {
  const usage =
    'usage: node --import tsx test/bench/plots.ts <bench-results/bench-*.json> [--out docs/img]\n';
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { out: { type: 'string', default: 'docs/img' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (parsed.values.help || parsed.positionals.length !== 1) {
    (parsed.values.help ? process.stdout : process.stderr).write(usage);
    return parsed.values.help ? 0 : 2;
  }
  const doc = JSON.parse(readFileSync(parsed.positionals[0]!, 'utf8')) as BenchDoc;
  const dir = parsed.values.out!;
  mkdirSync(dir, { recursive: true });
  for (const [name, svg] of benchPlots(doc)) {
    writeFileSync(join(dir, name), svg);
    process.stdout.write(`${join(dir, name)}\n`);
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main();
