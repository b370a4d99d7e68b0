// Entry point: `node --import tsx replicator/main.ts --config replicator.yaml`.
// Loads and validates the config, starts the data plane and the operations endpoint, drains on SIGTERM.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load.ts';
import { createLogger } from './logger.ts';
import { createMetricsRegistry } from './observability/metrics.ts';
import { startHttpServer } from './observability/httpServer.ts';
import { Replicator } from './service.ts';

const USAGE = `usage: replicator --config <file.yaml|file.json>
Every key can be overridden from the environment: UDPMESH_<SECTION>__<KEY>, e.g.
  UDPMESH_CLUSTER=aws UDPMESH_INGRESS__PORTS=7001,7002 UDPMESH_ETCD__ENDPOINTS=http://etcd:2379`;

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } });
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
  const log = createLogger(config.log.level, { cluster: config.cluster });
  const replicator = new Replicator(config, log);
  const registry = createMetricsRegistry(() => replicator.snapshot());
  // The operations endpoint comes up first so probes and metrics work while the epoch is being obtained.
  const http = await startHttpServer({
    address: config.metrics.address,
    port: config.metrics.port,
    registry,
    snapshot: () => replicator.snapshot(),
  });
  process.on('uncaughtException', (err) => log.error({ err: err.stack ?? String(err) }, 'uncaught exception (kept running)'));
  process.on('unhandledRejection', (err) => log.error({ err: String(err) }, 'unhandled rejection (kept running)'));

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const result = await replicator.drain(signal === 'SIGINT' ? Math.min(2000, config.drain.deadlineMs) : config.drain.deadlineMs);
    log.info(result, result.complete ? 'drain complete' : 'drain deadline reached');
    await replicator.stop();
    await http.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  try {
    await replicator.start();
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'replicator failed to start');
    await http.close();
    process.exit(1);
  }
}

void main();
