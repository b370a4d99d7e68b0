// A real Prometheus (Debian `prometheus`) for the local target: scrapes every replicator and etcd member
// and evaluates the project's own alert rules (infra/monitoring/alertRules.ts, the same groups the
// PrometheusRule of cloud stacks carries). New targets or rules are written and hot-reloaded
// (POST /-/reload, --web.enable-lifecycle); a new address or port restarts it.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { RuleGroup } from '../../monitoring/alertRules.ts';
import { stopPidFile } from '../../../replicator/local/detached.ts';
import {
  assertPortsFree,
  createFresh,
  delay,
  hostUrl,
  httpOk,
  pidFileRunning,
  processStateOf,
  removeProcess,
  requireBinary,
  spawnUntilReady,
  type DiffResult,
  type ProcessState,
} from './common.ts';

export interface ScrapeTarget {
  job: string;
  /** host:port */
  target: string;
  labels: Record<string, string>;
}

export interface PrometheusInputs {
  dir: string;
  address: string;
  port: number;
  scrapeIntervalSeconds: number;
  targets: ScrapeTarget[];
  ruleGroups: RuleGroup[];
  readyTimeoutMs: number;
}

export interface PrometheusOutputs extends PrometheusInputs, ProcessState {
  url: string;
  /** sha256 of prometheus.yml + rules.yml on disk. */
  configHash: string;
}

const files = (dir: string) => ({
  pid: join(dir, 'prometheus.pid'),
  log: join(dir, 'prometheus.log'),
  config: join(dir, 'prometheus.yml'),
  rules: join(dir, 'rules.yml'),
  data: join(dir, 'data'),
});

function texts(i: PrometheusInputs): { config: string; rules: string } {
  const f = files(i.dir);
  const jobs = [...new Set(i.targets.map((t) => t.job))];
  const config = {
    global: {
      scrape_interval: `${i.scrapeIntervalSeconds}s`,
      evaluation_interval: `${i.scrapeIntervalSeconds}s`,
    },
    rule_files: [f.rules],
    scrape_configs: jobs.map((job) => ({
      job_name: job,
      static_configs: i.targets
        .filter((t) => t.job === job)
        .map((t) => ({ targets: [t.target], labels: t.labels })),
    })),
  };
  return { config: stringify(config), rules: stringify({ groups: i.ruleGroups }) };
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function expectedHash(i: PrometheusInputs): string {
  const t = texts(i);
  return sha256(t.config + t.rules);
}

function diskHash(dir: string): string {
  try {
    const f = files(dir);
    return sha256(readFileSync(f.config, 'utf8') + readFileSync(f.rules, 'utf8'));
  } catch {
    return '';
  }
}

function writeFiles(i: PrometheusInputs): void {
  const f = files(i.dir);
  const t = texts(i);
  mkdirSync(i.dir, { recursive: true });
  writeFileSync(f.config, t.config);
  writeFileSync(f.rules, t.rules);
}

const baseUrl = (i: PrometheusInputs): string => hostUrl(i.address, i.port);

async function start(i: PrometheusInputs): Promise<void> {
  const binary = requireBinary('prometheus', 'prometheus', 'PROMETHEUS_BIN');
  await assertPortsFree([{ address: i.address, port: i.port, what: 'prometheus' }]);
  const f = files(i.dir);
  writeFiles(i);
  await spawnUntilReady(
    {
      command: binary,
      args: [
        `--config.file=${f.config}`,
        `--storage.tsdb.path=${f.data}`,
        `--web.listen-address=${i.address.includes(':') ? `[${i.address}]` : i.address}:${i.port}`,
        '--web.enable-lifecycle',
        '--storage.tsdb.retention.time=1d',
      ],
      cwd: i.dir,
      logFile: f.log,
      pidFile: f.pid,
    },
    () => httpOk(`${baseUrl(i)}/-/ready`),
    { timeoutMs: i.readyTimeoutMs, what: 'prometheus', graceMs: 5000 },
  );
}

function outputs(i: PrometheusInputs): PrometheusOutputs {
  return { ...i, ...processStateOf(files(i.dir).pid), url: baseUrl(i), configHash: diskHash(i.dir) };
}

export async function create(i: PrometheusInputs): Promise<{ id: string; outs: PrometheusOutputs }> {
  await createFresh(i.dir, files(i.dir).pid, 10_000, () => start(i));
  return { id: i.dir, outs: outputs(i) };
}

export function read(_id: string, props: PrometheusOutputs): PrometheusOutputs {
  return outputs(props);
}

export function diff(_id: string, olds: PrometheusOutputs, news: PrometheusInputs): DiffResult {
  const replaces = olds.dir !== news.dir ? ['dir'] : [];
  const changes =
    replaces.length > 0 ||
    !olds.running ||
    olds.configHash !== expectedHash(news) ||
    olds.address !== news.address ||
    olds.port !== news.port ||
    olds.readyTimeoutMs !== news.readyTimeoutMs;
  return { changes, replaces, deleteBeforeReplace: true };
}

export async function update(
  _id: string,
  olds: PrometheusOutputs,
  news: PrometheusInputs,
): Promise<{ outs: PrometheusOutputs }> {
  const f = files(news.dir);
  const moved = olds.address !== news.address || olds.port !== news.port;
  if (moved || !pidFileRunning(f.pid)) {
    await stopPidFile(f.pid, 10_000);
    await start(news);
  } else if (diskHash(news.dir) !== expectedHash(news)) {
    writeFiles(news);
    const res = await fetch(`${baseUrl(news)}/-/reload`, {
      method: 'POST',
      signal: AbortSignal.timeout(10_000),
    });
    const body = await res.text();
    if (!res.ok) throw new Error(`prometheus refused the new configuration (${res.status}): ${body.trim()}`);
    await delay(0);
  }
  return { outs: outputs(news) };
}

export async function remove(_id: string, props: PrometheusOutputs): Promise<void> {
  await removeProcess(props.dir, files(props.dir).pid, 10_000);
}
