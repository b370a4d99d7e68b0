// `npm run chaos`: the full chaos profile; `npm run chaos -- --short` or CHAOS_PROFILE=short: the CI profile.
// `--only <text>` runs the scenarios whose name contains text; `--keep-logs` keeps the logs directory.
// Prints the table and exits non-zero when any check failed; the table and a timeline picture per
// scenario (SVG: delivered per second per cloud, faults shaded) go to chaos-results/<time>/. Needs root and iproute2 (network namespaces).
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { outcomeText, runChaos } from './chaos.ts';
import { netnsUnavailableReason } from './netns.ts';
import type { ProfileName } from './profiles.ts';

const USAGE = `usage: npm run chaos [-- --short | --full | --issue10] [--only <text>] [--keep-logs]
  --short       the CI profile (also CHAOS_PROFILE=short)
  --full        the full profile (default)
  --issue10     only issue 10's scenarios (also in full): partition after loss, replica failover, replay
  --only TEXT   only the scenarios whose name contains TEXT
  --keep-logs   keep the logs directory
Needs root and iproute2 (network namespaces). Prints the table; exits non-zero when a check failed.
Writes the table and one timeline picture per scenario (SVG) to chaos-results/<time>/.
`;
let values: {
  short?: boolean;
  full?: boolean;
  issue10?: boolean;
  only?: string;
  'keep-logs'?: boolean;
  help?: boolean;
};
try {
  ({ values } = parseArgs({
    options: {
      short: { type: 'boolean' },
      full: { type: 'boolean' },
      issue10: { type: 'boolean' },
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
if (envProfile && envProfile !== 'short' && envProfile !== 'full' && envProfile !== 'issue10') {
  process.stderr.write(`CHAOS_PROFILE must be short, full or issue10, not ${envProfile}\n`);
  process.exit(2);
}
const profile: ProfileName = values.short
  ? 'short'
  : values.full
    ? 'full'
    : values.issue10
      ? 'issue10'
      : ((envProfile as ProfileName | undefined) ?? 'full');
const reason = netnsUnavailableReason();
if (reason) {
  process.stderr.write(`chaos suite cannot run: ${reason}\n`);
  process.exit(2);
}
const started = Date.now();
const resultsDir = join('chaos-results', new Date(started).toISOString().replace(/[:.]/g, '-'));
process.stdout.write(`udpmesh chaos suite, ${profile} profile; table and timelines in ${resultsDir}\n`);
const outcome = await runChaos({
  profile,
  only: values.only,
  keepLogs: values['keep-logs'],
  budgetMs: profile === 'short' ? 170_000 : 30 * 60_000,
  resultsDir,
});
process.stdout.write(`\n${outcomeText(outcome)}\n`);
if (outcome.error) process.stdout.write(`\nERROR: ${outcome.error}\n`);
if (outcome.logsDir) process.stdout.write(`\nlogs: ${outcome.logsDir}\n`);
process.stdout.write(`\n${outcome.ok ? 'PASS' : 'FAIL'} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
process.exit(outcome.ok ? 0 : 1);
