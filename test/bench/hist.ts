// A small log-bucketed latency histogram (about 2.2 % relative bucket width, 1 µs to ~100 s), cheap
// enough for the per-datagram path of sinks and the load generator, mergeable across processes.

const BUCKETS_PER_OCTAVE = 32;
const SIZE = 1 + 28 * BUCKETS_PER_OCTAVE; // up to 2^28 µs (~268 s)

/** Sparse wire form: [bucket index, count] pairs plus exact count/sum/min/max. */
export interface HistData {
  n: number;
  sumUs: number;
  minUs: number;
  maxUs: number;
  buckets: Array<[number, number]>;
}

export class Histogram {
  private counts = new Float64Array(SIZE);
  n = 0;
  sumUs = 0;
  minUs = Infinity;
  maxUs = 0;

  /** Record one value in microseconds (negative values are clamped to 0). */
  record(us: number): void {
    if (!(us > 0)) us = 0;
    const b = us < 1 ? 0 : Math.min(SIZE - 1, 1 + Math.floor(Math.log2(us) * BUCKETS_PER_OCTAVE));
    this.counts[b]++;
    this.n++;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  merge(d: HistData): void {
    for (const [b, c] of d.buckets) this.counts[b] += c;
    this.n += d.n;
    this.sumUs += d.sumUs;
    if (d.n > 0) {
      this.minUs = Math.min(this.minUs, d.minUs);
      this.maxUs = Math.max(this.maxUs, d.maxUs);
    }
  }

  /** Value at quantile q (0..1) in µs: the bucket's geometric midpoint, clamped to the exact min/max. */
  quantile(q: number): number | undefined {
    if (this.n === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let b = 0; b < SIZE; b++) {
      seen += this.counts[b];
      if (seen >= rank) {
        const mid = b === 0 ? 0.5 : Math.pow(2, (b - 1 + 0.5) / BUCKETS_PER_OCTAVE);
        return Math.min(this.maxUs, Math.max(this.minUs, mid));
      }
    }
    return this.maxUs;
  }

  get meanUs(): number | undefined {
    return this.n === 0 ? undefined : this.sumUs / this.n;
  }

  toData(): HistData {
    const buckets: Array<[number, number]> = [];
    for (let b = 0; b < SIZE; b++) if (this.counts[b] > 0) buckets.push([b, this.counts[b]]);
    return { n: this.n, sumUs: this.sumUs, minUs: this.n === 0 ? 0 : this.minUs, maxUs: this.maxUs, buckets };
  }

  static from(...parts: HistData[]): Histogram {
    const h = new Histogram();
    for (const p of parts) h.merge(p);
    return h;
  }
}

export interface Percentiles {
  n: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  mean: number | null;
}

export function percentiles(h: Histogram): Percentiles {
  const r = (v: number | undefined): number | null => (v === undefined ? null : Math.round(v * 10) / 10);
  return {
    n: h.n,
    p50: r(h.quantile(0.5)),
    p99: r(h.quantile(0.99)),
    p999: r(h.quantile(0.999)),
    max: r(h.n ? h.maxUs : undefined),
    mean: r(h.meanUs),
  };
}
