// One simulated cloud's replicator (its own cluster identity: cluster = aws, gcp or azure), run by the
// same launch recipe as local mode (replicatorCommand), detached, config and logs under its directory.
// Updates: what the replicator applies from etcd without a restart (delivery, admission lists, session
// limits, drain deadline: see ReplicatorService.applyDynamicConfig) is written to
// /udpmesh/<mesh>/config/<cluster> and confirmed in its log; anything else restarts that one process
// (SIGTERM drain first). refresh reports a dead process or a config file that no longer matches.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { ReplicatorConfigInput } from '../../../replicator/config/schema.ts';
import { keys } from '../../../replicator/coordination/keys.ts';
import { stopPidFile } from '../../../replicator/local/detached.ts';
import { inheritedEnv, replicatorCommand } from '../../../replicator/local/replicatorProcess.ts';
import {
  assertPortsFree,
  createFresh,
  delay,
  hostUrl,
  httpOk,
  pidFileRunning,
  processStateOf,
  spawnUntilReady,
  type DiffResult,
  type ProcessState,
} from './common.ts';

export interface ReplicatorInputs {
  dir: string;
  cloud: string;
  /** The replicator's config file content, minus the key file path (set here). */
  config: ReplicatorConfigInput;
  /** Inter-cluster frame key (secret), written to <dir>/cluster.key with mode 0600. */
  clusterKey: string;
  readyTimeoutMs: number;
}

export interface ReplicatorOutputs extends ReplicatorInputs, ProcessState {
  /** sha256 of the config file on disk ('' when it is missing). */
  configHash: string;
  metricsUrl: string;
}

const files = (dir: string) => ({
  pid: join(dir, 'replicator.pid'),
  log: join(dir, 'replicator.log'),
  config: join(dir, 'replicator.config.json'),
  key: join(dir, 'cluster.key'),
});

/** Parts of the config the running replicator takes from etcd (ReplicatorService.applyDynamicConfig). */
const DYNAMIC_INGRESS = [
  'allowCidrs',
  'denyCidrs',
  'maxSessions',
  'sessionIdleTimeoutMs',
  'rateLimit',
] as const;

export function splitConfig(c: ReplicatorConfigInput): {
  staticPart: unknown;
  dynamicPart: Record<string, unknown>;
} {
  const ingress: Record<string, unknown> = { ...(c.ingress ?? {}) };
  const dynIngress: Record<string, unknown> = {};
  for (const k of DYNAMIC_INGRESS) {
    if (k in ingress) dynIngress[k] = ingress[k];
    delete ingress[k];
  }
  const { delivery, drain, ...rest } = c;
  return {
    staticPart: { ...rest, ingress },
    dynamicPart: { ingress: dynIngress, delivery: delivery ?? {}, drain: drain ?? {} },
  };
}

function fileText(i: ReplicatorInputs): string {
  const f = files(i.dir);
  const config: ReplicatorConfigInput = {
    ...i.config,
    replication: {
      ...i.config.replication,
      auth: { ...i.config.replication?.auth, keyFiles: [f.key] },
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function diskHash(dir: string): string {
  try {
    return sha256(readFileSync(files(dir).config, 'utf8'));
  } catch {
    return '';
  }
}

function metricsUrl(c: ReplicatorConfigInput): string {
  const a = c.metrics?.address ?? '127.0.0.1';
  return `${hostUrl(a === '0.0.0.0' ? '127.0.0.1' : a, c.metrics?.port ?? 9100)}/metrics`;
}

function outputs(i: ReplicatorInputs): ReplicatorOutputs {
  return {
    ...i,
    ...processStateOf(files(i.dir).pid),
    configHash: diskHash(i.dir),
    metricsUrl: metricsUrl(i.config),
  };
}

function dynamicKey(c: ReplicatorConfigInput): string {
  return keys.clusterConfig(c.mesh ?? 'default', c.cluster);
}

/** Runs fn against the stack's etcd; gives up after 10 s (etcd may already be gone on destroy). */
async function withEtcd<T>(c: ReplicatorConfigInput, fn: (client: Etcd3) => Promise<T>): Promise<T> {
  const client = new Etcd3({ hosts: c.etcd?.endpoints ?? [], dialTimeout: 3000 });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(client),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('etcd did not answer within 10 s')), 10_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    client.close();
  }
}

async function start(i: ReplicatorInputs): Promise<void> {
  const f = files(i.dir);
  const c = i.config;
  const addresses = c.ingress?.addresses ?? ['0.0.0.0'];
  await assertPortsFree([
    ...addresses.flatMap((a) =>
      (c.ingress?.ports ?? [7001]).map((port) => ({
        address: a,
        port,
        what: `${i.cloud} replicator ingress`,
      })),
    ),
    {
      address: c.replication?.address ?? '0.0.0.0',
      port: c.replication?.port ?? 7946,
      what: `${i.cloud} replicator replication`,
    },
    {
      address: c.metrics?.address ?? '0.0.0.0',
      port: c.metrics?.port ?? 9100,
      what: `${i.cloud} replicator metrics`,
    },
  ]);
  mkdirSync(i.dir, { recursive: true });
  writeFileSync(f.key, `${i.clusterKey}\n`, { mode: 0o600 });
  writeFileSync(f.config, fileText(i));
  const cmd = replicatorCommand(f.config);
  await spawnUntilReady(
    { ...cmd, env: inheritedEnv(), logFile: f.log, pidFile: f.pid },
    () => httpOk(metricsUrl(c).replace(/\/metrics$/, '/readyz')),
    { timeoutMs: i.readyTimeoutMs, what: `replicator ${i.cloud}`, graceMs: 2000 },
  );
}

function drainGraceMs(c: ReplicatorConfigInput): number {
  return (c.drain?.deadlineMs ?? 10_000) + 5000;
}

export async function create(i: ReplicatorInputs): Promise<{ id: string; outs: ReplicatorOutputs }> {
  await createFresh(i.dir, files(i.dir).pid, drainGraceMs(i.config), async () => {
    // A dynamic document left by an earlier incarnation would override this config file.
    await withEtcd(i.config, (e) => e.delete().key(dynamicKey(i.config)).exec()).catch(() => undefined);
    await start(i);
  });
  return { id: i.dir, outs: outputs(i) };
}

export function read(_id: string, props: ReplicatorOutputs): ReplicatorOutputs {
  return outputs(props);
}

export function diff(_id: string, olds: ReplicatorOutputs, news: ReplicatorInputs): DiffResult {
  const replaces = (['dir', 'cloud'] as const).filter((k) => olds[k] !== news[k]);
  const changes =
    replaces.length > 0 ||
    !olds.running ||
    olds.configHash !== sha256(fileText(olds)) ||
    fileText(olds) !== fileText(news) ||
    olds.clusterKey !== news.clusterKey ||
    olds.readyTimeoutMs !== news.readyTimeoutMs;
  return { changes, replaces, deleteBeforeReplace: true };
}

/** How update applied a change (written to the log and returned for tests). */
export type ApplyMode = 'none' | 'dynamic' | 'restart';

export function applyMode(olds: ReplicatorOutputs, news: ReplicatorInputs, running: boolean): ApplyMode {
  const drifted = olds.configHash !== sha256(fileText(olds));
  const a = splitConfig(olds.config);
  const b = splitConfig(news.config);
  if (!running || drifted || olds.clusterKey !== news.clusterKey) return 'restart';
  if (JSON.stringify(a.staticPart) !== JSON.stringify(b.staticPart)) return 'restart';
  if (JSON.stringify(a.dynamicPart) !== JSON.stringify(b.dynamicPart)) return 'dynamic';
  return 'none';
}

async function applyDynamic(i: ReplicatorInputs): Promise<void> {
  const f = files(i.dir);
  const mark = (() => {
    try {
      return readFileSync(f.log, 'utf8').length;
    } catch {
      return 0;
    }
  })();
  const doc = JSON.stringify(splitConfig(i.config).dynamicPart);
  await withEtcd(i.config, (e) => e.put(dynamicKey(i.config)).value(doc).exec());
  writeFileSync(f.config, fileText(i));
  const deadline = Date.now() + i.readyTimeoutMs;
  while (Date.now() < deadline) {
    const fresh = readFileSync(f.log, 'utf8').slice(mark);
    if (fresh.includes('applied dynamic config')) return;
    const refused = /refusing dynamic config[^\n]*/.exec(fresh);
    if (refused) throw new Error(`replicator ${i.cloud} refused the new settings: ${refused[0]}`);
    await delay(100);
  }
  throw new Error(
    `replicator ${i.cloud} did not confirm the new settings within ${i.readyTimeoutMs} ms (see ${f.log})`,
  );
}

export async function update(
  _id: string,
  olds: ReplicatorOutputs,
  news: ReplicatorInputs,
): Promise<{ outs: ReplicatorOutputs & { lastApply: ApplyMode } }> {
  const f = files(news.dir);
  const mode = applyMode(olds, news, pidFileRunning(f.pid));
  if (mode === 'restart') {
    await stopPidFile(f.pid, drainGraceMs(olds.config));
    await withEtcd(news.config, (e) => e.delete().key(dynamicKey(news.config)).exec()).catch(() => undefined);
    await start(news);
  } else if (mode === 'dynamic') {
    await applyDynamic(news);
  }
  return { outs: { ...outputs(news), lastApply: mode } };
}

export async function remove(_id: string, props: ReplicatorOutputs): Promise<void> {
  await stopPidFile(files(props.dir).pid, drainGraceMs(props.config));
  await withEtcd(props.config, (e) => e.delete().key(dynamicKey(props.config)).exec()).catch(() => undefined);
  rmSync(props.dir, { recursive: true, force: true });
}
