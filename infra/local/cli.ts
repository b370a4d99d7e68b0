// `npm run local:stack -- <pulumi command and flags>`: runs the Pulumi CLI for the local target from the
// repository root with the engine found by engine.ts on PATH, e.g.
//   npm run local:stack -- stack init local
//   npm run local:stack -- up -s local
// Everything after `--` goes to pulumi unchanged; its exit code is ours.
import { spawnSync } from 'node:child_process';
import { EngineNotFoundError, engineEnv, findPulumi, REPO_ROOT } from './engine.ts';

function main(): number {
  let pulumi: string;
  try {
    pulumi = findPulumi();
  } catch (err) {
    if (err instanceof EngineNotFoundError) {
      process.stderr.write(`local:stack: ${err.message}\n`);
      return 127;
    }
    throw err;
  }
  const args = process.argv.slice(2);
  if (args.length === 0) {
    process.stderr.write(
      'usage: npm run local:stack -- <pulumi command>, e.g. npm run local:stack -- up -s local\n',
    );
    return 2;
  }
  const r = spawnSync(pulumi, args, { cwd: REPO_ROOT, env: engineEnv(pulumi), stdio: 'inherit' });
  if (r.error) {
    process.stderr.write(`local:stack: could not run ${pulumi}: ${r.error.message}\n`);
    return 1;
  }
  return r.status ?? 1;
}

process.exit(main());
