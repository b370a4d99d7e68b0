// Pure IPv4 CIDR helpers used by config validation and the interconnect plan.

export interface Cidr {
  readonly text: string;
  readonly start: number; // first address as an unsigned 32-bit integer
  readonly end: number; // last address (inclusive)
  readonly prefix: number;
}

const CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** Parses "a.b.c.d/n"; returns undefined for anything else (including host bits set). */
export function parseCidr(text: string): Cidr | undefined {
  const m = CIDR_RE.exec(text);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const addr = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
  const size = 2 ** (32 - prefix);
  if (addr % size !== 0) return undefined;
  return { text, start: addr, end: addr + size - 1, prefix };
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.start <= b.end && b.start <= a.end;
}

/** True when `inner` lies entirely within `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return outer.start <= inner.start && inner.end <= outer.end;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The i-th subnet of the given prefix length inside `parent`, e.g. subnet("10.0.0.0/16", 20, 1) = 10.0.16.0/20. */
export function subnet(parent: string, prefix: number, index: number): string {
  const p = parseCidr(parent);
  if (!p) throw new Error(`invalid CIDR ${parent}`);
  if (prefix < p.prefix) throw new Error(`/${prefix} does not fit in ${parent}`);
  const size = 2 ** (32 - prefix);
  const start = p.start + index * size;
  if (start + size - 1 > p.end) throw new Error(`subnet #${index} /${prefix} does not fit in ${parent}`);
  return `${intToIp(start)}/${prefix}`;
}

/** The n-th host address in a CIDR (n=1 is the first usable address of a /30). */
export function hostAddress(cidr: string, n: number): string {
  const p = parseCidr(cidr);
  if (!p) throw new Error(`invalid CIDR ${cidr}`);
  if (p.start + n > p.end) throw new Error(`host #${n} is outside ${cidr}`);
  return intToIp(p.start + n);
}
