// `npm run chaos`: the full chaos profile; `npm run chaos -- --short` or CHAOS_PROFILE=short: the CI profile.
// `--only <text>` runs the scenarios whose name contains text; `--keep-logs` keeps the logs directory.
// Prints the table and exits non-zero when any check failed. Needs root and iproute2 (network namespaces).
import { parseArgs } from 'node:util';
import { runChaos } from './chaos.ts';
import { netnsUnavailableReason } from './netns.ts';
import type { ProfileName } from './profiles.ts';

const USAGE = `usage: npm run chaos [-- --short | --full] [--only <text>] [--keep-logs]
  --short       the CI profile (also CHAOS_PROFILE=short)
  --full        the full profile (default)
  --only TEXT   only the scenarios whose name contains TEXT
  --keep-logs   keep the logs directory
Needs root and iproute2 (network namespaces). Prints the table; exits non-zero when a check failed.
`;
let values: { short?: boolean; full?: boolean; only?: string; 'keep-logs'?: boolean; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      short: { type: 'boolean' },
      full: { type: 'boolean' },
      only: { type: 'string' },
      'keep-logs': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const envProfile = process.env.CHAOS_PROFILE;
if (envProfile && envProfile !== 'short' && envProfile !== 'full') {
  process.stderr.write(`CHAOS_PROFILE must be short or full, not ${envProfile}\n`);
  process.exit(2);
}
const profile: ProfileName = values.short
  ? 'short'
  : values.full
    ? 'full'
    : ((envProfile as ProfileName | undefined) ?? 'full');
const reason = netnsUnavailableReason();
if (reason) {
  process.stderr.write(`chaos suite cannot run: ${reason}\n`);
  process.exit(2);
}
const started = Date.now();
process.stdout.write(`udpmesh chaos suite, ${profile} profile\n`);
const outcome = await runChaos({
  profile,
  only: values.only,
  keepLogs: values['keep-logs'],
  budgetMs: profile === 'short' ? 170_000 : 30 * 60_000,
});
process.stdout.write(`\n${outcome.table}\n\n${outcome.details}\n`);
if (outcome.error) process.stdout.write(`\nERROR: ${outcome.error}\n`);
if (outcome.logsDir) process.stdout.write(`\nlogs: ${outcome.logsDir}\n`);
process.stdout.write(`\n${outcome.ok ? 'PASS' : 'FAIL'} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
process.exit(outcome.ok ? 0 : 1);
