// `--baseline-ref <git ref>`: the replicator of an earlier commit as one more row of the peers part, so
// "throughput per core no worse than before the change" is judged in ONE run, on the same host load,
// against the same sinks and load generator, instead of against a figure from another day.
// The ref is exported with `git archive` into a cache OUTSIDE the repository
// (~/.cache/udpmesh/bench-baseline/<sha>, or $XDG_CACHE_HOME), `npm ci` runs there once, and a marker
// file says the tree is complete; a later run with the same ref reuses it. The old tree's config schema
// may lack keys the bench now sets (e.g. `io` before the batched addon): adaptConfig drops whatever that
// tree's own schema calls unrecognised, so the old replicator runs with its own defaults for the rest.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './procs.ts';

export interface BaselineTree {
  ref: string;
  sha: string;
  short: string;
  /** The exported tree, with its node_modules. */
  root: string;
  /** Its replicator entry point, spelled replicator/./main.ts like the current tree's (topology.ts). */
  mainPath: string;
  /** Whether its config schema has `io` (batched addon); if not, it only had Node's dgram sockets. */
  hasIo: boolean;
}

const MARKER = '.udpmesh-bench-ready';

export function cacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'udpmesh', 'bench-baseline');
}

function run(cmd: string, args: string[], cwd: string, what: string, env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0)
    throw new Error(
      `${what} failed (exit ${r.status ?? r.signal}): ${`${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-8).join('\n')}`,
    );
  return r.stdout;
}

/**
 * The tree of `ref`, exported and installed once into the cache. Throws with the reason (unknown ref,
 * npm ci failing) so the peers part can mark the row as skipped.
 */
export function prepareBaseline(ref: string, log: (m: string) => void): BaselineTree {
  const sha = run(
    'git',
    ['rev-parse', '--verify', `${ref}^{commit}`],
    REPO_ROOT,
    `git rev-parse ${ref}`,
  ).trim();
  const root = join(cacheRoot(), sha);
  if (!existsSync(join(root, MARKER))) {
    const partial = `${root}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
    try {
      log(`baseline ${ref} (${sha.slice(0, 10)}): exporting to ${root} (git archive)`);
      const tar = spawnSync('sh', ['-c', `git archive --format=tar ${sha} | tar -x -C '${partial}'`], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
      });
      if (tar.status !== 0) throw new Error(`git archive ${sha} failed: ${tar.stderr}`);
      log(`baseline ${ref}: npm ci (once; cached in ${root})`);
      // Node 24 (ours) first on PATH, so that the old tree's install scripts run with the same engine.
      const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
      run('npm', ['ci', '--no-audit', '--no-fund'], partial, `npm ci for ${ref}`, env);
      writeFileSync(join(partial, MARKER), `${sha}\n${new Date().toISOString()}\n`);
      rmSync(root, { recursive: true, force: true });
      renameSync(partial, root);
    } catch (err) {
      rmSync(partial, { recursive: true, force: true });
      throw err;
    }
  } else log(`baseline ${ref} (${sha.slice(0, 10)}): cached tree ${root}`);
  const mainPath = `${root}/replicator/./main.ts`;
  if (!existsSync(join(root, 'replicator', 'main.ts')))
    throw new Error(`${ref} has no replicator/main.ts: not a udpmesh tree the bench can run`);
  const schemaText = readFileSync(join(root, 'replicator', 'config', 'schema.ts'), 'utf8');
  return { ref, sha, short: sha.slice(0, 7), root, mainPath, hasIo: /\bio: z\b/.test(schemaText) };
}

interface ZodIssueLike {
  code: string;
  keys?: string[];
  path: (string | number)[];
  message: string;
}

/**
 * The config the bench generates, made acceptable to the baseline tree's own schema: keys it does not
 * know (strict objects) are removed, level by level; any other error is thrown as it is.
 */
export async function adaptConfig<T extends object>(tree: BaselineTree, config: T): Promise<T> {
  const mod = (await import(pathToFileURL(join(tree.root, 'replicator', 'config', 'schema.ts')).href)) as {
    replicatorConfigSchema: {
      safeParse(v: unknown): { success: boolean; error?: { issues: ZodIssueLike[] } };
    };
  };
  const out = structuredClone(config) as Record<string, unknown>;
  for (let round = 0; round < 8; round++) {
    const r = mod.replicatorConfigSchema.safeParse(out);
    if (r.success) return out as T;
    const issues = r.error?.issues ?? [];
    const unknown = issues.filter((i) => i.code === 'unrecognized_keys' && i.keys?.length);
    if (unknown.length === 0 || unknown.length < issues.length)
      throw new Error(
        `the config does not fit ${tree.ref}'s schema: ${issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    for (const i of unknown) {
      let obj: Record<string, unknown> = out;
      for (const p of i.path) obj = obj[p as string] as Record<string, unknown>;
      for (const k of i.keys!) delete obj[k];
    }
  }
  throw new Error(`could not adapt the config to ${tree.ref}'s schema`);
}
