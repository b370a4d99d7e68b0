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
import { lineChart, type Series } from '../harness/svgChart.ts';

// The chart itself is shared with the chaos timelines (test/harness/svgChart.ts).
export { lineChart, type Series };

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
