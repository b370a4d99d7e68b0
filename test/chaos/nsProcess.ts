// A long-running process inside a network namespace (`ip netns exec <ns> <cmd>`; ip execs the command,
// so the pid is the command's): own process group, output appended to a log file, SIGKILL/restart with
// the same command line. Process bookkeeping (kill on exit, group signals) is replicator/local/children.ts.
// replicator/local/replicatorProcess.ts always spawns process.execPath directly and probes /readyz from
// this process, which cannot reach into a namespace: hence this small wrapper.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import {
  signalGroup,
  stopChild,
  track,
  waitForExit,
  type ExitInfo,
} from '../../replicator/local/children.ts';
import { REPO_ROOT } from '../../replicator/local/replicatorProcess.ts';
import { IP } from './netns.ts';

export interface NsProcessOptions {
  name: string;
  ns: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
}

export class NsProcess {
  private child: ChildProcess | undefined;
  private starts = 0;
  /** Exits nobody asked for (crashes), with their exit info. */
  readonly unexpectedExits: string[] = [];
  private expecting = false;

  constructor(readonly opts: NsProcessOptions) {}

  get name(): string {
    return this.opts.name;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get startCount(): number {
    return this.starts;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    this.starts++;
    this.expecting = false;
    const fd = openSync(this.opts.logFile, 'a');
    try {
      writeSync(
        fd,
        `--- ${this.name}: start #${this.starts} at ${new Date().toISOString()} in ${this.opts.ns} ---\n`,
      );
      this.child = spawn(IP, ['netns', 'exec', this.opts.ns, this.opts.command, ...this.opts.args], {
        cwd: REPO_ROOT,
        detached: true,
        stdio: ['ignore', fd, fd],
        env: this.opts.env ?? process.env,
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
      if (!this.expecting)
        this.unexpectedExits.push(
          `${this.name} exited unexpectedly (code ${code}, signal ${signal}) at ${new Date().toISOString()}`,
        );
    });
  }

  /** Signal the process group (default SIGKILL) and wait for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo | undefined> {
    const child = this.child;
    if (!child || !this.running) return undefined;
    this.expecting = true;
    const exited = waitForExit(child);
    signalGroup(child, signal);
    return exited;
  }

  /** SIGTERM, SIGKILL after graceMs. */
  async stop(graceMs = 3000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.expecting = true;
    await stopChild(child, 'SIGTERM', graceMs);
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.opts.logFile, 'utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '';
    }
  }
}
