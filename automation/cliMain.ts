// The `udpmesh` CLI process (started through cli.ts). Commands: cli/main.ts.
import { loadConfig } from './config.ts';
import { runCli } from './cli/main.ts';
import { engineFromConfig } from './engineFactory.ts';

const config = loadConfig();
const controller = new AbortController();
let interrupts = 0;
process.on('SIGINT', () => {
  interrupts++;
  if (interrupts === 1) {
    process.stderr.write('\ncancelling (Pulumi stops gracefully; press Ctrl-C again to exit now)\n');
    controller.abort();
  } else process.exit(130);
});

const code = await runCli(process.argv.slice(2), {
  engine: () => engineFromConfig(config),
  dbFile: config.dbFile,
  io: { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) },
  signal: controller.signal,
});
process.exitCode = code;
