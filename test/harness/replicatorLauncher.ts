// Replicator processes for tests: writes each config into a temp dir, spawns the real replicator
// (replicator/main.ts) in its own process group, waits for /readyz, kills with a signal, restarts
// with the same config, and keeps the logs to show when a test fails. stopAll() in afterEach.
// TEST_IO=dgram (or batched) sets `io` in every config that does not choose it: CI runs the suite both ways.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReplicatorConfigInput } from '../../replicator/config/schema.ts';
import { cleanupOnSignals, trackDir, untrackDir } from '../../replicator/local/children.ts';
import { ReplicatorProcess } from '../../replicator/local/replicatorProcess.ts';

export { ReplicatorProcess } from '../../replicator/local/replicatorProcess.ts';

cleanupOnSignals();

export class ReplicatorLauncher {
  readonly dir: string;
  readonly processes: ReplicatorProcess[] = [];

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'udpmesh-test-'));
    trackDir(this.dir);
  }

  /** Create (not start) a replicator with this config. */
  create(name: string, config: ReplicatorConfigInput, env?: Record<string, string>): ReplicatorProcess {
    // TEST_IO=dgram|batched runs the whole suite on one socket implementation (default: the config's, auto).
    const io = process.env.TEST_IO as ReplicatorConfigInput['io'];
    if (io && config.io === undefined) config = { ...config, io };
    const p = new ReplicatorProcess({ name, config, dir: this.dir, env });
    this.processes.push(p);
    return p;
  }

  /** Start and wait until /readyz says 200. */
  async launch(name: string, config: ReplicatorConfigInput, timeoutMs = 30_000): Promise<ReplicatorProcess> {
    const p = this.create(name, config);
    p.start();
    await p.waitReady(timeoutMs);
    return p;
  }

  /** The last lines of every replicator's log, for a failure message. */
  logs(lines = 40): string {
    return this.processes.map((p) => `==== ${p.name} (${p.logFile}) ====\n${p.logTail(lines)}`).join('\n');
  }

  removeDir(): void {
    rmSync(this.dir, { recursive: true, force: true });
    untrackDir(this.dir);
  }

  /** Keep the dir (configs and logs) after this process exits. */
  keepDir(): void {
    untrackDir(this.dir);
  }

  /** Stop every replicator (SIGTERM, SIGKILL after graceMs) and remove the temp dir unless keepDir. */
  async stopAll(graceMs = 8000, keepDir = false): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop(graceMs)));
    if (keepDir) return;
    this.removeDir();
  }
}
