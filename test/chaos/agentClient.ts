// The runner's side of an agent (agent.ts) in a namespace: spawn, request/answer over stdio, stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { stopChild, track } from '../../replicator/local/children.ts';
import { REPO_ROOT } from '../../replicator/local/replicatorProcess.ts';
import { IP } from './netns.ts';

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  op: string;
}

export class Agent {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private exited = false;

  constructor(
    readonly name: string,
    readonly ns: string,
    readonly logFile: string,
  ) {}

  async start(): Promise<this> {
    const fd = openSync(this.logFile, 'a');
    try {
      this.child = spawn(
        IP,
        ['netns', 'exec', this.ns, process.execPath, '--import', 'tsx', AGENT, this.name],
        {
          cwd: REPO_ROOT,
          detached: true,
          stdio: ['pipe', 'pipe', fd],
        },
      );
    } finally {
      closeSync(fd);
    }
    track(this.child);
    const child = this.child;
    child.on('error', () => undefined);
    child.stdin!.on('error', () => undefined);
    child.once('exit', (code, signal) => {
      this.exited = true;
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(
          new Error(
            `agent ${this.name} exited (code ${code}, signal ${signal}) during ${p.op}; log:\n${this.logTail(20)}`,
          ),
        );
        this.pending.delete(id);
      }
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: { id: number; ok: boolean; result?: unknown; error?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`agent ${this.name} ${p.op}: ${msg.error}`));
    });
    await this.call('ping', {}, 30_000);
    return this;
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    if (!this.child || this.exited) return Promise.reject(new Error(`agent ${this.name} is not running`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent ${this.name}: ${op} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, op });
      this.child!.stdin!.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  }

  logTail(lines = 20): string {
    try {
      return readFileSync(this.logFile, 'utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || this.exited) return;
    child.stdin?.end();
    await stopChild(child, 'SIGTERM', 2000);
  }
}
