// Finds the Pulumi engine for `npm run local:stack`: the cache scripts/install-pulumi-engine.sh builds
// into (keyed by the @pulumi/pulumi version this project is locked to), else a `pulumi` on PATH (the
// official CLI). Without either, the error says how to get one instead of a bare "command not found".
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export class EngineNotFoundError extends Error {
  constructor(looked: string[]) {
    super(
      `no Pulumi engine found (looked in ${looked.join(', ')}): build it with scripts/install-pulumi-engine.sh ` +
        '(npm run engine:install; needs Go and the Go module proxy), or install the official Pulumi CLI',
    );
    this.name = 'EngineNotFoundError';
  }
}

/** The @pulumi/pulumi version in node_modules (the engine is built at the same release). */
export function sdkVersion(root = REPO_ROOT): string {
  const pkg = JSON.parse(
    readFileSync(join(root, 'node_modules', '@pulumi', 'pulumi', 'package.json'), 'utf8'),
  ) as {
    version: string;
  };
  return pkg.version;
}

export function engineCacheBin(version: string, env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'udpmesh', 'pulumi', version, 'bin');
}

/**
 * Every `pulumi` worth trying, best first: the cache's, then the first on PATH. The tests try each
 * (a cached build that does not run falls back to the CLI); findPulumi takes the first.
 */
export function pulumiCandidates(env: NodeJS.ProcessEnv = process.env, root = REPO_ROOT): string[] {
  const found: string[] = [];
  const cached = join(engineCacheBin(sdkVersion(root), env), 'pulumi');
  if (existsSync(cached)) found.push(cached);
  const onPath = (env.PATH ?? '').split(delimiter).find((dir) => dir && existsSync(join(dir, 'pulumi')));
  if (onPath) found.push(join(onPath, 'pulumi'));
  return found;
}

/** Path of the `pulumi` binary to use, or EngineNotFoundError. */
export function findPulumi(env: NodeJS.ProcessEnv = process.env, root = REPO_ROOT): string {
  const [best] = pulumiCandidates(env, root);
  if (best) return best;
  throw new EngineNotFoundError([engineCacheBin(sdkVersion(root), env), 'PATH']);
}

/**
 * The environment to run it with: its directory (language host, dynamic-provider launcher) and the
 * project's Node.js 24 first on PATH, no update checks.
 */
export function engineEnv(
  pulumi: string,
  env: NodeJS.ProcessEnv = process.env,
  root = REPO_ROOT,
): NodeJS.ProcessEnv {
  return {
    ...env,
    PATH: [dirname(pulumi), join(root, 'node_modules', '.bin'), env.PATH ?? ''].join(delimiter),
    PULUMI_SKIP_UPDATE_CHECK: env.PULUMI_SKIP_UPDATE_CHECK ?? 'true',
  };
}
