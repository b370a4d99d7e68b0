// The real entry points as processes: `automation/cli.ts` creates a token in the database that
// `automation/server.ts` then accepts; the service answers, runs a job (here failing typed, as no
// Pulumi CLI is reachable: UDPMESH_PULUMI_ROOT points nowhere), stops on SIGTERM with exit 0, and
// a restarted service still has the job.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../../automation/config.ts';
import { api, readEvents, tempDir } from './support/harness.ts';

function env(stateDir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    UDPMESH_STATE_DIR: stateDir,
    UDPMESH_PORT: '0',
    UDPMESH_PULUMI_ROOT: path.join(stateDir, 'no-pulumi-here'),
    LOG_LEVEL: 'info',
  };
}

/** Starts the service and resolves with its URL once it logs that it is listening. */
function startServer(
  stateDir: string,
): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'automation/server.ts'], {
    cwd: REPO_ROOT,
    env: env(stateDir),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { msg?: string; url?: string };
        if (rec.msg === 'udpmesh automation service listening' && rec.url)
          resolve({ child, url: rec.url, exited });
      } catch {
        /* not a log line */
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited early (${code})`)));
  });
}

describe('automation entry points (processes)', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  it('cli token create -> server accepts it; a job runs and survives a SIGTERM restart', async () => {
    const created = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'automation/cli.ts', 'token', 'create', '--role', 'operate', '--name', 'e2e'],
      {
        cwd: REPO_ROOT,
        env: env(tmp.dir),
        encoding: 'utf8',
      },
    );
    assert.equal(created.status, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^udpm_/);

    const first = await startServer(tmp.dir);
    let jobId: string;
    try {
      const doc = await api(first.url, 'GET', '/openapi.json');
      assert.equal(doc.json.openapi, '3.1.0');
      const up = await api(first.url, 'POST', '/v1/stacks/dev/up', {
        token,
        body: { spec: { clouds: ['aws'], aws: { region: 'us-east-1' } } },
      });
      // Without a CLI, the operation is refused up front (503), not accepted and then failed.
      assert.equal(up.status, 503, up.text);
      assert.equal(up.json.error.code, 'pulumi_cli_missing');
      // A job through the CLI (same database): it fails typed, and the restarted service shows it.
      const cliUp = spawnSync(
        process.execPath,
        ['--import', 'tsx', 'automation/cli.ts', 'stack', 'refresh', 'dev', '--json'],
        { cwd: REPO_ROOT, env: env(tmp.dir), encoding: 'utf8' },
      );
      assert.equal(cliUp.status, 1, cliUp.stderr);
      jobId = JSON.parse(cliUp.stdout).id;
      const stream = await readEvents(first.url, jobId, token);
      const result = stream.events.at(-1)!.parsed.data;
      assert.equal(result.status, 'failed');
      assert.equal(result.error.code, 'pulumi_cli_missing');
      const outputs = await api(first.url, 'GET', '/v1/stacks/dev/outputs', { token });
      assert.equal(outputs.status, 503);
    } finally {
      first.child.kill('SIGTERM');
    }
    assert.equal(await first.exited, 0, 'graceful stop exits 0');

    const second = await startServer(tmp.dir);
    try {
      const job = await api(second.url, 'GET', `/v1/jobs/${jobId}`, { token });
      assert.equal(job.status, 200);
      assert.equal(job.json.status, 'failed');
      assert.match(job.json.requestedBy, /^cli:/);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
