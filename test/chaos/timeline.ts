// The picture of one chaos scenario: datagrams delivered per second at each cloud's backend (first
// deliveries of the scenario's sessions, so a catch-up after a heal shows as a spike and a replay that got
// through would not hide), the rate the ingresses accepted as a dashed reference, and each fault window
// shaded with its label. Written as SVG next to the printed table (chaos.ts) with the chart code the bench
// plots use (test/harness/svgChart.ts).
import { lineChart, type Band, type Marker, type Series } from '../harness/svgChart.ts';

/** Cumulative counts at one instant (ms since the epoch). */
export interface TimelineSample {
  t: number;
  /** Accepted at the scenario's ingresses so far. */
  accepted: number;
  /** Distinct datagrams of the scenario's sessions delivered so far, per cloud. */
  delivered: Record<string, number>;
}

export interface TimelineWindow {
  label: string;
  from: number;
  to: number;
}

export interface Timeline {
  /** Start of the load; the x axis counts seconds from here. */
  t0: number;
  samples: TimelineSample[];
  windows: TimelineWindow[];
  /** Instants worth a vertical line (full recovery after a fault). */
  markers: { at: number; label: string }[];
}

export const CLOUD_COLORS: Record<string, string> = {
  aws: '#ff7f0e',
  gcp: '#1f77b4',
  azure: '#2ca02c',
};

/** Neighbouring fault windows (e.g. loss, then a cut) in different shades. */
const BAND_COLORS = ['#e45756', '#f2a900', '#9467bd', '#17becf'];

/**
 * Rate per bucket from cumulative samples: each interval's increase goes to the bucket its end falls in,
 * divided by the time those intervals cover, so a late sample (a starved sampler) gives the mean rate over
 * its interval instead of a spike. Returns [bucket midpoint in s since t0, per second].
 */
export function ratesPerSecond(
  points: ReadonlyArray<{ t: number; v: number }>,
  t0: number,
  bucketMs = 1000,
): Array<[number, number]> {
  const sum = new Map<number, { dv: number; dt: number }>();
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    const dt = b.t - a.t;
    if (dt <= 0) continue;
    const k = Math.floor((b.t - t0 - 1e-9) / bucketMs);
    if (k < 0) continue;
    const e = sum.get(k) ?? { dv: 0, dt: 0 };
    e.dv += Math.max(0, b.v - a.v);
    e.dt += dt;
    sum.set(k, e);
  }
  return [...sum]
    .sort((x, y) => x[0] - y[0])
    .map(([k, e]) => [((k + 0.5) * bucketMs) / 1000, (e.dv * 1000) / e.dt]);
}

export function timelineSvg(title: string, tl: Timeline, clouds: readonly string[]): string {
  const sec = (t: number): number => (t - tl.t0) / 1000;
  const series: Series[] = clouds.map((c) => ({
    name: `delivered at ${c}`,
    color: CLOUD_COLORS[c] ?? '#7f7f7f',
    points: ratesPerSecond(
      tl.samples.filter((s) => s.delivered[c] !== undefined).map((s) => ({ t: s.t, v: s.delivered[c]! })),
      tl.t0,
    ),
  }));
  series.push({
    name: 'accepted at ingresses',
    color: '#555555',
    dash: '6 4',
    points: ratesPerSecond(
      tl.samples.map((s) => ({ t: s.t, v: s.accepted })),
      tl.t0,
    ),
  });
  const bands: Band[] = tl.windows.map((w, i) => ({
    from: sec(w.from),
    to: sec(w.to),
    label: w.label,
    color: BAND_COLORS[i % BAND_COLORS.length],
  }));
  const markers: Marker[] = tl.markers.map((m) => ({ at: sec(m.at), label: m.label }));
  return lineChart(title, 'seconds since the load started', 'datagrams per second', series, {
    width: 900,
    height: 440,
    dots: false,
    legend: 'below',
    bands,
    markers,
  });
}

/** A file name for a scenario's picture. */
export function slug(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 80) || 'scenario'
  );
}
