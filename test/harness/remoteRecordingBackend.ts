// A recording backend in its own process (recordingBackendChild.ts), driven over IPC: counts while the
// test runs, marks, and a full RecordingLog snapshot for the checks. A separate process keeps the
// backend's socket drained even while the test process is busy sending load or proxying.
import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cleanupOnSignals, track, stopChild } from '../../replicator/local/children.ts';
import { RecordingLog, type RecordingLogData } from './recordingLog.ts';
import { dropsOnPorts } from './udpDrops.ts';

cleanupOnSignals();

export interface BackendStats {
  count: number;
  distinct: number;
  invalid: number;
}

const CHILD = fileURLToPath(new URL('./recordingBackendChild.ts', import.meta.url));

export class RemoteRecordingBackend {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  port = 0;
  /** Scheduling priority the child got (-10 when raising it was allowed, else 0). */
  priority = 0;
  /** Last stats seen (updated by stats()). */
  last: BackendStats = { count: 0, distinct: 0, invalid: 0 };

  constructor(readonly name: string) {}

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
      env: { ...process.env, RECORDING_BACKEND_NAME: this.name },
    });
    this.child = child;
    track(child);
    // The backend is the measuring instrument: on a busy machine it must drain its socket before the
    // kernel buffer overflows, so give it a higher scheduling priority where we may (root).
    try {
      if (child.pid !== undefined) setPriority(child.pid, -10);
      this.priority = -10;
    } catch {
      this.priority = 0;
    }
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values())
        p.reject(new Error(`recording backend ${this.name} exited (${signal ?? code})`));
      this.pending.clear();
    });
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`recording backend ${this.name} did not start in 20 s`)),
        20_000,
      );
      child.once('exit', () => {
        clearTimeout(timer);
        reject(new Error(`recording backend ${this.name} exited during start-up`));
      });
      child.on('message', (m: { op?: string; port?: number; id?: number; result?: unknown }) => {
        if (m.op === 'ready') {
          clearTimeout(timer);
          resolve(m.port!);
        } else if (m.id !== undefined) {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          p?.resolve(m.result);
        }
      });
    });
    return this;
  }

  private request<T>(msg: Record<string, unknown>): Promise<T> {
    const child = this.child;
    if (!child || !child.connected)
      return Promise.reject(new Error(`recording backend ${this.name} is not running`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ ...msg, id });
    });
  }

  async stats(): Promise<BackendStats> {
    this.last = await this.request<BackendStats>({ op: 'stats' });
    return this.last;
  }

  /** Kernel drops at the backend's socket (receive buffer overflow), read here in the parent. */
  kernelDrops(): number {
    return dropsOnPorts([this.port])[this.port] ?? 0;
  }

  /** Arrival index at this moment, remembered under label in the log. */
  mark(label: string): Promise<number> {
    return this.request<number>({ op: 'mark', label });
  }

  async snapshot(): Promise<RecordingLog> {
    return RecordingLog.fromJSON(await this.request<RecordingLogData>({ op: 'snapshot' }));
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.connected) {
      await Promise.race([
        this.request({ op: 'close' }).catch(() => undefined),
        new Promise((r) => setTimeout(r, 2000)),
      ]);
    }
    this.child = undefined;
    await stopChild(child, 'SIGTERM', 2000);
  }
}

export async function startRemoteRecordingBackend(name: string): Promise<RemoteRecordingBackend> {
  return new RemoteRecordingBackend(name).start();
}
