// Sliding bitmap window over stream positions, as in DTLS/IPsec anti-replay (werift's window), anchored at
// the lowest position not yet received: every position below `base` is settled, bit i of the ring says
// whether base+i arrived. One check is O(1), memory is windowSize/8 bytes per inbound stream.

export const WindowVerdict = {
  New: 0,
  Duplicate: 1,
  /** Too far ahead: the sender exceeded the window; the datagram is not recorded and will be resent. */
  Beyond: 2,
} as const;
export type WindowVerdict = (typeof WindowVerdict)[keyof typeof WindowVerdict];

export class ReceiveWindow {
  /** Every position below base has been received or skipped. */
  base: number;
  /** Highest position received so far (base - 1 when none above base). */
  highest: number;
  private readonly bits: Uint32Array;
  private readonly mask: number;

  constructor(
    readonly size: number,
    start = 0,
  ) {
    if (size < 32 || (size & (size - 1)) !== 0)
      throw new RangeError('window size must be a power of two >= 32');
    this.bits = new Uint32Array(size >>> 5);
    this.mask = size - 1;
    this.base = start;
    this.highest = start - 1;
  }

  check(pos: number): WindowVerdict {
    if (pos < this.base) return WindowVerdict.Duplicate;
    if (pos >= this.base + this.size) return WindowVerdict.Beyond;
    return this.has(pos) ? WindowVerdict.Duplicate : WindowVerdict.New;
  }

  /** Records a New position (check first). Returns how far base advanced. */
  mark(pos: number): number {
    const i = pos & this.mask;
    this.bits[i >>> 5] |= 1 << (i & 31);
    if (pos > this.highest) this.highest = pos;
    return pos === this.base ? this.slide() : 0;
  }

  private has(pos: number): boolean {
    const i = pos & this.mask;
    return (this.bits[i >>> 5] & (1 << (i & 31))) !== 0;
  }

  private clear(pos: number): void {
    const i = pos & this.mask;
    this.bits[i >>> 5] &= ~(1 << (i & 31));
  }

  /** Moves base over the received run starting at base, clearing bits so the ring can be reused. */
  private slide(): number {
    const from = this.base;
    while (this.base <= this.highest && this.has(this.base)) {
      this.clear(this.base);
      this.base++;
    }
    return this.base - from;
  }

  /**
   * Settles everything below `pos` (a sender's low-water mark or an expired gap). Returns how many
   * positions were skipped without ever arriving.
   */
  skipTo(pos: number): number {
    if (pos <= this.base) return 0;
    if (pos - this.base >= this.size) {
      // Every received position lies inside the window, so all of them are below pos.
      const skipped = pos - this.base - this.receivedAboveBase();
      this.bits.fill(0);
      this.base = pos;
      if (this.highest < pos - 1) this.highest = pos - 1;
      return skipped;
    }
    let skipped = 0;
    while (this.base < pos) {
      if (this.has(this.base)) this.clear(this.base);
      else skipped++;
      this.base++;
    }
    this.slide();
    if (this.highest < this.base - 1) this.highest = this.base - 1;
    return skipped;
  }

  /** Skips the run of missing positions at base (a gap that timed out). Returns its length. */
  skipGap(): number {
    if (this.highest < this.base) return 0;
    let p = this.base;
    while (p <= this.highest && !this.has(p)) p++;
    return this.skipTo(p);
  }

  private countReceived(from: number, to: number): number {
    let n = 0;
    for (let p = Math.max(from, this.base); p <= to; p++) if (this.has(p)) n++;
    return n;
  }

  /** Positions received above base (the out-of-order ones held in the window). */
  receivedAboveBase(): number {
    return this.countReceived(this.base, this.highest);
  }

  /** Lowest received position above base, or -1. */
  nextReceived(): number {
    for (let p = this.base + 1; p <= this.highest; p++) if (this.has(p)) return p;
    return -1;
  }

  /** Received ranges above base, ascending, at most `max` of them (the lowest, which matter most). */
  ranges(max: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let p = this.base + 1;
    while (p <= this.highest && out.length < max) {
      while (p <= this.highest && !this.has(p)) p++;
      if (p > this.highest) break;
      const start = p;
      while (p <= this.highest && this.has(p)) p++;
      out.push([start, p - 1]);
    }
    return out;
  }
}
