// Bounded table of client sessions with idle expiry. Two segments, as in a 2Q/segmented LRU: a session
// starts in probation and is promoted once it proves itself by a reply from its backend. The client's own
// datagrams prove nothing (a spoofed source sends a second datagram as easily as a first), but they keep a
// probation session at the recent end. When the table is full the least recently active probation session
// goes first, so a flood of new (possibly spoofed) sources evicts the flood, neither established sessions
// nor active clients. Pure bookkeeping: sockets are closed by the onEvict callback.

export interface TableEntry {
  /** The source's key; the batched I/O encodes an IPv4 source as a number (no string per datagram). */
  readonly key: string | number;
  lastSeen: number;
  /** When the entry last moved to the tail of its segment (moves are rate-limited to keep touch() cheap). */
  refreshedAt: number;
  datagrams: number;
  established: boolean;
}

export type EvictReason = 'idle' | 'capacity' | 'closed';

export class SessionTable<E extends TableEntry> {
  private readonly probation = new Map<string | number, E>();
  private readonly established = new Map<string | number, E>();
  /** Map order follows refreshedAt; an entry is moved at most once per refreshMs. */
  private readonly refreshMs: number;

  constructor(
    public maxSessions: number,
    public idleMs: number,
    private readonly onEvict: (entry: E, reason: EvictReason) => void,
  ) {
    this.refreshMs = Math.max(1, Math.floor(idleMs / 8));
  }

  get size(): number {
    return this.probation.size + this.established.size;
  }

  get establishedCount(): number {
    return this.established.size;
  }

  get(key: string | number): E | undefined {
    return this.established.get(key) ?? this.probation.get(key);
  }

  /**
   * Inserts a new entry. When full, the oldest probation entry makes room; established entries are never
   * evicted for a newcomer (only by idle expiry), so when only they remain the newcomer is refused (false).
   */
  add(entry: E, now: number): boolean {
    if (this.get(entry.key)) throw new Error(`session ${entry.key} already present`);
    while (this.size >= this.maxSessions) {
      const victim = first(this.probation);
      if (!victim) return false;
      this.delete(victim, 'capacity');
    }
    entry.lastSeen = now;
    entry.refreshedAt = now;
    (entry.established ? this.established : this.probation).set(entry.key, entry);
    return true;
  }

  /** Records activity on an entry already in the table. */
  touch(entry: E, now: number): void {
    entry.lastSeen = now;
    entry.datagrams++;
    if (now - entry.refreshedAt >= this.refreshMs) {
      const segment = entry.established ? this.established : this.probation;
      segment.delete(entry.key);
      entry.refreshedAt = now;
      segment.set(entry.key, entry);
    }
  }

  /**
   * A reply from the backend also proves the session is real. The entry is queued as seen now (the sweep
   * relies on refreshedAt <= lastSeen), so the promoting reply counts as activity.
   */
  promote(entry: E, now: number): void {
    if (entry.established) return;
    if (this.probation.delete(entry.key)) {
      entry.established = true;
      entry.refreshedAt = now;
      if (entry.lastSeen < now) entry.lastSeen = now;
      this.established.set(entry.key, entry);
    }
  }

  delete(entry: E, reason: EvictReason = 'closed'): void {
    if (this.probation.delete(entry.key) || this.established.delete(entry.key)) this.onEvict(entry, reason);
  }

  /**
   * Expires idle entries; cost is proportional to what expires plus the entries seen within the last
   * refresh interval without being moved (touch() moves an entry at most once per refreshMs).
   */
  sweep(now: number): number {
    return this.sweepSegment(this.probation, now) + this.sweepSegment(this.established, now);
  }

  private sweepSegment(segment: Map<string | number, E>, now: number): number {
    const cutoff = now - this.idleMs;
    let expired = 0;
    for (const entry of segment.values()) {
      // Entries behind this one were refreshed later, hence seen later: nothing more can be idle.
      if (entry.refreshedAt > cutoff) break;
      if (entry.lastSeen <= cutoff) {
        segment.delete(entry.key);
        this.onEvict(entry, 'idle');
        expired++;
      }
      // Otherwise it was seen after the cutoff without being moved: it stays where it is (its refreshedAt
      // keeps the segment ordered and it is checked again by the next sweep). Re-queueing it as refreshed
      // now would let it outlive its idle timeout by up to another idleMs.
    }
    return expired;
  }

  *entries(): IterableIterator<E> {
    yield* this.established.values();
    yield* this.probation.values();
  }

  clear(): void {
    for (const e of [...this.entries()]) this.delete(e, 'closed');
  }
}

function first<E>(m: Map<string | number, E>): E | undefined {
  for (const v of m.values()) return v;
  return undefined;
}
