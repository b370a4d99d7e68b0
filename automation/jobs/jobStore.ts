// Durable jobs, job events and audit log. Everything written here has already been redacted by
// the job runner; the store never sees a spec (specs may carry secrets and are not persisted).
import { randomUUID } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import type { OperationKind } from '../engine.ts';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled', 'interrupted'];
export const isTerminal = (s: JobStatus) => TERMINAL_STATUSES.includes(s);

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
  };
}

export class JobStore {
  constructor(private readonly db: DatabaseSync) {}

  createJob(input: {
    stack: string;
    operation: OperationKind;
    requestedBy: string;
    message?: string;
    options?: Record<string, unknown>;
  }): Job {
    const id = randomUUID();
    this.db
      .prepare(
        `INSERT INTO jobs (id, stack, operation, status, requested_by, message, options_json, created_at)
         VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)`,
      )
      .run(
        id,
        input.stack,
        input.operation,
        input.requestedBy,
        input.message ?? null,
        JSON.stringify(input.options ?? {}),
        now(),
      );
    return this.getJob(id)!;
  }

  getJob(id: string): Job | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return r ? toJob(r) : undefined;
  }

  listJobs(filter: { stack?: string; status?: JobStatus; limit?: number; offset?: number } = {}): Job[] {
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
    args.push(filter.limit ?? 50, filter.offset ?? 0);
    const rows = this.db
      .prepare(
        `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?`,
      )
      .all(...args) as Row[];
    return rows.map(toJob);
  }

  /** Jobs not yet finished (queued or running). */
  activeJobs(): Job[] {
    return (
      this.db
        .prepare(`SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY rowid`)
        .all() as Row[]
    ).map(toJob);
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
         WHERE id = ? AND status IN ('queued', 'running')`,
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

  listAudit(filter: { stack?: string; limit?: number; offset?: number } = {}): AuditEntry[] {
    const args: (string | number)[] = [];
    let where = '';
    if (filter.stack) {
      where = 'WHERE stack = ?';
      args.push(filter.stack);
    }
    args.push(filter.limit ?? 100, filter.offset ?? 0);
    const rows = this.db
      .prepare(`SELECT * FROM audit ${where} ORDER BY id DESC LIMIT ? OFFSET ?`)
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
   * Startup recovery: jobs left queued or running by a previous process cannot be resumed (the
   * engine process is gone and specs are not persisted), so they are marked interrupted, get a
   * final event, and are audited. Returns the ids.
   */
  recoverInterrupted(): string[] {
    const ids: string[] = [];
    for (const job of this.activeJobs()) {
      const error: JobError = {
        code: 'interrupted',
        message:
          'the automation service stopped while this job was ' +
          job.status +
          '; the stack may hold a stale lock (run refresh, or `pulumi cancel` if an update was in flight)',
      };
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
