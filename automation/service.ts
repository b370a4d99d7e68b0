// Wires the service together: database (recovering interrupted jobs), job runner, HTTP app; and
// the graceful stop (drain: 503 for new operations and /healthz, running jobs signalled).
import type { AddressInfo } from 'node:net';
import type { DatabaseSync } from 'node:sqlite';
import type { Logger } from 'pino';
import { TokenStore } from './auth/tokens.ts';
import type { StackEngine } from './engine.ts';
import type { StackConfig } from './spec.ts';
import { buildApp, type App } from './http/app.ts';
import { openDatabase, specKeyFor } from './jobs/db.ts';
import { JobRunner } from './jobs/jobRunner.ts';
import { JobStore, type Job } from './jobs/jobStore.ts';
import { Webhooks } from './jobs/webhooks.ts';
import { validateSpec } from './spec.ts';

export interface ServiceOptions {
  engine: StackEngine;
  /** SQLite file (or ':memory:'). */
  dbFile: string;
  host?: string;
  port?: number;
  maxConcurrent?: number;
  bodyLimit?: number;
  heartbeatMs?: number;
  logger?: Logger;
  /** See JobRunnerOptions.secretsOf. */
  secretsOf?: (spec: StackConfig) => string[];
  /** Jobs waiting at most (default 100); more get 429. */
  maxQueued?: number;
  /** See AppOptions. */
  maxStreams?: number;
  authRecheckMs?: number;
  readConcurrency?: number;
  readCacheMs?: number;
  perTokenPerMinute?: number;
  /** POST each finished job to these URLs, signed with webhookSecret. */
  webhooks?: { urls: string[]; secret: string; backoffMs?: number };
  /** Drift check of every deployed stack with a stored spec, this often (off when absent). */
  driftIntervalMs?: number;
}

export interface Service {
  app: App;
  url: string;
  db: DatabaseSync;
  store: JobStore;
  tokens: TokenStore;
  runner: JobRunner;
  /** Jobs that the previous process left unfinished and were marked interrupted at start. */
  recovered: string[];
  /** Graceful stop: running jobs are signalled and end interrupted; then the server and DB close. */
  close(opts?: { jobTimeoutMs?: number }): Promise<void>;
}

export async function startService(opts: ServiceOptions): Promise<Service> {
  const db = openDatabase(opts.dbFile);
  const store = new JobStore(db, { specKey: specKeyFor(opts.dbFile) });
  const recovered = store.recoverInterrupted();
  if (recovered.length > 0)
    opts.logger?.warn({ jobs: recovered }, 'jobs left running by the previous process marked interrupted');
  const tokens = new TokenStore(db);
  const runner = new JobRunner(store, opts.engine, {
    maxConcurrent: opts.maxConcurrent ?? 4,
    maxQueued: opts.maxQueued ?? 100,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.secretsOf ? { secretsOf: opts.secretsOf } : {}),
  });
  const app = await buildApp({
    engine: opts.engine,
    store,
    runner,
    tokens,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    ...(opts.maxStreams ? { maxStreams: opts.maxStreams } : {}),
    ...(opts.authRecheckMs ? { authRecheckMs: opts.authRecheckMs } : {}),
    ...(opts.readConcurrency ? { readConcurrency: opts.readConcurrency } : {}),
    ...(opts.readCacheMs !== undefined ? { readCacheMs: opts.readCacheMs } : {}),
    ...(opts.perTokenPerMinute ? { perTokenPerMinute: opts.perTokenPerMinute } : {}),
    dbWritable: () => {
      try {
        db.exec('BEGIN IMMEDIATE; ROLLBACK;');
        return true;
      } catch {
        return false;
      }
    },
  });
  const webhooks = opts.webhooks?.urls.length
    ? new Webhooks({ ...opts.webhooks, ...(opts.logger ? { logger: opts.logger } : {}) })
    : undefined;
  if (webhooks) runner.finished.on('finished', (job: Job | undefined) => job && webhooks.jobFinished(job));
  const drift = opts.driftIntervalMs
    ? setInterval(() => scheduleDriftChecks(store, runner, opts.logger), opts.driftIntervalMs)
    : undefined;
  drift?.unref();
  await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closed = false;
  return {
    app,
    url: `http://${host}:${addr.port}`,
    db,
    store,
    tokens,
    runner,
    recovered,
    async close({ jobTimeoutMs = 30_000 } = {}) {
      if (closed) return;
      closed = true;
      clearInterval(drift);
      await runner.shutdown(jobTimeoutMs);
      await app.close();
      await webhooks?.idle();
      db.close();
    },
  };
}

/** One round of scheduled drift checks: every deployed stack with a stored spec that is free. */
export function scheduleDriftChecks(store: JobStore, runner: JobRunner, logger?: Logger): string[] {
  const started: string[] = [];
  for (const stack of store.specStacks()) {
    if (!store.hasDeployed(stack)) continue;
    try {
      const spec = validateSpec(store.getSpec(stack)!.spec);
      started.push(
        runner.submit({
          stack,
          operation: 'preview',
          actor: 'system:drift',
          spec,
          drift: true,
          message: 'drift check',
        }).id,
      );
    } catch (err) {
      logger?.info({ stack, err: (err as Error).message }, 'drift check skipped');
    }
  }
  return started;
}
