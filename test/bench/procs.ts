// Child processes of the bench: each in its own process group (so stopping it takes its children too),
// tracked so that they are all killed if the bench exits by any path, with an optional IPC channel
// speaking wire.ts's request/response protocol.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stopChild, track } from '../../replicator/local/children.ts';
import type { Response } from './wire.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const benchFile = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));

export class NodeChild {
  readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly ready: Promise<void>;

  constructor(
    readonly name: string,
    script: string,
    args: string[],
    opts: { ipc: boolean; logFile: string },
  ) {
    const fd = openSync(opts.logFile, 'a');
    try {
      this.child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
        cwd: REPO_ROOT,
        detached: true,
        stdio: opts.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    track(this.child);
    this.child.on('error', () => {
      /* surfaced through exit */
    });
    let resolveReady!: () => void;
    let rejectReady!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.ready.catch(() => {});
    if (!opts.ipc) resolveReady();
    this.child.on('message', (raw) => {
      const m = raw as Response;
      if (m.id === 0) {
        resolveReady();
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${this.name}: ${m.error}`));
    });
    this.child.once('exit', (code, signal) => {
      const err = new Error(`${this.name} exited (code ${code}, signal ${signal}); see ${opts.logFile}`);
      rejectReady(err);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  waitReady(timeoutMs = 30_000): Promise<void> {
    return withTimeout(this.ready, timeoutMs, `${this.name} did not come up within ${timeoutMs} ms`);
  }

  request<T>(body: unknown, timeoutMs = 120_000): Promise<T> {
    const id = this.nextId++;
    const p = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, body });
    });
    return withTimeout(p, timeoutMs, `${this.name}: no answer within ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGTERM', 3000);
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait until a UDP/HTTP thing answers: poll fn until it returns true. */
export async function until(
  fn: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
