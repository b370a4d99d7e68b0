// One replicator as a child process: writes its config file, spawns
// `node --import tsx replicator/main.ts --config <file>` in its own process group with stdout/stderr
// appended to a log file, waits for /readyz, kills with any signal and restarts with the same config.
// Shared by local mode and the test harness.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReplicatorConfigInput } from '../config/schema.ts';
import { signalGroup, stopChild, track, waitForExit, type ExitInfo } from './children.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const REPLICATOR_MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));

export interface ReplicatorProcessOptions {
  /** Short name used for files and messages (e.g. "aws"). */
  name: string;
  config: ReplicatorConfigInput;
  /** Directory for the config file and the log. */
  dir: string;
  /** Extra environment (e.g. UDPMESH_* overrides). */
  env?: Record<string, string>;
  mainPath?: string;
  /** Working directory (default the repository): the bench runs an older tree from its own directory. */
  cwd?: string;
}

/**
 * Our environment minus UDPMESH_* variables: the replicator reads those as config overrides
 * (UDPMESH_<SECTION>__<KEY>), and one meant for something else must not change the child's config.
 * Pass overrides explicitly through the env option.
 */
export function inheritedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UDPMESH_')) env[k] = v;
  return env;
}

/**
 * The command that runs one replicator with a config file: the one launch recipe for local mode, the
 * test harness and the `local` Pulumi target (infra/local), which runs it detached.
 */
export function replicatorCommand(
  configFile: string,
  mainPath: string = REPLICATOR_MAIN,
  cwd: string = REPO_ROOT,
): { command: string; args: string[]; cwd: string } {
  return {
    command: process.execPath,
    args: ['--import', 'tsx', mainPath, '--config', configFile],
    cwd,
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class ReplicatorProcess {
  readonly name: string;
  readonly config: ReplicatorConfigInput;
  readonly configFile: string;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private starts = 0;
  private readonly env: Record<string, string>;
  private readonly mainPath: string;
  private readonly cwd: string | undefined;
  private readonly exitListeners: ((info: ExitInfo, expected: boolean) => void)[] = [];
  private expectingExit = false;
  /** How and when the last run ended (undefined while running or never started). */
  lastExit: (ExitInfo & { at: Date; expected: boolean }) | undefined;

  constructor(opts: ReplicatorProcessOptions) {
    this.name = opts.name;
    this.config = opts.config;
    this.configFile = join(opts.dir, `${opts.name}.config.json`);
    this.logFile = join(opts.dir, `${opts.name}.log`);
    this.env = opts.env ?? {};
    this.mainPath = opts.mainPath ?? REPLICATOR_MAIN;
    this.cwd = opts.cwd;
    writeFileSync(this.configFile, `${JSON.stringify(this.config, null, 2)}\n`);
  }

  /** host:port of the HTTP endpoint (metrics/healthz/readyz). */
  get httpBase(): string {
    const m = this.config.metrics ?? {};
    let host = m.address ?? '0.0.0.0';
    if (host === '0.0.0.0') host = '127.0.0.1';
    if (host === '::') host = '::1';
    if (host.includes(':')) host = `[${host}]`;
    return `http://${host}:${m.port ?? 9100}`;
  }

  get metricsUrl(): string {
    return `${this.httpBase}/metrics`;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Number of times the process was started. */
  get startCount(): number {
    return this.starts;
  }

  /** Called on every exit with expected=false unless kill()/stop() caused it. */
  onExit(listener: (info: ExitInfo, expected: boolean) => void): void {
    this.exitListeners.push(listener);
  }

  start(): void {
    if (this.running) throw new Error(`replicator ${this.name} is already running (pid ${this.pid})`);
    if (!existsSync(this.mainPath))
      throw new Error(`replicator entry point ${this.mainPath} does not exist (yet)`);
    this.starts++;
    this.expectingExit = false;
    this.lastExit = undefined;
    const fd = openSync(this.logFile, 'a');
    try {
      writeSync(fd, `--- ${this.name}: start #${this.starts} at ${new Date().toISOString()} ---\n`);
      const cmd = replicatorCommand(this.configFile, this.mainPath, this.cwd);
      this.child = spawn(cmd.command, cmd.args, {
        cwd: cmd.cwd,
        detached: true,
        stdio: ['ignore', fd, fd],
        env: { ...inheritedEnv(), ...this.env },
      });
    } finally {
      closeSync(fd);
    }
    track(this.child);
    const child = this.child;
    child.on('error', () => {
      /* surfaced through exit */
    });
    child.once('exit', (code, signal) => {
      const expected = this.expectingExit;
      this.lastExit = { code, signal, at: new Date(), expected };
      for (const l of this.exitListeners) l({ code, signal }, expected);
    });
  }

  /** HTTP status of GET path, or undefined when it does not answer. */
  async httpStatus(path: string): Promise<number | undefined> {
    try {
      const res = await fetch(`${this.httpBase}${path}`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return undefined;
    }
  }

  /** Wait until /readyz answers 200; throws with the log tail if the process exits or time runs out. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: number | undefined;
    while (Date.now() < deadline) {
      if (!this.running) {
        const c = this.child;
        throw new Error(
          `replicator ${this.name} exited before it was ready (code ${c?.exitCode}, signal ${c?.signalCode}); log:\n${this.logTail(40)}`,
        );
      }
      last = await this.httpStatus('/readyz');
      if (last === 200) return;
      await delay(100);
    }
    throw new Error(
      `replicator ${this.name} not ready after ${timeoutMs} ms (last /readyz: ${last ?? 'no answer'}); log:\n${this.logTail(40)}`,
    );
  }

  /** Send a signal to the process group and wait for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo> {
    const child = this.child;
    if (!child) throw new Error(`replicator ${this.name} was never started`);
    this.expectingExit = true;
    const exited = waitForExit(child);
    signalGroup(child, signal);
    return exited;
  }

  /** SIGTERM (graceful drain), then SIGKILL after graceMs. No-op when not running. */
  async stop(graceMs = 15_000): Promise<ExitInfo | undefined> {
    const child = this.child;
    if (!child || !this.running) return undefined;
    this.expectingExit = true;
    return stopChild(child, 'SIGTERM', graceMs);
  }

  /** Start again with the same config file and wait until ready. */
  async restart(timeoutMs = 30_000): Promise<void> {
    if (this.running) throw new Error(`replicator ${this.name} is still running`);
    this.start();
    await this.waitReady(timeoutMs);
  }

  logText(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(lines = 30): string {
    return this.logText()
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  }
}
