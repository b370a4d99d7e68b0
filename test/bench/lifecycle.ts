// What the parts of the bench (peers, scaling, sessions) get from run.ts: a logger and start/stop of
// systems under test that run.ts tracks, so every one of them is stopped on exit, SIGINT or error.
import type { SystemUnderTest } from './topology.ts';

export interface Lifecycle {
  log(msg: string): void;
  start<T extends SystemUnderTest>(p: Promise<T>): Promise<T>;
  stop(s: SystemUnderTest): Promise<void>;
}

export function rateLabel(rate: number): string {
  if (rate === 0) return 'max';
  return rate % 1000 === 0 ? `${rate / 1000}k` : String(rate);
}
