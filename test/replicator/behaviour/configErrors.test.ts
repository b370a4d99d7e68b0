// Config errors at start-up: the real entry point (node --import tsx replicator/main.ts) exits with
// code 2 and stderr names the offending key, without binding anything.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPLICATOR_MAIN, REPO_ROOT } from '../../../replicator/local/replicatorProcess.ts';

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Our environment without UDPMESH_* (they are config overrides), plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UDPMESH_')) out[k] = v;
  return { ...out, ...extra };
}

function runReplicator(
  args: string[],
  extraEnv: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', REPLICATOR_MAIN, ...args], {
      cwd: REPO_ROOT,
      env: env(extraEnv),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `the replicator (${args.join(' ')}) did not exit within ${timeoutMs} ms (it should refuse the config)\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const VALID = {
  cluster: 'aws',
  delivery: { backends: ['127.0.0.1:5353'] },
  metrics: { address: '127.0.0.1', port: 1 },
};

describe('behaviour: config errors at start-up (exit code 2, the key named)', function () {
  this.timeout(45_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'udpmesh-config-errors-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const file = (name: string, content: unknown): string => {
    const p = join(dir, name);
    writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
    return p;
  };

  const cases: Array<{ name: string; args: () => string[]; env?: Record<string, string>; expect: RegExp[] }> =
    [
      {
        name: 'a port out of range',
        args: () => ['--config', file('port.json', { ...VALID, ingress: { ports: [0] } })],
        expect: [/ingress\.ports\.0/],
      },
      {
        name: 'an unknown key',
        args: () => ['--config', file('unknown.json', { ...VALID, ingrss: { ports: [7001] } })],
        expect: [/unknown key/, /"ingrss"/],
      },
      {
        name: 'an unknown nested key',
        args: () => [
          '--config',
          file(
            'nested.yaml',
            'cluster: aws\ndelivery:\n  backends: ["127.0.0.1:5353"]\nreplication:\n  auth:\n    keyFile: /x\n',
          ),
        ],
        expect: [/replication\.auth/, /unknown key/, /"keyFile"/],
      },
      {
        name: 'no backends',
        args: () => ['--config', file('nobackends.json', { cluster: 'aws' })],
        expect: [/delivery\.backends/],
      },
      {
        name: 'a wrong type',
        args: () => ['--config', file('type.json', { ...VALID, ingress: { maxPayloadBytes: 'big' } })],
        expect: [/ingress\.maxPayloadBytes/],
      },
      {
        name: 'a bad environment override',
        args: () => ['--config', file('env.json', VALID)],
        env: { UDPMESH_INGRESS__MAX_PAYLOAD_BYTES: 'lots' },
        expect: [/ingress\.maxPayloadBytes/],
      },
      {
        name: 'YAML that does not parse',
        args: () => ['--config', file('broken.yaml', 'cluster: aws\ningress: [\n')],
        expect: [/not valid YAML/],
      },
      {
        name: 'a missing file',
        args: () => ['--config', join(dir, 'does-not-exist.yaml')],
        expect: [/cannot read the config file/],
      },
      {
        name: 'an unknown command-line option',
        args: () => ['--confg', 'x'],
        expect: [/usage: replicator --config/],
      },
    ];

  it('each invalid config exits 2 and stderr names the problem', async () => {
    // Three at a time: each is a whole Node + tsx start-up, and the machine may have two cores.
    const results: Array<{ c: (typeof cases)[number]; r: Outcome }> = [];
    const queue = [...cases];
    await Promise.all(
      [0, 1, 2].map(async () => {
        for (let c = queue.shift(); c; c = queue.shift())
          results.push({ c, r: await runReplicator(c.args(), c.env) });
      }),
    );
    const failures: string[] = [];
    for (const { c, r } of results) {
      const problems: string[] = [];
      if (r.code !== 2 || r.signal !== null)
        problems.push(`exit ${r.code} signal ${r.signal}, expected code 2`);
      for (const re of c.expect) if (!re.test(r.stderr)) problems.push(`stderr does not match ${re}`);
      if (/replicator ready/.test(r.stdout + r.stderr)) problems.push('it started anyway');
      if (problems.length)
        failures.push(
          `${c.name}: ${problems.join('; ')}\n  stderr: ${r.stderr.trim()}\n  stdout: ${r.stdout.trim().slice(0, 500)}`,
        );
    }
    assert.deepEqual(failures, [], failures.join('\n'));
  });
});
