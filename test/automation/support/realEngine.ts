// Finding and running the real Pulumi engine for the automation tests: the same probe as the other
// real-engine tests (test/harness/pulumiEngine.ts, which searches where infra/local/engine.ts does: the
// install script's cache, else `pulumi` on PATH), in the shape these tests use. Everything runs
// offline: a file backend, a temporary PULUMI_HOME, no update checks, no plugin downloads.
import path from 'node:path';
import { REPO_ROOT } from '../../../automation/config.ts';
import { engineEnv as launchEnv } from '../../../infra/local/engine.ts';
import { findPulumiEngine as probeEngine } from '../../harness/pulumiEngine.ts';

export interface FoundEngine {
  /** Directory holding bin/pulumi. */
  root: string;
  bin: string;
  version: string;
}

/** The engine, or the reason it is absent (printed by skipping tests). */
export function findPulumiEngine(): FoundEngine | { reason: string } {
  const p = probeEngine();
  return p.ok ? { root: path.dirname(p.binDir), bin: p.pulumi, version: p.version } : { reason: p.reason };
}

/** Environment for every Pulumi command of a test: offline, Node 24 and the dynamic-provider launcher first. */
export function engineEnv(found: FoundEngine): Record<string, string> {
  return {
    PULUMI_CONFIG_PASSPHRASE: 'udpmesh-test-passphrase',
    PULUMI_SKIP_UPDATE_CHECK: 'true',
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
    // pulumi-resource-pulumi-nodejs (dynamic providers) and the language host sit next to pulumi;
    // they run `node` from PATH (the project's Node 24) and resolve @pulumi/pulumi through NODE_PATH.
    PATH: launchEnv(found.bin, { PATH: process.env.PATH }, REPO_ROOT).PATH as string,
    NODE_PATH: path.join(REPO_ROOT, 'node_modules'),
  };
}
