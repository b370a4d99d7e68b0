// `npm run local:stack`: finds the engine (install script's cache, then PATH) and, without one, says to
// run scripts/install-pulumi-engine.sh instead of failing with "command not found".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineCacheBin, findPulumi, sdkVersion } from '../../../infra/local/engine.ts';
import { findPulumiEngine } from '../../harness/pulumiEngine.ts';

describe('local target: finding the Pulumi engine', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'udpmesh-engine-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('no engine: exit 127 and a message naming scripts/install-pulumi-engine.sh', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'infra/local/cli.ts', 'up', '-s', 'local'], {
      env: { ...process.env, XDG_CACHE_HOME: dir, PATH: dir },
      encoding: 'utf8',
    });
    assert.equal(r.status, 127, r.stderr);
    assert.match(
      r.stderr,
      /no Pulumi engine found .*scripts\/install-pulumi-engine\.sh \(npm run engine:install/,
    );
  });

  it('prefers the cache the install script fills, keyed by the SDK version', () => {
    const bin = engineCacheBin(sdkVersion(), { XDG_CACHE_HOME: dir });
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'pulumi'), '');
    assert.equal(findPulumi({ XDG_CACHE_HOME: dir, PATH: '' }), join(bin, 'pulumi'));
  });

  it('runs the engine it finds (skipped without one)', function () {
    const probe = findPulumiEngine();
    if (!probe.ok) {
      console.log(`      skipped: ${probe.reason}`);
      this.skip();
    }
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'infra/local/cli.ts', 'version'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `v${sdkVersion()}`);
  });
});
