// The chaos timeline picture: well-formed SVG (checked by a real XML parser), one line per cloud plus the
// accepted reference, one shaded rectangle per fault window at the right place, and rates computed from
// cumulative samples the way a reader expects (a cut cloud drops to 0, its catch-up shows above the load).
import assert from 'node:assert/strict';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { ratesPerSecond, slug, timelineSvg, type Timeline, type TimelineSample } from './timeline.ts';

const CLOUDS = ['aws', 'gcp', 'azure'];

/** 20 s of 1000/s everywhere, except gcp: nothing from 5 s to 10 s, then 3000/s until it has caught up. */
function scenario(): Timeline {
  const t0 = 1_000_000;
  const samples: TimelineSample[] = [];
  let gcp = 0;
  for (let ms = 0; ms <= 20_000; ms += 250) {
    const accepted = ms; // 1 per ms
    if (ms > 0 && (ms <= 5000 || ms > 10_000)) gcp = Math.min(accepted, gcp + (ms > 10_000 ? 750 : 250));
    samples.push({ t: t0 + ms, accepted, delivered: { aws: accepted, gcp, azure: accepted } });
  }
  return {
    t0,
    samples,
    windows: [
      { label: 'loss 50% into gcp', from: t0 + 3000, to: t0 + 5000 },
      { label: 'link of gcp down <5 s> & back', from: t0 + 5000, to: t0 + 10_000 },
    ],
    markers: [{ at: t0 + 12_600, label: 'recovered' }],
  };
}

type Node = Record<string, unknown>;
const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function parse(svg: string): Node {
  const valid = XMLValidator.validate(svg);
  assert.equal(valid, true, `not well-formed XML: ${JSON.stringify(valid)}`);
  return new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(svg) as Node;
}

describe('chaos timeline picture', () => {
  it('rates per second from cumulative samples, a late sample averaged over its interval', () => {
    const pts = [
      { t: 0, v: 0 },
      { t: 500, v: 500 },
      { t: 1000, v: 1000 },
      { t: 3000, v: 1000 }, // 2 s without progress (a starved sampler or a cut)
      { t: 3500, v: 2500 },
    ];
    assert.deepEqual(ratesPerSecond(pts, 0), [
      [0.5, 1000],
      [2.5, 0],
      [3.5, 3000],
    ]);
  });

  it('is well-formed SVG with one line per cloud and one shaded rectangle per fault window', () => {
    const tl = scenario();
    const svg = timelineSvg('partition gcp 5 s after loss', tl, CLOUDS);
    assert.doesNotMatch(svg, /NaN|undefined|Infinity/);
    const doc = parse(svg);
    const root = doc.svg as Node;
    assert.ok(root, 'root element is <svg>');
    const lines = asArray(root.polyline as Node[] | Node).filter((p) => p.class === 'series');
    assert.deepEqual(
      lines.map((l) => l['data-series']),
      [...CLOUDS.map((c) => `delivered at ${c}`), 'accepted at ingresses'],
    );
    const bands = asArray(root.rect as Node[] | Node).filter((r) => r.class === 'band');
    assert.equal(bands.length, tl.windows.length);
    // x axis 0..20 s over the plot's 810 pixels starting at x = 70: 3 s -> 191.5, 5 s -> 272.5.
    assert.equal(Number(bands[0]!.x), 191.5);
    assert.equal(Number(bands[0]!.width), 81);
    assert.equal(Number(bands[1]!.x), 272.5);
    assert.equal(Number(bands[1]!.width), 202.5);
    const labels = asArray(root.text as Array<Node | string>)
      .filter((t): t is Node => typeof t === 'object' && t.class === 'band-label')
      .map((t) => t['#text']);
    // The parser decodes the escaped label back to what the scenario wrote.
    assert.deepEqual(labels, ['loss 50% into gcp', 'link of gcp down <5 s> & back']);
    assert.equal(asArray(root.line as Node[] | Node).filter((l) => l.class === 'marker').length, 1);
  });

  it('draws the cut cloud at 0 during the cut and its catch-up above the load', () => {
    const tl = scenario();
    const svg = timelineSvg('t', tl, CLOUDS);
    const root = parse(svg).svg as Node;
    const gcp = asArray(root.polyline as Node[] | Node).find((p) => p['data-series'] === 'delivered at gcp')!;
    const ys = String(gcp.points)
      .split(' ')
      .map((p) => Number(p.split(',')[1]));
    // y axis 0..5000/s over 328 pixels from y = 368 up: 1000/s at 302.4, 0 at 368, 3000/s at 171.2.
    assert.equal(ys[1], 302.4, 'before the cut: the load rate');
    assert.equal(ys[7], 368, 'during the cut: nothing');
    assert.equal(ys[11], 171.2, 'catching up: three times the load rate');
  });

  it('file names from scenario names', () => {
    assert.equal(slug('partition gcp 10 s (loss 50% first)'), 'partition-gcp-10-s-loss-50-first');
  });
});
