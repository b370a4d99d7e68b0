// Processes that must outlive whoever started them. The `local` Pulumi target starts etcd members,
// replicators, echo backends and Prometheus from a dynamic provider, which runs in a provider process
// the engine stops after each operation; so a process here runs in its own session, writes to a log
// file, and is found again later through a pid file that also records the kernel's start time of that
// pid (a recycled pid is not mistaken for ours). Local mode and the tests keep using children.ts, whose
// children die with their parent; both spawn the same commands (replicatorProcess.ts, etcdCluster.ts,
// echoBackend.ts build them).
import { spawn } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

/** Full path of cmd in the first PATH directory that holds it as a file (like `which`), else undefined. */
export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export interface DetachedSpec {
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  logFile: string;
  /** Written once the process is spawned; removed by stopDetached. */
  pidFile: string;
}

export interface PidRecord {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot), or "" where /proc does not exist. */
  startTime: string;
  command: string;
  args: string[];
  startedAt: string;
}

/** The kernel's start time of pid and whether it is a zombie; undefined if there is no such process. */
function procStat(pid: number): { startTime: string; zombie: boolean } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      // No /proc at all (macOS): fall back to signal 0.
      try {
        readFileSync('/proc/self/stat');
      } catch {
        try {
          process.kill(pid, 0);
          return { startTime: '', zombie: false };
        } catch {
          return undefined;
        }
      }
    }
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { startTime: rest[19] ?? '', zombie: rest[0] === 'Z' || rest[0] === 'X' };
}

/** Starts the process in its own session (process group), detached from us, and writes its pid file. */
export function spawnDetached(spec: DetachedSpec): PidRecord {
  mkdirSync(dirname(spec.logFile), { recursive: true });
  mkdirSync(dirname(spec.pidFile), { recursive: true });
  const fd = openSync(spec.logFile, 'a');
  let pid: number | undefined;
  try {
    writeSync(fd, `--- start at ${new Date().toISOString()}: ${spec.command} ${spec.args.join(' ')}\n`);
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    child.on('error', () => {
      /* a spawn failure shows up as no pid, below */
    });
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new Error(`could not start ${spec.command} (see ${spec.logFile})`);
  const rec: PidRecord = {
    pid,
    startTime: procStat(pid)?.startTime ?? '',
    command: spec.command,
    args: spec.args,
    startedAt: new Date().toISOString(),
  };
  writeFileSync(spec.pidFile, `${JSON.stringify(rec)}\n`);
  return rec;
}

export function readPidFile(pidFile: string): PidRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(pidFile, 'utf8')) as PidRecord;
    return typeof rec.pid === 'number' && rec.pid > 0 ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** True while the recorded process runs (same pid AND same start time, not a zombie). */
export function isRunning(rec: Pick<PidRecord, 'pid' | 'startTime'> | undefined): boolean {
  if (!rec) return false;
  const st = procStat(rec.pid);
  if (!st || st.zombie) return false;
  return rec.startTime === '' || st.startTime === '' || st.startTime === rec.startTime;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

/**
 * Sends `signal` (SIGTERM: the replicator drains) to the process group, waits up to graceMs for the
 * process to exit, then SIGKILLs the group. Returns how it ended.
 */
export async function stopDetached(
  rec: PidRecord | undefined,
  graceMs: number,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<'not running' | 'exited' | 'killed'> {
  if (!rec || !isRunning(rec)) return 'not running';
  signalGroup(rec.pid, signal);
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isRunning(rec)) return 'exited';
    await delay(50);
  }
  signalGroup(rec.pid, 'SIGKILL');
  for (let i = 0; i < 100 && isRunning(rec); i++) await delay(50);
  return 'killed';
}

/** stopDetached on the process recorded in pidFile, then removes the pid file. */
export async function stopPidFile(
  pidFile: string,
  graceMs: number,
): Promise<'not running' | 'exited' | 'killed'> {
  const how = await stopDetached(readPidFile(pidFile), graceMs);
  rmSync(pidFile, { force: true });
  return how;
}

/** Last lines of a log file ('' if there is none). */
export function tailFile(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '';
  }
}
