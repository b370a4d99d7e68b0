// Durable jobs, job events, audit log, per-stack locks and stored specs. Events and results written
// here have already been redacted by the job runner. The stored spec of a stack is the source of
// truth for its config (no spec field is secret; the database file is private, see db.ts).
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { DatabaseSync } from 'node:sqlite';
import type { OperationKind } from '../engine.ts';

export type JobStatus =
  'queued' | 'running' | 'cancelling' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';
export const JOB_STATUSES: readonly JobStatus[] = [
  'queued',
  'running',
  'cancelling',
  'succeeded',
  'failed',
  'cancelled',
  'interrupted',
];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled', 'interrupted'];
export const isTerminal = (s: JobStatus) => TERMINAL_STATUSES.includes(s);
const ACTIVE_SQL = `('queued', 'running', 'cancelling')`;

/** Who runs a job: `<host>:<pid>` of the service or CLI process (recovery checks it is gone). */
export const PROCESS_OWNER = `${hostname()}:${process.pid}`;

/** True when the owning process is this host's live process other than us. */
export function ownerAlive(owner: string | undefined): boolean {
  if (!owner) return false;
  const i = owner.lastIndexOf(':');
  const host = owner.slice(0, i);
  const pid = Number(owner.slice(i + 1));
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface StoredSpec {
  stack: string;
  spec: unknown;
  version: number;
  updatedAt: string;
  updatedBy: string;
}

export interface JobError {
  code: string;
  message: string;
  details?: unknown;
}

export interface Job {
  id: string;
  stack: string;
  operation: OperationKind;
  status: JobStatus;
  requestedBy: string;
  message?: string;
  options: Record<string, unknown>;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  result?: unknown;
  error?: JobError;
  eventCount: number;
  /** `<host>:<pid>` of the process running it. */
  owner?: string;
}

export interface JobEventRecord {
  /** 1-based, per job; the SSE event id. */
  seq: number;
  time: string;
  type: string;
  data: unknown;
}

export interface AuditEntry {
  id: number;
  time: string;
  actor: string;
  action: string;
  stack?: string;
  jobId?: string;
  result: string;
  detail?: string;
}

type Row = Record<string, unknown>;

export interface AuditFilter {
  stack?: string;
  actor?: string;
  action?: string;
  result?: string;
  /** ISO times, inclusive / exclusive. */
  since?: string;
  until?: string;
  /** Cursor: entries with a smaller id. */
  before?: number;
}

const now = () => new Date().toISOString();

function toJob(r: Row): Job {
  return {
    id: String(r.id),
    stack: String(r.stack),
    operation: String(r.operation) as OperationKind,
    status: String(r.status) as JobStatus,
    requestedBy: String(r.requested_by),
    ...(r.message != null ? { message: String(r.message) } : {}),
    options: JSON.parse(String(r.options_json)) as Record<string, unknown>,
    createdAt: String(r.created_at),
    ...(r.started_at != null ? { startedAt: String(r.started_at) } : {}),
    ...(r.finished_at != null ? { finishedAt: String(r.finished_at) } : {}),
    ...(r.result_json != null ? { result: JSON.parse(String(r.result_json)) } : {}),
    ...(r.error_json != null ? { error: JSON.parse(String(r.error_json)) as JobError } : {}),
    eventCount: Number(r.event_count),
    ...(r.owner != null ? { owner: String(r.owner) } : {}),
  };
}

/** AES-256-GCM for stored specs: spec fields may be secret, the database must not hold them in clear. */
function seal(key: Buffer, text: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(text, 'utf8'), c.final()]);
  return `v1:${iv.toString('base64')}:${c.getAuthTag().toString('base64')}:${body.toString('base64')}`;
}
function unseal(key: Buffer, sealed: string): string {
  const [v, iv, tag, body] = sealed.split(':');
  if (v !== 'v1' || !iv || !tag || body === undefined) throw new Error('stored spec: unknown format');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
  d.setAuthTag(Buffer.from(tag, 'base64'));
  return Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]).toString('utf8');
}

export class JobStore {
  private readonly specKey: Buffer;
  /** `specKey`: 32 bytes (see specKeyFor in db.ts); default: a random key (in-memory databases). */
  constructor(
    private readonly db: DatabaseSync,
    opts: { specKey?: Buffer } = {},
  ) {
    this.specKey = opts.specKey ?? randomBytes(32);
  }

  createJob(input: {
    stack: string;
    operation: OperationKind;
    requestedBy: string;
    message?: string;
    options?: Record<string, unknown>;
    owner?: string;
  }): Job {
    const id = randomUUID();
    this.db
      .prepare(
        `INSERT INTO jobs (id, stack, operation, status, requested_by, message, options_json, created_at, owner)
         VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        input.stack,
        input.operation,
        input.requestedBy,
        input.message ?? null,
        JSON.stringify(input.options ?? {}),
        now(),
        input.owner ?? PROCESS_OWNER,
      );
    return this.getJob(id)!;
  }

  /**
   * Creates a queued job holding the stack's lock, atomically (BEGIN IMMEDIATE: the service and the
   * CLI may race on one database). If an active job holds the stack, nothing is created and that
   * job is returned as `busy`. A lock whose job has ended (a crash between finish and release) is
   * taken over.
   */
  createLockedJob(input: Parameters<JobStore['createJob']>[0]): { job?: Job; busy?: Job } {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const lock = this.db.prepare('SELECT job_id FROM stack_locks WHERE stack = ?').get(input.stack) as
        Row | undefined;
      if (lock) {
        const holder = this.getJob(String(lock.job_id));
        if (holder && !isTerminal(holder.status)) {
          this.db.exec('ROLLBACK');
          return { busy: holder };
        }
      }
      const job = this.createJob(input);
      this.db
        .prepare('INSERT OR REPLACE INTO stack_locks (stack, job_id, owner, acquired_at) VALUES (?, ?, ?, ?)')
        .run(input.stack, job.id, input.owner ?? PROCESS_OWNER, now());
      this.db.exec('COMMIT');
      return { job };
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  releaseLock(stack: string, jobId: string): void {
    this.db.prepare('DELETE FROM stack_locks WHERE stack = ? AND job_id = ?').run(stack, jobId);
  }

  /** The stack's lock, if any. */
  lockOf(stack: string): { stack: string; jobId: string; owner: string; acquiredAt: string } | undefined {
    const r = this.db.prepare('SELECT * FROM stack_locks WHERE stack = ?').get(stack) as Row | undefined;
    return r
      ? {
          stack: String(r.stack),
          jobId: String(r.job_id),
          owner: String(r.owner),
          acquiredAt: String(r.acquired_at),
        }
      : undefined;
  }

  /** Removes a stack's lock whatever holds it (operators, after a crash). */
  clearLock(stack: string): boolean {
    return Number(this.db.prepare('DELETE FROM stack_locks WHERE stack = ?').run(stack).changes) > 0;
  }

  /** Whether the stack has been deployed by a successful up (its resources may exist). */
  hasDeployed(stack: string): boolean {
    return !!this.db
      .prepare(`SELECT 1 FROM jobs WHERE stack = ? AND operation = 'up' AND status = 'succeeded' LIMIT 1`)
      .get(stack);
  }

  getSpec(stack: string): StoredSpec | undefined {
    const r = this.db.prepare('SELECT * FROM specs WHERE stack = ?').get(stack) as Row | undefined;
    return r
      ? {
          stack: String(r.stack),
          spec: JSON.parse(unseal(this.specKey, String(r.spec_json))),
          version: Number(r.version),
          updatedAt: String(r.updated_at),
          updatedBy: String(r.updated_by),
        }
      : undefined;
  }

  putSpec(stack: string, spec: unknown, by: string): StoredSpec {
    this.db
      .prepare(
        `INSERT INTO specs (stack, spec_json, version, updated_at, updated_by) VALUES (?, ?, 1, ?, ?)
         ON CONFLICT(stack) DO UPDATE SET spec_json = excluded.spec_json, version = version + 1,
           updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      )
      .run(stack, seal(this.specKey, JSON.stringify(spec)), now(), by);
    return this.getSpec(stack)!;
  }

  isProtected(stack: string): boolean {
    const r = this.db.prepare('SELECT protected FROM stack_settings WHERE stack = ?').get(stack) as
      Row | undefined;
    return !!r && Number(r.protected) === 1;
  }

  setProtected(stack: string, value: boolean, by: string): void {
    this.db
      .prepare(
        `INSERT INTO stack_settings (stack, protected, updated_at, updated_by) VALUES (?, ?, ?, ?)
         ON CONFLICT(stack) DO UPDATE SET protected = excluded.protected, updated_at = excluded.updated_at,
           updated_by = excluded.updated_by`,
      )
      .run(stack, value ? 1 : 0, now(), by);
  }

  /** An earlier request with this idempotency key (per token), if any (keys live 24 h). */
  idempotent(tokenId: string, key: string): { route: string; bodyHash: string; jobId: string } | undefined {
    const r = this.db
      .prepare('SELECT * FROM idempotency WHERE token_id = ? AND key = ? AND created_at > ?')
      .get(tokenId, key, new Date(Date.now() - 86_400_000).toISOString()) as Row | undefined;
    return r ? { route: String(r.route), bodyHash: String(r.body_hash), jobId: String(r.job_id) } : undefined;
  }

  rememberIdempotent(tokenId: string, key: string, route: string, bodyHash: string, jobId: string): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO idempotency (token_id, key, route, body_hash, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(tokenId, key, route, bodyHash, jobId, now());
  }

  /** Stacks with a stored spec (scheduled drift detection). */
  specStacks(): string[] {
    return (this.db.prepare('SELECT stack FROM specs ORDER BY stack').all() as Row[]).map((r) =>
      String(r.stack),
    );
  }

  deleteSpec(stack: string): void {
    this.db.prepare('DELETE FROM specs WHERE stack = ?').run(stack);
  }

  getJob(id: string): Job | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return r ? toJob(r) : undefined;
  }

  private jobFilter(filter: { stack?: string; status?: JobStatus }) {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.stack) {
      where.push('stack = ?');
      args.push(filter.stack);
    }
    if (filter.status) {
      where.push('status = ?');
      args.push(filter.status);
    }
    return { where, args };
  }

  countJobs(filter: { stack?: string; status?: JobStatus } = {}): number {
    const { where, args } = this.jobFilter(filter);
    const r = this.db
      .prepare(`SELECT count(*) AS n FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`)
      .get(...args) as Row;
    return Number(r.n);
  }

  /** Jobs by status and operation (metrics). */
  jobCounts(): { status: string; operation: string; n: number }[] {
    return (
      this.db
        .prepare('SELECT status, operation, count(*) AS n FROM jobs GROUP BY status, operation')
        .all() as Row[]
    ).map((r) => ({ status: String(r.status), operation: String(r.operation), n: Number(r.n) }));
  }

  listJobs(filter: { stack?: string; status?: JobStatus; limit?: number; offset?: number } = {}): Job[] {
    return this.pageJobs(filter).jobs;
  }

  /**
   * Jobs newest first. `cursor` (from a previous page's nextCursor) continues after that page:
   * stable while jobs are added, unlike offsets.
   */
  pageJobs(
    filter: { stack?: string; status?: JobStatus; limit?: number; offset?: number; cursor?: number } = {},
  ): { jobs: Job[]; nextCursor?: number } {
    const { where, args } = this.jobFilter(filter);
    if (filter.cursor !== undefined) {
      where.push('rowid < ?');
      args.push(filter.cursor);
    }
    const limit = filter.limit ?? 50;
    args.push(limit, filter.offset ?? 0);
    const rows = this.db
      .prepare(
        `SELECT rowid AS row_id, * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY rowid DESC LIMIT ? OFFSET ?`,
      )
      .all(...args) as Row[];
    const last = rows.at(-1);
    return {
      jobs: rows.map(toJob),
      ...(rows.length === limit && last ? { nextCursor: Number(last.row_id) } : {}),
    };
  }

  /** Jobs not yet finished (queued, running or cancelling). */
  activeJobs(): Job[] {
    return (
      this.db.prepare(`SELECT * FROM jobs WHERE status IN ${ACTIVE_SQL} ORDER BY rowid`).all() as Row[]
    ).map(toJob);
  }

  /** A running job asked to stop: `cancelling` until the engine returns. */
  markCancelling(id: string): void {
    this.db.prepare(`UPDATE jobs SET status = 'cancelling' WHERE id = ? AND status = 'running'`).run(id);
  }

  markRunning(id: string): void {
    this.db
      .prepare(`UPDATE jobs SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'`)
      .run(now(), id);
  }

  /** Sets a terminal status once; returns false if the job had already finished. */
  finish(id: string, status: JobStatus, outcome: { result?: unknown; error?: JobError }): boolean {
    const r = this.db
      .prepare(
        `UPDATE jobs SET status = ?, finished_at = ?, result_json = ?, error_json = ?
         WHERE id = ? AND status IN ${ACTIVE_SQL}`,
      )
      .run(
        status,
        now(),
        outcome.result === undefined ? null : JSON.stringify(outcome.result),
        outcome.error === undefined ? null : JSON.stringify(outcome.error),
        id,
      );
    return Number(r.changes) > 0;
  }

  appendEvent(jobId: string, type: string, data: unknown): JobEventRecord {
    const time = now();
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const row = this.db.prepare('SELECT event_count FROM jobs WHERE id = ?').get(jobId) as Row | undefined;
      if (!row) throw new Error(`no job ${jobId}`);
      const seq = Number(row.event_count) + 1;
      this.db
        .prepare('INSERT INTO job_events (job_id, seq, time, type, data_json) VALUES (?, ?, ?, ?, ?)')
        .run(jobId, seq, time, type, JSON.stringify(data));
      this.db.prepare('UPDATE jobs SET event_count = ? WHERE id = ?').run(seq, jobId);
      this.db.exec('COMMIT');
      return { seq, time, type, data };
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  /** Events with seq > afterSeq, in order. */
  events(jobId: string, afterSeq = 0): JobEventRecord[] {
    const rows = this.db
      .prepare('SELECT seq, time, type, data_json FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq')
      .all(jobId, afterSeq) as Row[];
    return rows.map((r) => ({
      seq: Number(r.seq),
      time: String(r.time),
      type: String(r.type),
      data: JSON.parse(String(r.data_json)),
    }));
  }

  audit(entry: {
    actor: string;
    action: string;
    stack?: string;
    jobId?: string;
    result: string;
    detail?: string;
  }): void {
    this.db
      .prepare(
        'INSERT INTO audit (time, actor, action, stack, job_id, result, detail) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        now(),
        entry.actor,
        entry.action,
        entry.stack ?? null,
        entry.jobId ?? null,
        entry.result,
        entry.detail ?? null,
      );
  }

  private auditFilter(filter: AuditFilter) {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (sql: string, v: string | number | undefined) => {
      if (v === undefined) return;
      where.push(sql);
      args.push(v);
    };
    add('stack = ?', filter.stack);
    add('actor = ?', filter.actor);
    add('action = ?', filter.action);
    add('result = ?', filter.result);
    add('time >= ?', filter.since);
    add('time < ?', filter.until);
    add('id < ?', filter.before);
    return { sql: where.length ? `WHERE ${where.join(' AND ')}` : '', args };
  }

  countAudit(filter: AuditFilter = {}): number {
    const { sql, args } = this.auditFilter({ ...filter, before: undefined });
    return Number((this.db.prepare(`SELECT count(*) AS n FROM audit ${sql}`).get(...args) as Row).n);
  }

  /** Audit entries, newest first; `before` (an entry id) is the cursor of the next page. */
  listAudit(filter: AuditFilter & { limit?: number; offset?: number } = {}): AuditEntry[] {
    const { sql, args } = this.auditFilter(filter);
    args.push(filter.limit ?? 100, filter.offset ?? 0);
    const rows = this.db
      .prepare(`SELECT * FROM audit ${sql} ORDER BY id DESC LIMIT ? OFFSET ?`)
      .all(...args) as Row[];
    return rows.map((r) => ({
      id: Number(r.id),
      time: String(r.time),
      actor: String(r.actor),
      action: String(r.action),
      ...(r.stack != null ? { stack: String(r.stack) } : {}),
      ...(r.job_id != null ? { jobId: String(r.job_id) } : {}),
      result: String(r.result),
      ...(r.detail != null ? { detail: String(r.detail) } : {}),
    }));
  }

  /**
   * Retention: deletes finished jobs (with their events) and audit entries older than `before`
   * (ISO time). Active jobs are never purged. Returns what was removed.
   */
  purge(before: string): { jobs: number; events: number; audit: number } {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const old = `SELECT id FROM jobs WHERE created_at < ? AND status NOT IN ${ACTIVE_SQL}`;
      const events = Number(
        this.db.prepare(`DELETE FROM job_events WHERE job_id IN (${old})`).run(before).changes,
      );
      const jobs = Number(
        this.db.prepare(`DELETE FROM jobs WHERE created_at < ? AND status NOT IN ${ACTIVE_SQL}`).run(before)
          .changes,
      );
      const audit = Number(this.db.prepare('DELETE FROM audit WHERE time < ?').run(before).changes);
      this.db.exec('COMMIT');
      return { jobs, events, audit };
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  /**
   * Startup recovery: jobs left queued or running by a previous process cannot be resumed (the
   * engine process is gone and specs are not persisted), so they are marked interrupted, get a
   * final event, and are audited. Returns the ids.
   */
  recoverInterrupted(): string[] {
    const ids: string[] = [];
    for (const job of this.activeJobs()) {
      // A job of another live process on this host (the CLI) is not ours to recover.
      if (ownerAlive(job.owner)) continue;
      const error: JobError = {
        code: 'interrupted',
        message:
          job.status === 'queued'
            ? 'the automation service stopped before this job started; nothing was run, submit it again'
            : `the automation service stopped while this job was ${job.status}; the stack may hold a ` +
              'stale Pulumi lock (POST /v1/stacks/<stack>/lock/clear, or `pulumi cancel`), then run refresh',
      };
      this.releaseLock(job.stack, job.id);
      if (this.finish(job.id, 'interrupted', { error })) {
        this.appendEvent(job.id, 'result', { status: 'interrupted', error });
        this.audit({
          actor: 'system',
          action: `job.${job.operation}`,
          stack: job.stack,
          jobId: job.id,
          result: 'interrupted',
        });
        ids.push(job.id);
      }
    }
    return ids;
  }
}
