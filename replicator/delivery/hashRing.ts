// Consistent hashing of sessions over backends (virtual nodes on a 32-bit ring), so adding or removing a
// backend moves only its share of sessions. Also rendezvous hashing to pick one replica of a peer cluster.

/** FNV-1a over a string, then a murmur3 finalizer for avalanche. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

export class HashRing<T> {
  private readonly points: Uint32Array;
  private readonly owners: Uint32Array;

  constructor(
    readonly members: readonly T[],
    keyOf: (m: T) => string,
    vnodes = 64,
  ) {
    const pts: Array<[number, number]> = [];
    members.forEach((m, idx) => {
      for (let v = 0; v < vnodes; v++) pts.push([hashString(`${keyOf(m)}#${v}`), idx]);
    });
    pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.points = Uint32Array.from(pts, (p) => p[0]);
    this.owners = Uint32Array.from(pts, (p) => p[1]);
  }

  get size(): number {
    return this.members.length;
  }

  /** The member owning a 32-bit key (first point clockwise), or undefined when the ring is empty. */
  pick(key: number): T | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    const h = mix32(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return this.members[this.owners[lo === n ? 0 : lo]];
  }
}

/** Rendezvous (highest random weight) choice: stable per key, moves only the keys of a member that leaves. */
export function rendezvous<T>(candidates: readonly T[], idOf: (c: T) => string, key: number): T | undefined {
  let best: T | undefined;
  let bestScore = -1;
  for (const c of candidates) {
    const score = mix32(hashString(idOf(c)) ^ mix32(key));
    if (score > bestScore) {
      bestScore = score;
      best = c;
    }
  }
  return best;
}
