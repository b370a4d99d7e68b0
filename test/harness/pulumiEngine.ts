// Finds the real Pulumi engine for the real-engine tests and gives them an isolated environment.
// Where is infra/local/engine.ts's search, the one `npm run local:stack` makes (the cache that
// scripts/install-pulumi-engine.sh fills, keyed by the @pulumi/pulumi version, else a `pulumi` on PATH);
// here each candidate must also run. Tests that need it skip with the printed reason when none does,
// e.g. on a machine without Go where the script could not run.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineCacheBin, engineEnv, pulumiCandidates, sdkVersion } from '../../infra/local/engine.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export type EngineProbe =
  { ok: true; binDir: string; pulumi: string; version: string } | { ok: false; reason: string };

let probed: EngineProbe | undefined;

/** Locates a working `pulumi` (cache first, then PATH) and checks it runs and reports a version. */
export function findPulumiEngine(): EngineProbe {
  if (probed) return probed;
  const candidates = pulumiCandidates();
  for (const bin of candidates) {
    const r = spawnSync(bin, ['version'], {
      encoding: 'utf8',
      env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: 'true' },
    });
    if (r.status === 0 && /^v\d+\.\d+\.\d+/.test(r.stdout.trim())) {
      probed = { ok: true, binDir: path.dirname(bin), pulumi: bin, version: r.stdout.trim() };
      return probed;
    }
  }
  probed = {
    ok: false,
    reason:
      candidates.length === 0
        ? `no Pulumi engine: run scripts/install-pulumi-engine.sh (needs Go) to build it into ${engineCacheBin(sdkVersion())}, or install the official CLI`
        : `the Pulumi engine at ${candidates.join(', ')} does not run (pulumi version failed)`,
  };
  return probed;
}

/** Skips a mocha suite (printing why) when the engine is absent; returns the probe otherwise. */
export function requirePulumiEngine(ctx: Mocha.Context): Extract<EngineProbe, { ok: true }> {
  const p = findPulumiEngine();
  if (!p.ok) {
    console.log(`      skipped: ${p.reason}`);
    ctx.skip();
  }
  return p as Extract<EngineProbe, { ok: true }>;
}

export interface EngineSandbox {
  dir: string;
  backendDir: string;
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

/**
 * An isolated Pulumi environment: a file backend and PULUMI_HOME in a temp dir, no update checks, no plugin
 * downloads, the engine's bin dir (with the language host and the dynamic-provider launcher) and the project's
 * Node.js 24 first on PATH.
 */
export function engineSandbox(binDir: string, prefix = 'udpmesh-pulumi-'): EngineSandbox {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const backendDir = path.join(dir, 'backend');
  mkdirSync(backendDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...engineEnv(path.join(binDir, 'pulumi'), process.env, REPO_ROOT),
    PULUMI_HOME: path.join(dir, 'home'),
    PULUMI_BACKEND_URL: `file://${backendDir}`,
    PULUMI_CONFIG_PASSPHRASE: 'udpmesh-test-passphrase',
    PULUMI_SKIP_UPDATE_CHECK: 'true',
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: 'false',
    NO_COLOR: '1',
  };
  return { dir, backendDir, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
