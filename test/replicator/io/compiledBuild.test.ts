// Production runs compiled JavaScript (npm run build: tsc to dist/ with source maps), not tsx. This builds
// into a temp dir, starts `node dist/replicator/main.js` as the image does, relays a datagram to a backend
// and back, and checks that /status reports the I/O mode (batched wherever the addon is built).
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../harness/freePort.ts';
import { waitFor } from '../../harness/wait.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ADDON = join(ROOT, 'replicator/io/native/build/Release/udp_batch.node');

describe('io: the compiled production build', function () {
  this.timeout(120_000);
  let dir: string;
  let child: ChildProcess | undefined;
  let backend: Socket | undefined;
  let client: Socket | undefined;

  before(function () {
    this.timeout(120_000);
    // Inside the repo (.tmp is git-ignored) so that dist/ resolves node_modules as in the image.
    mkdirSync(join(ROOT, '.tmp'), { recursive: true });
    dir = mkdtempSync(join(ROOT, '.tmp', 'dist-'));
    execFileSync(
      process.execPath,
      [
        join(ROOT, 'node_modules/typescript/bin/tsc'),
        '-p',
        join(ROOT, 'tsconfig.build.json'),
        '--outDir',
        join(dir, 'dist'),
      ],
      { cwd: ROOT, stdio: 'pipe' },
    );
  });

  after(() => {
    child?.kill('SIGKILL');
    backend?.close();
    client?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('node dist/replicator/main.js serves with source maps and reports its I/O mode', async () => {
    const main = join(dir, 'dist/replicator/main.js');
    assert.ok(existsSync(main), 'main.js built');
    assert.ok(existsSync(`${main}.map`), 'source map next to it');
    backend = createSocket('udp4');
    backend.on('message', (m, r) => backend!.send(m, r.port, r.address));
    await new Promise<void>((r) => backend!.bind(0, '127.0.0.1', r));
    const [ingress, repl, metrics] = await freePorts(3);
    const cfgFile = join(dir, 'config.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({
        cluster: 'aws',
        ingress: { addresses: ['127.0.0.1'], ports: [ingress] },
        replication: { address: '127.0.0.1', port: repl },
        delivery: { backends: [`127.0.0.1:${backend.address().port}`] },
        metrics: { address: '127.0.0.1', port: metrics },
        log: { level: 'warn' },
      }),
    );
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UDPMESH_')) env[k] = v;
    // The image copies the addon next to dist/replicator/io; here it stays in the source tree.
    if (existsSync(ADDON)) env.UDPMESH_ADDON = ADDON;
    let output = '';
    child = spawn(process.execPath, ['--enable-source-maps', main, '--config', cfgFile], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${metrics}/readyz`).catch(() => undefined))?.status === 200,
      { timeoutMs: 30_000, what: 'the compiled replicator to be ready', detail: () => output },
    );
    client = createSocket('udp4');
    const replies: string[] = [];
    client.on('message', (m) => replies.push(m.toString()));
    await new Promise<void>((r) => client!.bind(0, '127.0.0.1', r));
    client.send(Buffer.from('compiled'), ingress, '127.0.0.1');
    await waitFor(async () => replies.length === 1, {
      timeoutMs: 10_000,
      what: 'the echo through the relay',
    });
    assert.equal(replies[0], 'compiled');
    const status = (await (await fetch(`http://127.0.0.1:${metrics}/status`)).json()) as {
      io: { mode: string };
    };
    assert.equal(status.io.mode, existsSync(ADDON) ? 'batched' : 'dgram');
    if (process.env.CI === 'true') assert.equal(status.io.mode, 'batched');
  });
});
