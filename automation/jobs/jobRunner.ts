// Runs operations as jobs: one job per stack at a time (a second submission is rejected with the
// holder's id; the lock lives in the database, so the CLI and the service exclude each other),
// different stacks in parallel up to `maxConcurrent` (the rest wait, queued, up to `maxQueued`),
// every engine event persisted (redacted) and fanned out to live subscribers.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { OperationContext, OperationKind, StackEngine } from '../engine.ts';
import { AutomationError, CancelledError, ConfirmationRequiredError, StackBusyError } from '../errors.ts';
import type { StackEvent } from '../events.ts';
import { Redactor, redactOutputs } from '../redact.ts';
import { secretValuesOf, toPulumiConfig, type StackConfig } from '../spec.ts';
import {
  isTerminal,
  type Job,
  type JobError,
  type JobEventRecord,
  type JobStatus,
  type JobStore,
} from './jobStore.ts';

export interface SubmitRequest {
  stack: string;
  operation: OperationKind;
  /** Who asked (token name); recorded in the job and the audit log. */
  actor: string;
  /** Required for up and preview; validated already (spec.ts). Kept in memory only. */
  spec?: StackConfig;
  message?: string;
  /** destroy only: remove the stack afterwards. */
  remove?: boolean;
  /** up only: apply even if the preview replaces clusters or networks. */
  confirmReplace?: boolean;
  /** Engine options: targets, replace, refresh first, expect no changes. */
  engineOptions?: Pick<OperationContext, 'targets' | 'replace' | 'refresh' | 'expectNoChanges'>;
  /** preview only: a drift check (refresh first; the result says whether anything would change). */
  drift?: boolean;
  /** preview only: save the update plan (its id is the job id; result.planId). */
  savePlan?: boolean;
  /** up only: apply exactly the plan saved by this preview job. */
  planFrom?: string;
  /** Recorded in the job's options (e.g. the stored spec's version the job ran with). */
  specVersion?: number;
}

/** Resource types whose replacement moves real infrastructure: clusters and networks. */
const GUARDED_TYPE = /(Cluster|ManagedCluster|Network|Vpc|VirtualNetwork|Subnetwork|Subnet)$/;
const REPLACING_OPS = new Set(['replace', 'create-replacement', 'delete-replaced']);

/** The service is draining (graceful stop): new operations are refused with 503 + Retry-After. */
export class DrainingError extends Error {
  readonly retryAfterSeconds = 30;
  constructor() {
    super('the service is shutting down; retry against the new instance');
  }
}
/** The queue is full: 429 + Retry-After. */
export class QueueFullError extends Error {
  constructor(
    readonly queued: number,
    readonly retryAfterSeconds: number,
  ) {
    super(`${queued} operations are already queued; try again later`);
  }
}

export interface JobRunnerOptions {
  maxConcurrent: number;
  /** Most jobs waiting to start (default unlimited); more get QueueFullError. */
  maxQueued?: number;
  /** Identity of this process in the job store (default PROCESS_OWNER). */
  owner?: string;
  logger?: Logger;
  /**
   * The values to hide for a spec. Default: the config values the infra schema marks secret
   * (toPulumiConfig(...).secret). Overridable so the redaction pipeline can be tested
   * independently of which schema fields are currently secret.
   */
  secretsOf?: (spec: StackConfig) => string[];
}

interface ActiveJob {
  id: string;
  req: SubmitRequest;
  controller: AbortController;
  redactor: Redactor;
  started: boolean;
  done: Promise<void>;
  resolveDone: () => void;
}

export class JobNotFoundError extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId} not found`);
  }
}
export class JobFinishedError extends Error {
  constructor(readonly job: Job) {
    super(`job ${job.id} already finished (${job.status})`);
  }
}

export class JobRunner {
  private readonly byStack = new Map<string, ActiveJob>();
  private readonly byId = new Map<string, ActiveJob>();
  private readonly queue: ActiveJob[] = [];
  private running = 0;
  private stopping = false;
  private readonly emitter = new EventEmitter();
  /** Emits 'finished' (job) after every job's end: caches of stack reads listen. */
  readonly finished = new EventEmitter();

  constructor(
    private readonly store: JobStore,
    private readonly engine: StackEngine,
    private readonly opts: JobRunnerOptions,
  ) {
    if (!(opts.maxConcurrent >= 1)) throw new Error('maxConcurrent must be >= 1');
    this.emitter.setMaxListeners(0);
  }

  /** Accepts an operation; throws StackBusyError (with the holder's id) if the stack has one. */
  submit(req: SubmitRequest): Job {
    if (this.stopping) throw new DrainingError();
    if ((req.operation === 'up' || req.operation === 'preview') && !req.spec) {
      throw new Error(`${req.operation} needs a spec`);
    }
    const rejectBusy = (holderId: string, status: string) => {
      this.store.audit({
        actor: req.actor,
        action: `job.${req.operation}`,
        stack: req.stack,
        jobId: holderId,
        result: 'rejected_busy',
      });
      return new StackBusyError(req.stack, holderId, undefined, status);
    };
    const holder = this.byStack.get(req.stack);
    if (holder) throw rejectBusy(holder.id, this.store.getJob(holder.id)?.status ?? 'running');
    if (this.opts.maxQueued !== undefined && this.queue.length >= this.opts.maxQueued) {
      this.store.audit({
        actor: req.actor,
        action: `job.${req.operation}`,
        stack: req.stack,
        result: 'rejected_queue_full',
      });
      throw new QueueFullError(this.queue.length, 10 * Math.max(1, this.queue.length));
    }
    const secrets = req.spec ? (this.opts.secretsOf ?? defaultSecretsOf)(req.spec) : [];
    const options: Record<string, unknown> = {
      ...(req.operation === 'destroy' ? { remove: !!req.remove } : {}),
      ...(req.confirmReplace ? { confirmReplace: true } : {}),
      ...(req.drift ? { drift: true } : {}),
      ...(req.savePlan ? { savePlan: true } : {}),
      ...(req.planFrom ? { planFrom: req.planFrom } : {}),
      ...(req.specVersion !== undefined ? { specVersion: req.specVersion } : {}),
      ...(req.engineOptions ?? {}),
    };
    const created = this.store.createLockedJob({
      stack: req.stack,
      operation: req.operation,
      requestedBy: req.actor,
      ...(req.message ? { message: req.message } : {}),
      options,
      ...(this.opts.owner ? { owner: this.opts.owner } : {}),
    });
    if (created.busy) throw rejectBusy(created.busy.id, created.busy.status);
    const job = created.job!;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const active: ActiveJob = {
      id: job.id,
      req,
      controller: new AbortController(),
      redactor: new Redactor(secrets),
      started: false,
      done,
      resolveDone,
    };
    this.byStack.set(req.stack, active);
    this.byId.set(job.id, active);
    this.store.audit({
      actor: req.actor,
      action: `job.${req.operation}`,
      stack: req.stack,
      jobId: job.id,
      result: 'accepted',
    });
    this.record(active, 'status', { status: 'queued' });
    this.queue.push(active);
    this.pump();
    return this.store.getJob(job.id)!;
  }

  /** Throws StackBusyError (audited) if a job of this process holds the stack. */
  assertFree(stack: string, actor: string, operation: OperationKind): void {
    const holder = this.byStack.get(stack);
    if (!holder) return;
    this.store.audit({ actor, action: `job.${operation}`, stack, jobId: holder.id, result: 'rejected_busy' });
    throw new StackBusyError(stack, holder.id, undefined, this.store.getJob(holder.id)?.status ?? 'running');
  }

  /**
   * Cancels a job: a queued job ends at once; a running one is signalled (Pulumi stops gracefully,
   * the job ends as cancelled when the engine returns). Returns the job's current record.
   */
  cancel(jobId: string, actor: string): Job {
    const job = this.store.getJob(jobId);
    if (!job) throw new JobNotFoundError(jobId);
    const active = this.byId.get(jobId);
    if (!active || isTerminal(job.status)) throw new JobFinishedError(job);
    this.store.audit({ actor, action: 'job.cancel', stack: job.stack, jobId, result: 'requested' });
    if (!active.started) {
      this.queue.splice(this.queue.indexOf(active), 1);
      this.complete(active, 'cancelled', {
        error: { code: 'cancelled', message: `cancelled by ${actor} before it started` },
      });
    } else if (!active.controller.signal.aborted) {
      this.store.markCancelling(jobId);
      this.cancelledByUser.add(jobId);
      this.record(active, 'status', { status: 'cancelling', by: actor });
      active.controller.abort();
    }
    return this.store.getJob(jobId)!;
  }

  /** Live events of a job (those appended after the call). Returns an unsubscribe function. */
  subscribe(jobId: string, listener: (e: JobEventRecord) => void): () => void {
    this.emitter.on(jobId, listener);
    return () => this.emitter.off(jobId, listener);
  }

  /** Live subscribers of a job (SSE connections). */
  subscriberCount(jobId: string): number {
    return this.emitter.listenerCount(jobId);
  }

  isActive(jobId: string): boolean {
    return this.byId.has(jobId);
  }

  /** Resolves when the job (if it is active) has finished. */
  async waitFor(jobId: string): Promise<void> {
    await this.byId.get(jobId)?.done;
  }

  /** Resolves when no job is queued or running. */
  async idle(): Promise<void> {
    while (this.byId.size > 0) await Promise.all([...this.byId.values()].map((a) => a.done));
  }

  /**
   * Graceful stop: no new jobs; queued ones end interrupted, running ones are signalled and end
   * interrupted (not cancelled: nobody asked). Whatever is still running after `timeoutMs` is
   * left for the next start's recovery to mark interrupted.
   */
  get draining(): boolean {
    return this.stopping;
  }

  /** Jobs waiting to start, in order. */
  queuedIds(): string[] {
    return this.queue.map((a) => a.id);
  }

  /** Jobs running now. */
  runningCount(): number {
    return this.running;
  }

  async shutdown(timeoutMs = 30_000): Promise<void> {
    this.stopping = true;
    for (const a of [...this.queue]) {
      this.queue.splice(this.queue.indexOf(a), 1);
      this.complete(a, 'interrupted', {
        error: { code: 'interrupted', message: 'the service stopped before the job started' },
      });
    }
    for (const a of this.byId.values()) a.controller.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.idle(),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (this.byId.size > 0) {
      this.opts.logger?.warn(
        { jobs: [...this.byId.keys()], timeoutMs },
        'jobs still running at the shutdown timeout: the next start marks them interrupted',
      );
    }
  }

  // --- internals ---

  private pump(): void {
    while (this.running < this.opts.maxConcurrent && this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.running++;
      next.started = true;
      void this.execute(next).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async execute(a: ActiveJob): Promise<void> {
    const { req } = a;
    this.store.markRunning(a.id);
    this.record(a, 'status', { status: 'running' });
    const ctx: OperationContext = {
      signal: a.controller.signal,
      onEvent: (e: StackEvent) => this.record(a, 'engine', e),
      ...(req.message ? { message: req.message } : {}),
      ...(req.engineOptions ?? {}),
      ...(req.drift ? { refresh: true } : {}),
      ...(req.savePlan ? { plan: { id: a.id, mode: 'save' as const } } : {}),
      ...(req.planFrom ? { plan: { id: req.planFrom, mode: 'apply' as const } } : {}),
    };
    try {
      let result;
      switch (req.operation) {
        case 'up':
          // An applied plan was previewed already (that preview is the confirmation).
          if (!req.confirmReplace && !req.planFrom && this.store.hasDeployed(req.stack))
            await this.preflight(a);
          result = await this.engine.up(req.stack, req.spec!, ctx);
          break;
        case 'preview':
          result = await this.engine.preview(req.stack, req.spec!, ctx);
          break;
        case 'refresh':
          result = await this.engine.refresh(req.stack, ctx);
          break;
        case 'destroy':
          result = await this.engine.destroy(req.stack, { remove: !!req.remove }, ctx);
          break;
      }
      // Secret outputs are hidden here too, whatever the engine did.
      let safe: unknown = result.outputs ? { ...result, outputs: redactOutputs(result.outputs) } : result;
      if (req.savePlan) safe = { ...(safe as object), planId: a.id };
      if (req.drift) {
        const drift = Object.entries(result.changes).some(([op, n]) => op !== 'same' && n > 0);
        safe = { ...(safe as object), drift };
        this.store.audit({
          actor: req.actor,
          action: 'stack.drift',
          stack: req.stack,
          jobId: a.id,
          result: drift ? 'drift_detected' : 'no_drift',
          detail: JSON.stringify(result.changes).slice(0, 300),
        });
        this.finished.emit('drift', { stack: req.stack, drift });
      }
      this.complete(a, 'succeeded', { result: a.redactor.value(safe) });
    } catch (err) {
      const status: JobStatus =
        this.stopping && !this.cancelledByUser.has(a.id)
          ? 'interrupted'
          : err instanceof CancelledError || a.controller.signal.aborted
            ? 'cancelled'
            : 'failed';
      const error: JobError =
        status === 'interrupted'
          ? {
              code: 'interrupted',
              message:
                'the service stopped while the job was running: Pulumi was signalled and stopped ' +
                'after the resource operations in flight; run the operation again (refresh first)',
            }
          : toJobError(err, a.redactor);
      if (!(err instanceof AutomationError)) {
        this.opts.logger?.error(
          { jobId: a.id, stack: req.stack, err: error },
          'job failed with an unexpected error',
        );
      }
      this.complete(a, status, { error });
    }
  }

  /**
   * Before updating a deployed stack: a preview; if it would replace clusters or networks the job
   * fails with confirmation_required (nothing applied). Its events are recorded as `preflight`.
   */
  private async preflight(a: ActiveJob): Promise<void> {
    const replacements: { urn: string; resourceType: string; op: string }[] = [];
    await this.engine.preview(a.req.stack, a.req.spec!, {
      signal: a.controller.signal,
      onEvent: (e) => {
        this.record(a, 'preflight', e);
        if (
          e.type === 'resource-pre' &&
          REPLACING_OPS.has(e.op) &&
          GUARDED_TYPE.test(e.resourceType.split(/[:/]/).pop() ?? '') &&
          !replacements.some((r) => r.urn === e.urn)
        ) {
          replacements.push({ urn: e.urn, resourceType: e.resourceType, op: e.op });
        }
      },
    });
    if (replacements.length > 0) throw new ConfirmationRequiredError(replacements);
  }

  private readonly cancelledByUser = new Set<string>();

  private complete(a: ActiveJob, status: JobStatus, outcome: { result?: unknown; error?: JobError }): void {
    const { req } = a;
    this.store.releaseLock(req.stack, a.id);
    if (this.store.finish(a.id, status, outcome)) {
      this.record(a, 'result', { status, ...outcome });
      this.store.audit({
        actor: req.actor,
        action: `job.${req.operation}`,
        stack: req.stack,
        jobId: a.id,
        result: status,
        ...(outcome.error ? { detail: `${outcome.error.code}: ${outcome.error.message}`.slice(0, 500) } : {}),
      });
      this.opts.logger?.info(
        { jobId: a.id, stack: req.stack, operation: req.operation, status },
        'job finished',
      );
    }
    this.byStack.delete(req.stack);
    this.byId.delete(a.id);
    this.cancelledByUser.delete(a.id);
    a.resolveDone();
    this.finished.emit('finished', this.store.getJob(a.id));
  }

  private record(a: ActiveJob, type: string, data: unknown): void {
    const safe = a.redactor.value(data);
    try {
      const rec = this.store.appendEvent(a.id, type, safe);
      this.emitter.emit(a.id, rec);
    } catch (err) {
      this.opts.logger?.error({ jobId: a.id, err: (err as Error).message }, 'could not record job event');
    }
  }
}

export function defaultSecretsOf(spec: StackConfig): string[] {
  return secretValuesOf(toPulumiConfig(spec));
}

export function toJobError(err: unknown, redactor: Redactor): JobError {
  if (err instanceof AutomationError) return redactor.value(err.toJSON());
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'internal', message: redactor.string(message) };
}
