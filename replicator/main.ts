// Entry point: `node --import tsx replicator/main.ts --config replicator.yaml`.
// Loads and validates the config, starts the data plane and the operations endpoint, drains on SIGTERM.
import cluster from 'node:cluster';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import client from 'prom-client';
import { ConfigError, loadConfig } from './config/load.ts';
import { createLogger } from './logger.ts';
import { createMetricsRegistry } from './observability/metrics.ts';
import { startHttpServer } from './observability/httpServer.ts';
import { Replicator } from './service.ts';
import { startStatusReporter } from './k8s/statusReporter.ts';
import { runPrimary, WORKER_INDEX_ENV, workerConfig, type WorkerStatusMessage } from './workers.ts';

const USAGE = `usage: replicator --config <file.yaml|file.json>
Every key can be overridden from the environment: UDPMESH_<SECTION>__<KEY>, e.g.
  UDPMESH_CLUSTER=aws UDPMESH_INGRESS__PORTS=7001,7002 UDPMESH_ETCD__ENDPOINTS=http://etcd:2379`;

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (args.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let config;
  try {
    config = loadConfig(args.values.config ?? process.env.UDPMESH_CONFIG);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const isWorker = cluster.isWorker;
  if (config.workers > 1 && cluster.isPrimary) {
    await runPrimary(config, createLogger(config.log.level, { cluster: config.cluster, role: 'primary' }));
    return;
  }
  if (isWorker) {
    const index = Number(process.env[WORKER_INDEX_ENV] ?? '0');
    config = workerConfig(config, index, config.instance ?? hostname());
  }
  const log = createLogger(config.log.level, {
    cluster: config.cluster,
    ...(isWorker ? { worker: config.instance } : {}),
  });
  const replicator = new Replicator(config, log, isWorker);
  const registry = createMetricsRegistry(() => replicator.snapshot());
  // The operations endpoint comes up first so probes and metrics work while the epoch is being obtained.
  // Workers have none of their own: the primary aggregates their registries over IPC.
  let http: { close(): Promise<unknown> } = { close: async () => undefined };
  if (isWorker) {
    client.AggregatorRegistry.setRegistries([registry]);
    new client.AggregatorRegistry(); // constructing one installs the worker's IPC responder
    const report = setInterval(() => {
      const s = replicator.snapshot();
      const msg: WorkerStatusMessage = {
        type: 'udpmesh-status',
        ready: s.ready,
        draining: s.draining,
        member: s.member,
        epoch: s.epoch,
        ingressDatagrams: s.ingressDatagrams,
        sessionsActive: s.sessionsActive,
      };
      process.send?.(msg);
    }, 500);
    report.unref();
  } else {
    http = await startHttpServer({
      address: config.metrics.address,
      port: config.metrics.port,
      registry,
      snapshot: () => replicator.snapshot(),
    });
  }
  process.on('uncaughtException', (err) =>
    log.error({ err: err.stack ?? String(err) }, 'uncaught exception (kept running)'),
  );
  process.on('unhandledRejection', (err) =>
    log.error({ err: String(err) }, 'unhandled rejection (kept running)'),
  );

  let stopping = false;
  // A newer incarnation of this member registered while our lease had lapsed: stop and let the supervisor
  // start a fresh incarnation (a new epoch) rather than replicate beside it.
  replicator.onFenced = () => {
    log.error('fenced out by a newer incarnation of this member: exiting');
    void replicator.stop().finally(() => process.exit(75));
  };
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const deadline = config.drain.deadlineMs;
    const result = await replicator.drain(signal === 'SIGINT' ? Math.min(2000, deadline) : deadline);
    log.info(result, result.complete ? 'drain complete' : 'drain deadline reached');
    await replicator.stop();
    await http.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  try {
    await replicator.start();
    // In Kubernetes the pod reports what it observes into its UdpReplicator's status (one worker speaks).
    const crName = process.env.UDPREPLICATOR_NAME;
    if (crName && (!isWorker || process.env[WORKER_INDEX_ENV] === '0')) {
      const reporter = startStatusReporter({
        name: crName,
        reporter: replicator.member,
        observe: () => {
          const s = replicator.snapshot();
          return {
            peers: s.peers.map((p) => ({ name: p.id, up: p.up, lagDatagrams: p.lagDatagrams })),
            sessions: s.sessionsActive,
            etcdUp: s.etcdUp,
          };
        },
        log: (msg, fields) => log.warn(fields ?? {}, msg),
      });
      process.once('exit', () => reporter.stop());
    }
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'replicator failed to start');
    await http.close();
    process.exit(1);
  }
}

void main();
