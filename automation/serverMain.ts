// The automation service process (started through server.ts). Settings: automation/config.ts and
// docs/automation.md. SIGTERM/SIGINT stop it gracefully (drain, signal running jobs, close).
import pino from 'pino';
import { loadConfig } from './config.ts';
import { engineFromConfig } from './engineFactory.ts';
import { startService } from './service.ts';

const config = loadConfig();
const logger = pino({
  level: config.logLevel,
  // Belt and braces: credentials are never logged even if a header ends up in a log call.
  redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token'], censor: '[redacted]' },
});
const engine = engineFromConfig(config);
// Fail early and clearly if the CLI is missing; the service still starts (reads of the job store
// work), and every engine call answers 503 with the same instructions until the CLI is installed.
engine.pulumiCommand().then(
  (cli) => logger.info({ pulumi: cli.version?.toString() }, 'pulumi CLI found'),
  (err: Error) => logger.error(err.message),
);
const service = await startService({
  engine,
  dbFile: config.dbFile,
  host: config.host,
  port: config.port,
  maxConcurrent: config.maxConcurrent,
  bodyLimit: config.bodyLimit,
  maxQueued: config.maxQueued,
  ...(config.perTokenPerMinute ? { perTokenPerMinute: config.perTokenPerMinute } : {}),
  ...(config.webhooks ? { webhooks: config.webhooks } : {}),
  ...(config.driftIntervalMs ? { driftIntervalMs: config.driftIntervalMs } : {}),
  logger,
});
logger.info(
  { url: service.url, db: config.dbFile, stateDir: config.stateDir },
  'udpmesh automation service listening',
);

let stopping = false;
function stop(reason: string): void {
  if (stopping) return;
  stopping = true;
  logger.info({ reason }, 'stopping: draining, signalling running jobs');
  service.close().then(
    () => {
      logger.info('stopped');
      process.exit(0);
    },
    (err: Error) => {
      logger.error({ err: err.message }, 'error while stopping');
      process.exit(1);
    },
  );
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));

// Started by `npm run automation`: npm does not pass SIGTERM on and dies, which would leave this
// process holding the port. When the launcher is gone (we were re-parented), stop as if signalled.
// Production and containers run `node dist/automation/server.js` directly and need none of this.
if (process.env.npm_lifecycle_event) {
  const launcher = process.ppid;
  setInterval(() => {
    if (process.ppid !== launcher) stop('launcher exited');
  }, 250).unref();
}
