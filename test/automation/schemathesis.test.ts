// The served OpenAPI document fuzzed by schemathesis (scripts/run-schemathesis.sh): both roles, a fixed
// budget, no 5xx, every response as the document says. The venv is prepared by .ci/run
// (`scripts/run-schemathesis.sh --install`); without python3-venv the test skips and prints why.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../harness/pulumiEngine.ts';

/** Examples per operation in the suite; `npm run` the script with a larger number for a longer run. */
const EXAMPLES = process.env.SCHEMATHESIS_EXAMPLES ?? '5';

describe('automation service: schemathesis against the served OpenAPI document', function () {
  this.timeout(900_000);

  before(function () {
    const venv = spawnSync('python3', ['-c', 'import venv, ensurepip'], { encoding: 'utf8' });
    if (venv.status !== 0) {
      console.log('      skipped: python3 with venv/ensurepip is missing (apt-get install -y python3-venv)');
      this.skip();
    }
  });

  it(`no 5xx and every response conforms, as read and operate tokens (${EXAMPLES} examples per operation)`, async () => {
    const out: string[] = [];
    const code = await new Promise<number | null>((resolve) => {
      const p = spawn('bash', ['scripts/run-schemathesis.sh', EXAMPLES], { cwd: REPO_ROOT, stdio: 'pipe' });
      p.stdout.on('data', (d: Buffer) => out.push(String(d)));
      p.stderr.on('data', (d: Buffer) => out.push(String(d)));
      p.on('exit', resolve);
    });
    const text = out.join('');
    const summary = text
      .split('\n')
      .filter((l) => /run-schemathesis:|passed|failed|errored|Test cases/i.test(l))
      .slice(-12);
    console.log(summary.map((l) => `      ${l.trim()}`).join('\n'));
    assert.equal(code, 0, `schemathesis found problems:\n${text.slice(-6000)}`);
  });
});
