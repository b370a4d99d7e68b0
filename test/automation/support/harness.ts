// Test harness: a real service on 127.0.0.1:0 with real SQLite, tokens, and small HTTP/SSE clients.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { StackEngine } from '../../../automation/engine.ts';
import type { StackConfig } from '../../../automation/spec.ts';
import { startService, type Service, type ServiceOptions } from '../../../automation/service.ts';

/** A spec naming what identifies real infrastructure (regions, project): no silent defaults. */
export const VALID_SPEC = {
  clouds: ['aws', 'gcp', 'azure'],
  aws: { region: 'us-east-1' },
  gcp: { project: 'udpmesh-test', region: 'us-central1' },
  azure: { location: 'eastus' },
};

export interface TestService extends Service {
  operate: string;
  read: string;
  logs: string[];
}

export function tempDir(prefix = 'udpmesh-auto-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startTestService(
  engine: StackEngine,
  opts: {
    dbFile?: string;
    maxConcurrent?: number;
    bodyLimit?: number;
    createTokens?: boolean;
    heartbeatMs?: number;
    secretsOf?: (spec: StackConfig) => string[];
    /** Any other service option (limits, intervals). */
    extra?: Partial<ServiceOptions>;
  } = {},
): Promise<TestService> {
  const logs: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    }),
  );
  const service = await startService({
    engine,
    dbFile: opts.dbFile ?? ':memory:',
    maxConcurrent: opts.maxConcurrent ?? 4,
    ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
    ...(opts.secretsOf ? { secretsOf: opts.secretsOf } : {}),
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    ...(opts.extra ?? {}),
    logger,
  });
  const operate = opts.createTokens === false ? '' : service.tokens.create('portal', 'operate').token;
  const read = opts.createTokens === false ? '' : service.tokens.create('dashboard', 'read').token;
  return Object.assign(service, { operate, read, logs });
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export async function api(
  base: string,
  method: string,
  url: string,
  opts: {
    token?: string;
    body?: unknown;
    rawBody?: string;
    contentType?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  const res = await fetch(base + url, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  parsed: any;
}

export function parseSse(text: string): SseEvent[] {
  const out: SseEvent[] = [];
  for (const block of text.split('\n\n')) {
    const ev: Partial<SseEvent> & { data?: string } = {};
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'id') ev.id = value;
      else if (field === 'event') ev.event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0) continue;
    const joined = data.join('\n');
    out.push({ ...ev, data: joined, parsed: JSON.parse(joined) });
  }
  return out;
}

/** Reads a job's whole event stream (it ends after the result event). */
export async function readEvents(
  base: string,
  jobId: string,
  token: string,
  opts: { lastEventId?: string; query?: string } = {},
): Promise<{ status: number; contentType: string | null; raw: string; events: SseEvent[] }> {
  const res = await fetch(`${base}/v1/jobs/${jobId}/events${opts.query ?? ''}`, {
    headers: {
      authorization: `Bearer ${token}`,
      ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}),
    },
  });
  const raw = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    raw,
    events: res.status === 200 ? parseSse(raw) : [],
  };
}

/**
 * Opens a stream and collects events until `until` returns true, then disconnects; returns what
 * was read. Used to observe a live job mid-flight.
 */
export async function readEventsUntil(
  base: string,
  jobId: string,
  token: string,
  /** Called with everything read so far after each chunk; true disconnects. */
  until: (events: SseEvent[]) => boolean,
): Promise<SseEvent[]> {
  const controller = new AbortController();
  const res = await fetch(`${base}/v1/jobs/${jobId}/events`, {
    headers: { authorization: `Bearer ${token}` },
    signal: controller.signal,
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let events: SseEvent[] = [];
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      const complete = buf.slice(0, buf.lastIndexOf('\n\n') + 2);
      events = parseSse(complete);
      if (until(events)) break;
    }
  } finally {
    controller.abort();
  }
  return events;
}

/** Polls the job until it is terminal (the runner's own promise, no sleeps). */
export async function waitForJob(service: Service, jobId: string) {
  await service.runner.waitFor(jobId);
  return service.store.getJob(jobId)!;
}
