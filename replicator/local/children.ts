// Process bookkeeping for everything local mode and the test harness spawn: each child runs in its
// own process group (detached), is remembered here while alive, and is killed (whole group, SIGKILL)
// if this process exits without having stopped it. Stopping is signal → wait → SIGKILL.
import type { ChildProcess } from 'node:child_process';

const live = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of live) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    live.clear();
  });
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
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<ExitInfo> {
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
