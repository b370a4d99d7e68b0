// Poll a condition until it holds or a deadline passes. Never a fixed sleep as an assertion:
// the condition is what is asserted; the deadline only bounds how long we are willing to wait.

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Described in the timeout error, e.g. "every backend has 100000 datagrams". */
  what: string;
  /** Extra detail for the timeout error (current counts, logs ...). */
  detail?: () => string | Promise<string>;
}

/** Resolves with the first truthy value of check(); throws after timeoutMs. Errors from check() propagate. */
export async function waitFor<T>(check: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() >= deadline) {
      const extra = opts.detail ? `\n${await opts.detail()}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting until ${opts.what}${extra}`);
    }
    await delay(opts.intervalMs ?? 100);
  }
}
