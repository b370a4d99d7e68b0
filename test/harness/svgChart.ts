// A small hand-written SVG line chart, shared by the bench plots (test/bench/plots.ts) and the chaos
// timelines (test/chaos/timeline.ts). Plain SVG strings: no charting dependency for a few line charts, and
// the output is a deterministic function of its input, so regenerated pictures give reviewable diffs.
// Optional shaded bands (fault windows) and vertical markers are drawn behind the series.

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
  /** stroke-dasharray, e.g. "6 4" (a reference line). */
  dash?: string;
}

/** A shaded x range with a label at its top (a fault window on a timeline). */
export interface Band {
  from: number;
  to: number;
  label: string;
  color?: string;
}

/** A thin vertical line with a label (e.g. "recovered"). */
export interface Marker {
  at: number;
  label: string;
  color?: string;
}

export interface ChartOptions {
  width?: number;
  height?: number;
  /** A dot per point (default true; off for dense time series). */
  dots?: boolean;
  bands?: Band[];
  markers?: Marker[];
  /** inside (default): top left of the plot; below: one row under the x axis (keeps the plot clear). */
  legend?: 'inside' | 'below';
}

const MARGIN = { left: 70, right: 20, top: 40, bottom: 50 };

export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

export const fmt = (v: number): string =>
  v >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : v >= 1e3 ? `${+(v / 1e3).toFixed(1)}k` : `${+v.toFixed(1)}`;

export const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A line chart with axes, 5 ticks per axis, a legend, and optional shaded bands and markers. */
export function lineChart(
  title: string,
  xLabel: string,
  yLabel: string,
  series: Series[],
  opts: ChartOptions = {},
): string {
  const W = opts.width ?? 640;
  const H = opts.height ?? 360;
  const below = opts.legend === 'below';
  const M = { ...MARGIN, bottom: MARGIN.bottom + (below ? 22 : 0) };
  const bands = opts.bands ?? [];
  const markers = opts.markers ?? [];
  const all = series.flatMap((s) => s.points);
  const xMax = niceMax(
    Math.max(0, ...all.map((p) => p[0]), ...bands.map((b) => b.to), ...markers.map((m) => m.at)),
  );
  const yMax = niceMax(Math.max(0, ...all.map((p) => p[1])));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number): number => M.left + (Math.min(Math.max(v, 0), xMax) / xMax) * pw;
  const y = (v: number): number => M.top + ph - (v / yMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  for (const b of bands) {
    const x0 = x(b.from);
    const w = Math.max(1, x(b.to) - x0);
    out.push(
      `<rect class="band" x="${x0.toFixed(1)}" y="${M.top}" width="${w.toFixed(1)}" height="${ph}" fill="${b.color ?? '#e45756'}" fill-opacity="0.18"><title>${esc(b.label)}</title></rect>`,
      // Written downwards along the band's left edge: neighbouring windows' labels do not overprint.
      `<text class="band-label" transform="translate(${(x0 + 4).toFixed(1)} ${M.top + 4}) rotate(90)" font-size="10" fill="#a33">${esc(b.label)}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="black"/>`,
  );
  for (let i = 0; i <= 5; i++) {
    const xv = (xMax * i) / 5;
    const yv = (yMax * i) / 5;
    out.push(
      `<text x="${x(xv).toFixed(1)}" y="${M.top + ph + 18}" text-anchor="middle">${fmt(xv)}</text>`,
      `<line x1="${M.left}" y1="${y(yv).toFixed(1)}" x2="${M.left + pw}" y2="${y(yv).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${M.left - 6}" y="${(y(yv) + 4).toFixed(1)}" text-anchor="end">${fmt(yv)}</text>`,
    );
  }
  for (const m of markers) {
    const mx = x(m.at).toFixed(1);
    out.push(
      `<line class="marker" x1="${mx}" y1="${M.top}" x2="${mx}" y2="${M.top + ph}" stroke="${m.color ?? '#2ca02c'}" stroke-dasharray="3 3"><title>${esc(m.label)}</title></line>`,
    );
  }
  out.push(
    `<text x="${M.left + pw / 2}" y="${H - 10 - (below ? 22 : 0)}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  let legendX = M.left + 10;
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    if (pts.length > 0)
      out.push(
        `<polyline class="series" data-series="${esc(s.name)}" fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${pts.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"/>`,
        ...(opts.dots === false
          ? []
          : pts.map(
              ([a, b]) => `<circle cx="${x(a).toFixed(1)}" cy="${y(b).toFixed(1)}" r="3" fill="${s.color}"/>`,
            )),
      );
    const ly = below ? H - 12 : M.top + 6 + i * 16;
    out.push(
      `<rect x="${legendX}" y="${ly}" width="12" height="3" fill="${s.color}"/>`,
      `<text x="${legendX + 18}" y="${ly + 5}">${esc(s.name)}</text>`,
    );
    // Below: one row, each entry as wide as its text (about 7 px per character at 12 px).
    if (below) legendX += 40 + 7 * s.name.length;
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
