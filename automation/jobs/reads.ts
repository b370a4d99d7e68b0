// Stack reads (list, outputs, history) as the service answers them. Each engine read starts Pulumi
// CLI processes, so a read token must not be able to load the host: identical reads in flight are
// coalesced into one engine call, answers are cached for `ttlMs` (and dropped as soon as a job on
// the stack ends), and engine reads run at most `concurrency` at a time, the rest waiting.
import type { HistoryEntry, StackEngine, StackOutputs, StackSummary } from '../engine.ts';

export interface StackReadsOptions {
  /** Engine reads running at once (default 2). */
  concurrency?: number;
  /** How long an answer is reused (default 10 s). */
  ttlMs?: number;
  now?: () => number;
}

interface Entry {
  stack: string | undefined;
  value: Promise<unknown>;
  at: number;
  settled: boolean;
}

export class StackReads {
  private readonly cache = new Map<string, Entry>();
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private readonly concurrency: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly engine: StackEngine,
    opts: StackReadsOptions = {},
  ) {
    this.concurrency = Math.max(1, opts.concurrency ?? 2);
    this.ttlMs = opts.ttlMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  listStacks(): Promise<StackSummary[]> {
    return this.read('list', undefined, () => this.engine.listStacks());
  }

  outputs(stack: string): Promise<StackOutputs> {
    return this.read(`outputs:${stack}`, stack, () => this.engine.outputs(stack));
  }

  history(stack: string, opts: { pageSize?: number; page?: number } = {}): Promise<HistoryEntry[]> {
    return this.read(`history:${stack}:${opts.pageSize ?? ''}:${opts.page ?? ''}`, stack, () =>
      this.engine.history(stack, opts),
    );
  }

  /** Drops what is cached about the stack (and the stack list): a job on it has ended. */
  invalidate(stack: string): void {
    for (const [key, e] of this.cache) if (e.stack === stack || e.stack === undefined) this.cache.delete(key);
  }

  private read<T>(key: string, stack: string | undefined, call: () => Promise<T>): Promise<T> {
    const hit = this.cache.get(key);
    if (hit && (!hit.settled || this.now() - hit.at < this.ttlMs)) return hit.value as Promise<T>;
    const entry: Entry = { stack, value: Promise.resolve(), at: this.now(), settled: false };
    const value = this.limited(call).then(
      (v) => {
        entry.settled = true;
        entry.at = this.now();
        return v;
      },
      (err: unknown) => {
        // Failures are not cached.
        if (this.cache.get(key) === entry) this.cache.delete(key);
        throw err;
      },
    );
    entry.value = value;
    this.cache.set(key, entry);
    return value;
  }

  private async limited<T>(call: () => Promise<T>): Promise<T> {
    if (this.active >= this.concurrency) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await call();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
