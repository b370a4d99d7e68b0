// Every command-line entry point answers --help with its usage and exit 0, without starting anything or
// printing a stack trace (issue 12: `npm run render -- --help` crashed; chaos threw on the unknown option,
// the automation server started instead of answering, and simulate ran its seeds).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../harness/pulumiEngine.ts';

const ENTRY_POINTS = [
  'replicator/main.ts',
  'replicator/local/main.ts',
  'infra/render.ts',
  'automation/cli.ts',
  'automation/server.ts',
  'test/simulation/run.ts',
  'test/bench/run.ts',
  'test/chaos/run.ts',
];

describe('every CLI answers --help', () => {
  for (const entry of ENTRY_POINTS) {
    it(`${entry} --help`, () => {
      const r = spawnSync(
        path.join(REPO_ROOT, 'node_modules', '.bin', 'node'),
        ['--import', 'tsx', entry, '--help'],
        { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 },
      );
      assert.equal(r.status, 0, `${entry} --help exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /usage/i);
      assert.doesNotMatch(`${r.stdout}${r.stderr}`, /\n\s+at .+:\d+:\d+/, 'no stack trace');
    });
  }
});
