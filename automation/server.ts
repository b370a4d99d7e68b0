// Entry point of the automation service: `npm run automation`. Settings: see automation/config.ts
// and docs/automation.md.
import pino from 'pino';
import { loadConfig } from './config.ts';
import { PulumiEngine } from './pulumiEngine.ts';
import { startService } from './service.ts';

const config = loadConfig();
const logger = pino({
  level: config.logLevel,
  // Belt and braces: credentials are never logged even if a header ends up in a log call.
  redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token'], censor: '[redacted]' },
});
const engine = new PulumiEngine({
  stateDir: config.stateDir,
  projectDir: config.projectDir,
  ...(config.backendUrl ? { backendUrl: config.backendUrl } : {}),
  ...(config.pulumiRoot ? { pulumiRoot: config.pulumiRoot } : {}),
  ...(config.secretsProvider ? { secretsProvider: config.secretsProvider } : {}),
});
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
  logger,
});
logger.info(
  { url: service.url, db: config.dbFile, stateDir: config.stateDir },
  'udpmesh automation service listening',
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: signalling running jobs');
    service.close().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err: err.message }, 'error while stopping');
        process.exit(1);
      },
    );
  });
}
