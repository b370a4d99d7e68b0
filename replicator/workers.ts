// Multi-core: N worker processes (node:cluster), each a full replicator member of its cluster with its own
// epoch, replication port and sessions. They share the ingress ports with SO_REUSEPORT, so the kernel
// hashes every client 4-tuple to one worker, which owns that session; peers pick one worker per session
// by rendezvous hashing, exactly as they pick one replica among several pods. The primary serves the
// operations endpoint with the workers' metrics aggregated and restarts a worker that dies (it rejoins
// under the same name, so peers resend what it missed).
import cluster, { type Worker } from 'node:cluster';
import Fastify from 'fastify';
import client from 'prom-client';
import type { Logger } from 'pino';
import type { ReplicatorConfig } from './config/schema.ts';

export const WORKER_INDEX_ENV = 'UDPMESH_WORKER_INDEX';

/** The identity of worker i: instance suffix and its own replication port. */
export function workerConfig(cfg: ReplicatorConfig, index: number, hostInstance: string): ReplicatorConfig {
  const r = cfg.replication;
  return {
    ...cfg,
    instance: `${hostInstance}-w${index}`.slice(0, 63),
    replication: {
      ...r,
      port: r.port === 0 ? 0 : r.port + index,
      advertisePort: r.advertisePort === undefined ? undefined : r.advertisePort + index,
    },
  };
}

export interface WorkerStatusMessage {
  type: 'udpmesh-status';
  ready: boolean;
  draining: boolean;
  /** Who the worker is and what it carries, for the primary's /status (its metrics are summed). */
  member?: string;
  epoch?: number;
  ingressDatagrams?: number;
  sessionsActive?: number;
}

export async function runPrimary(cfg: ReplicatorConfig, log: Logger): Promise<void> {
  const aggregator = new client.AggregatorRegistry();
  const workers = new Map<number, { worker: Worker; status?: WorkerStatusMessage; restarts: number }>();
  let stopping = false;

  const fork = (index: number, restarts: number): void => {
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(index) });
    workers.set(index, { worker, restarts });
    worker.on('message', (msg: WorkerStatusMessage) => {
      if (msg && msg.type === 'udpmesh-status') {
        const w = workers.get(index);
        if (w && w.worker === worker) w.status = msg;
      }
    });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      const delay = Math.min(5000, 200 * 2 ** Math.min(restarts, 5));
      log.error({ worker: index, code, signal, restartInMs: delay }, 'worker died; restarting it');
      setTimeout(() => !stopping && fork(index, restarts + 1), delay);
    });
  };
  for (let i = 0; i < cfg.workers; i++) fork(i, 0);

  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', aggregator.contentType);
    return aggregator.clusterMetrics();
  });
  app.get('/healthz', async () => ({ status: 'ok', workers: workers.size }));
  const allReady = () => [...workers.values()].every((w) => w.status?.ready && !w.worker.isDead());
  app.get('/readyz', async (_req, reply) =>
    reply.code(allReady() ? 200 : 503).send({ ready: allReady(), workers: workers.size }),
  );
  app.get('/status', async () => ({
    workers: [...workers.entries()].map(([i, w]) => ({
      index: i,
      pid: w.worker.process.pid,
      restarts: w.restarts,
      ...w.status,
    })),
  }));
  await app.listen({ host: cfg.metrics.address, port: cfg.metrics.port });
  log.info(
    { workers: cfg.workers, metrics: `${cfg.metrics.address}:${cfg.metrics.port}` },
    'primary started',
  );

  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'primary: draining workers');
    for (const w of workers.values()) w.worker.process.kill(signal);
    const deadline = setTimeout(() => {
      for (const w of workers.values()) w.worker.process.kill('SIGKILL');
    }, cfg.drain.deadlineMs + 2000);
    const wait = setInterval(() => {
      if ([...workers.values()].every((w) => w.worker.isDead())) {
        clearInterval(wait);
        clearTimeout(deadline);
        void app.close().then(() => process.exit(0));
      }
    }, 50);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
