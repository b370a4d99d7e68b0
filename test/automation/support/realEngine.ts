// Finding and running the real Pulumi engine for tests: the binary scripts/install-pulumi-engine.sh
// builds into ${XDG_CACHE_HOME:-~/.cache}/udpmesh/pulumi/<version>/bin (version = the @pulumi/pulumi
// in package-lock.json), else `pulumi` on PATH. Everything runs offline: a file backend, a temporary
// PULUMI_HOME, no update checks, no plugin downloads.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../../automation/config.ts';

export interface FoundEngine {
  /** Directory holding bin/pulumi. */
  root: string;
  bin: string;
  version: string;
}

export function pinnedPulumiVersion(): string {
  const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8'));
  return lock.packages['node_modules/@pulumi/pulumi'].version as string;
}

/** The engine, or the reason it is absent (printed by skipping tests). */
export function findPulumiEngine(): FoundEngine | { reason: string } {
  const version = pinnedPulumiVersion();
  const cache = process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  const cached = path.join(cache, 'udpmesh', 'pulumi', version, 'bin', 'pulumi');
  const candidates = existsSync(cached) ? [cached] : [];
  const onPath = spawnSync('sh', ['-c', 'command -v pulumi'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) candidates.push(onPath);
  for (const bin of candidates) {
    const r = spawnSync(bin, ['version'], {
      encoding: 'utf8',
      env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: 'true' },
    });
    if (r.status === 0) return { root: path.dirname(path.dirname(bin)), bin, version: r.stdout.trim() };
  }
  return {
    reason:
      `no Pulumi engine: neither ${cached} (run scripts/install-pulumi-engine.sh) nor \`pulumi\` on PATH` +
      (candidates.length ? ' runs' : ''),
  };
}

/** Environment for every Pulumi command of a test: offline, Node 24 and the dynamic-provider launcher first. */
export function engineEnv(found: FoundEngine): Record<string, string> {
  return {
    PULUMI_CONFIG_PASSPHRASE: 'udpmesh-test-passphrase',
    PULUMI_SKIP_UPDATE_CHECK: 'true',
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
    // pulumi-resource-pulumi-nodejs (dynamic providers) and the language host sit next to pulumi;
    // they run `node` from PATH (the project's Node 24) and resolve @pulumi/pulumi through NODE_PATH.
    PATH: [path.join(found.root, 'bin'), path.join(REPO_ROOT, 'node_modules', '.bin'), process.env.PATH].join(
      path.delimiter,
    ),
    NODE_PATH: path.join(REPO_ROOT, 'node_modules'),
  };
}
