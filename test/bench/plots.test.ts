// The bench plot generator turns a bench document into well-formed SVG line charts with one point per
// measured step, and skips steps without a measurement rather than drawing a zero.
import assert from 'node:assert/strict';
import { benchPlots, lineChart } from './plots.ts';
import type { BenchDoc } from './report.ts';

const step = (
  system: string,
  mode: string,
  offered: number,
  delivered: number,
  p99: number | null,
  cpuUs: number | null,
) => ({
  system,
  mode,
  offeredPerSec: offered,
  deliveredPerSec: delivered,
  payloadBytes: 64,
  latencyUs: { n: 1, p50: 1, p99, p999: 1 },
  cpuUsPerDatagram: { ingress: cpuUs, system: cpuUs },
});

describe('bench plots', () => {
  it('one chart per metric and mode, a point per step, missing measurements left out', () => {
    const doc = {
      host: { cpus: 2 },
      steps: [
        step('udpmesh', 'oneway', 5000, 5000, 300, 20),
        step('udpmesh', 'oneway', 10000, 9900, 900, null),
        step('baseline', 'oneway', 5000, 5000, 100, 8),
        step('udpmesh', 'reply', 5000, 4990, null, 25),
      ],
    } as unknown as BenchDoc;
    const plots = benchPlots(doc);
    assert.deepEqual([...plots.keys()].sort(), [
      'latency-p99-oneway.svg',
      'latency-p99-reply.svg',
      'per-core-oneway.svg',
      'per-core-reply.svg',
      'throughput-oneway.svg',
      'throughput-reply.svg',
    ]);
    const count = (svg: string): number => (svg.match(/<circle /g) ?? []).length;
    assert.equal(count(plots.get('throughput-oneway.svg')!), 3);
    assert.equal(count(plots.get('per-core-oneway.svg')!), 2, 'the step without a CPU figure is skipped');
    assert.equal(count(plots.get('latency-p99-reply.svg')!), 0);
    for (const svg of plots.values()) {
      assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^]*<\/svg>\n$/);
      assert.doesNotMatch(svg, /NaN|undefined|Infinity/);
    }
    // 1e6 / 20 µs = 50k/s per core on a 0-200k axis (the baseline's 125k sets the scale): a quarter up
    // the 270-pixel plot from its bottom at y = 310.
    assert.match(plots.get('per-core-oneway.svg')!, /cy="242\.5"/);
  });

  it('escapes text', () => {
    assert.match(lineChart('a < b & c', 'x', 'y', []), /a &lt; b &amp; c/);
  });
});
