// What route plugins share: the engine, the stores, the runner and the limits. Built once in app.ts.
import type { TokenStore } from '../../auth/tokens.ts';
import type { StackEngine } from '../../engine.ts';
import type { JobRunner } from '../../jobs/jobRunner.ts';
import type { Job, JobStore } from '../../jobs/jobStore.ts';
import type { StackReads } from '../../jobs/reads.ts';

export interface RouteContext {
  engine: StackEngine;
  store: JobStore;
  runner: JobRunner;
  tokens: TokenStore;
  reads: StackReads;
  heartbeatMs: number;
  authRecheckMs: number;
  maxStreams: number;
  streams: Set<() => void>;
}

/** A job as the API returns it: links, and the queue position while queued. */
export function jobView(job: Job, runner: JobRunner) {
  const { owner: _owner, ...rest } = job;
  const pos = job.status === 'queued' ? runner.queuedIds().indexOf(job.id) : -1;
  return {
    ...rest,
    ...(pos >= 0 ? { queuePosition: pos + 1 } : {}),
    links: {
      self: `/v1/jobs/${job.id}`,
      events: `/v1/jobs/${job.id}/events`,
      cancel: `/v1/jobs/${job.id}/cancel`,
      log: `/v1/jobs/${job.id}/log`,
    },
  };
}
