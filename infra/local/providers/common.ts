// Helpers every local-target provider uses: the shape of a managed process in the state, port checks
// that name the port, waiting with a deadline, and the "is this binary installed" errors.
import { existsSync, rmSync } from 'node:fs';
import { isPortFree } from '../../../replicator/local/freePort.ts';
import {
  isRunning,
  readPidFile,
  spawnDetached,
  stopPidFile,
  tailFile,
  which,
  type DetachedSpec,
  type PidRecord,
} from '../../../replicator/local/detached.ts';

/** What every local provider's diff() answers (the dynamic provider's DiffResult, all fields set). */
export interface DiffResult {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
}

/** What read() reports about one process; a dead one (running false) is drift that `up` repairs. */
export interface ProcessState {
  pid: number;
  startTime: string;
  running: boolean;
}

export function processState(rec: PidRecord | undefined): ProcessState {
  return rec && isRunning(rec)
    ? { pid: rec.pid, startTime: rec.startTime, running: true }
    : { pid: 0, startTime: '', running: false };
}

export function processStateOf(pidFile: string): ProcessState {
  return processState(readPidFile(pidFile));
}

/**
 * Before create: a process recorded in this resource's directory but not in the Pulumi state (an
 * interrupted `up`, a state restored from backup) is ours and in the way of its own ports: stop it.
 */
export async function stopOrphan(pidFile: string, graceMs: number): Promise<void> {
  await stopPidFile(pidFile, graceMs);
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Listener {
  address: string;
  port: number;
  /** e.g. "aws replicator ingress" */
  what: string;
}

/** Throws naming every address:port that is already in use (before anything is started). */
export async function assertPortsFree(listeners: Listener[]): Promise<void> {
  const busy: Listener[] = [];
  for (const l of listeners) if (!(await isPortFree(l.port, l.address))) busy.push(l);
  if (busy.length > 0) {
    throw new Error(
      `port ${busy.map((b) => `${b.port} on ${b.address} (${b.what})`).join(', port ')} ${busy.length > 1 ? 'are' : 'is'} already in use; ` +
        'stop what holds it or choose other ports in the stack config (replicator.*Port, etcd.*Port, local.*)',
    );
  }
}

/** Polls probe every 100 ms until it returns true; throws describe() when the process dies or time runs out. */
export async function waitUntil(
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; alive: () => boolean; what: string; logFile: string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  while (Date.now() < deadline) {
    if (!opts.alive())
      throw new Error(
        `${opts.what} exited during start-up; last log lines (${opts.logFile}):\n${tailFile(opts.logFile, 25)}`,
      );
    if (await probe()) return;
    await delay(100);
  }
  throw new Error(
    `${opts.what} was not ready after ${opts.timeoutMs} ms; last log lines (${opts.logFile}):\n${tailFile(opts.logFile, 25)}`,
  );
}

export async function httpOk(url: string, init?: RequestInit): Promise<boolean> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

export function hostUrl(address: string, port: number): string {
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** Path of a Debian-packaged binary, or an error with the apt command that installs it. */
export function requireBinary(cmd: string, aptPackage: string, envVar?: string): string {
  const explicit = envVar ? process.env[envVar] : undefined;
  for (const c of [explicit, `/usr/bin/${cmd}`, which(cmd)]) if (c && existsSync(c)) return c;
  throw new Error(
    `${cmd} is not installed (looked for ${envVar ? `$${envVar}, ` : ''}/usr/bin/${cmd} and PATH); the local target needs it: ` +
      `sudo apt-get update && sudo apt-get install -y ${aptPackage}`,
  );
}

/**
 * Starts a detached process and waits until probe says it serves; if it never does, stops it again
 * (graceMs) before rethrowing, so a failed start leaves no process behind.
 */
export async function spawnUntilReady(
  spec: DetachedSpec,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; what: string; graceMs: number },
): Promise<void> {
  spawnDetached(spec);
  try {
    await waitUntil(probe, {
      timeoutMs: opts.timeoutMs,
      alive: () => isRunning(readPidFile(spec.pidFile)),
      what: opts.what,
      logFile: spec.logFile,
    });
  } catch (err) {
    await stopPidFile(spec.pidFile, opts.graceMs);
    throw err;
  }
}

/**
 * create() of a one-process resource: stop an orphan, start from an empty directory, and remove the
 * directory again when the start fails (nothing half-made stays on disk).
 */
export async function createFresh(
  dir: string,
  pidFile: string,
  graceMs: number,
  start: () => Promise<void>,
): Promise<void> {
  await stopOrphan(pidFile, graceMs);
  rmSync(dir, { recursive: true, force: true });
  try {
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** delete() of a one-process resource: stop it (graceMs), then remove its directory. */
export async function removeProcess(dir: string, pidFile: string, graceMs: number): Promise<void> {
  await stopPidFile(pidFile, graceMs);
  rmSync(dir, { recursive: true, force: true });
}

/** Whether the process recorded in pidFile is alive. */
export function pidFileRunning(pidFile: string): boolean {
  return isRunning(readPidFile(pidFile));
}
