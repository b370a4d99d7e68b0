// Process bookkeeping for everything local mode and the test harness spawn: each child runs in its
// own process group (detached), is remembered here while alive, and is killed (whole group, SIGKILL)
// if this process exits without having stopped it. Stopping is signal → wait → SIGKILL.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const live = new Set<number>();
const dirs = new Set<string>();

/** A temp dir to remove if this process exits (or dies of SIGTERM/SIGHUP, see cleanupOnSignals) before its owner removed it. */
export function trackDir(dir: string): void {
  installExitHook();
  dirs.add(dir);
}

/** Forget a dir: it was removed, or is deliberately kept. */
export function untrackDir(dir: string): void {
  dirs.delete(dir);
}

function killAllAndRemoveDirs(): void {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
  for (const d of dirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  dirs.clear();
}
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllAndRemoveDirs);
}

/** Remember a detached child so it is killed if we exit first; forgets it when it exits. */
export function track(child: ChildProcess): void {
  installExitHook();
  const pid = child.pid;
  if (pid === undefined) return;
  live.add(pid);
  child.once('exit', () => live.delete(pid));
}

/** Process ids of tracked children that have not exited yet. */
export function livePids(): number[] {
  return [...live];
}

/** Send a signal to the child's process group (falls back to the pid). Returns false if it was gone. */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves when the child has exited (immediately if it already has). */
export function waitForExit(child: ChildProcess): Promise<ExitInfo> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Signal the group, wait up to graceMs for exit, then SIGKILL the group and wait. */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 5000,
): Promise<ExitInfo> {
  const exited = waitForExit(child);
  if (!signalGroup(child, signal)) return exited;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  const first = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (first !== 'timeout') return first;
  signalGroup(child, 'SIGKILL');
  return exited;
}

let signalHookInstalled = false;

/**
 * For test runs: on SIGTERM or SIGHUP (e.g. `timeout` ending a test run) kill every tracked child
 * group, then die of the same signal. Without this a test process killed by a signal would leave
 * etcd members and replicators running ('exit' handlers do not run on a fatal signal). Local mode
 * does not use this: it stops its children gracefully itself.
 */
export function cleanupOnSignals(): void {
  if (signalHookInstalled) return;
  signalHookInstalled = true;
  installExitHook();
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      killAllAndRemoveDirs();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}
