// Settings of the service and the CLI, from the environment (validated; a bad value fails fast).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/**
 * The repository root (holds Pulumi.yaml and infra/): the nearest ancestor of this file with a
 * Pulumi.yaml, so it is right both from sources (automation/) and compiled (dist/automation/).
 */
export const REPO_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));

function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'Pulumi.yaml'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, '..');
  }
}

const schema = z.object({
  UDPMESH_HOST: z.string().min(1).default('127.0.0.1'),
  UDPMESH_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  UDPMESH_STATE_DIR: z.string().min(1).default(path.join(REPO_ROOT, '.udpmesh')),
  UDPMESH_DB: z.string().min(1).optional(),
  UDPMESH_MAX_CONCURRENT: z.coerce.number().int().min(1).max(64).default(4),
  UDPMESH_BODY_LIMIT: z.coerce
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(256 * 1024),
  UDPMESH_PROJECT_DIR: z.string().min(1).default(REPO_ROOT),
  UDPMESH_PULUMI_ROOT: z.string().min(1).optional(),
  UDPMESH_SECRETS_PROVIDER: z.string().min(1).optional(),
  PULUMI_BACKEND_URL: z.string().min(1).optional(),
  UDPMESH_MAX_QUEUED: z.coerce.number().int().min(0).max(10_000).default(100),
  UDPMESH_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).max(1_000_000).default(0),
  UDPMESH_WEBHOOK_URLS: z.string().optional(),
  UDPMESH_WEBHOOK_SECRET: z.string().min(16).optional(),
  UDPMESH_DRIFT_INTERVAL_MINUTES: z.coerce.number().int().min(0).max(100_000).default(0),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export interface AutomationConfig {
  host: string;
  port: number;
  stateDir: string;
  dbFile: string;
  maxConcurrent: number;
  bodyLimit: number;
  projectDir: string;
  pulumiRoot?: string;
  secretsProvider?: string;
  backendUrl?: string;
  logLevel: string;
  maxQueued: number;
  perTokenPerMinute: number;
  webhooks?: { urls: string[]; secret: string };
  driftIntervalMs?: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AutomationConfig {
  const r = schema.safeParse(env);
  if (!r.success) {
    throw new Error(
      `invalid environment: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const e = r.data;
  const stateDir = path.resolve(e.UDPMESH_STATE_DIR);
  const hooks = (e.UDPMESH_WEBHOOK_URLS ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  for (const u of hooks)
    if (!/^https?:\/\//.test(u))
      throw new Error(`invalid environment: UDPMESH_WEBHOOK_URLS: ${u} is not an http(s) URL`);
  if (hooks.length && !e.UDPMESH_WEBHOOK_SECRET)
    throw new Error(
      'invalid environment: UDPMESH_WEBHOOK_SECRET (16+ characters) is required with UDPMESH_WEBHOOK_URLS',
    );
  return {
    host: e.UDPMESH_HOST,
    port: e.UDPMESH_PORT,
    stateDir,
    dbFile: e.UDPMESH_DB ? path.resolve(e.UDPMESH_DB) : path.join(stateDir, 'automation.db'),
    maxConcurrent: e.UDPMESH_MAX_CONCURRENT,
    bodyLimit: e.UDPMESH_BODY_LIMIT,
    projectDir: path.resolve(e.UDPMESH_PROJECT_DIR),
    logLevel: e.LOG_LEVEL,
    maxQueued: e.UDPMESH_MAX_QUEUED,
    perTokenPerMinute: e.UDPMESH_RATE_LIMIT_PER_MINUTE,
    ...(hooks.length ? { webhooks: { urls: hooks, secret: e.UDPMESH_WEBHOOK_SECRET! } } : {}),
    ...(e.UDPMESH_DRIFT_INTERVAL_MINUTES
      ? { driftIntervalMs: e.UDPMESH_DRIFT_INTERVAL_MINUTES * 60_000 }
      : {}),
    ...(e.UDPMESH_PULUMI_ROOT ? { pulumiRoot: e.UDPMESH_PULUMI_ROOT } : {}),
    ...(e.UDPMESH_SECRETS_PROVIDER ? { secretsProvider: e.UDPMESH_SECRETS_PROVIDER } : {}),
    ...(e.PULUMI_BACKEND_URL ? { backendUrl: e.PULUMI_BACKEND_URL } : {}),
  };
}
