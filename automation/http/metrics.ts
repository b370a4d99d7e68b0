// Prometheus metrics of the service. Counts that live in the database or the runner are read at
// scrape time (collect), never maintained on the request path; durations and refusals are counted
// as they happen.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JobRunner } from '../jobs/jobRunner.ts';
import type { Job, JobStore } from '../jobs/jobStore.ts';

export interface ServiceMetrics {
  registry: Registry;
  authRefused: Counter<'status'>;
}

export function createMetrics(store: JobStore, runner: JobRunner, streams: Set<unknown>): ServiceMetrics {
  const registry = new Registry();
  new Gauge({
    name: 'udpmesh_automation_jobs',
    help: 'Jobs in the database by status and operation',
    labelNames: ['status', 'operation'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of store.jobCounts()) this.set({ status: c.status, operation: c.operation }, c.n);
    },
  });
  new Gauge({
    name: 'udpmesh_automation_queue_length',
    help: 'Jobs waiting to start',
    registers: [registry],
    collect() {
      this.set(runner.queuedIds().length);
    },
  });
  new Gauge({
    name: 'udpmesh_automation_running_jobs',
    help: 'Jobs running now',
    registers: [registry],
    collect() {
      this.set(runner.runningCount());
    },
  });
  new Gauge({
    name: 'udpmesh_automation_open_event_streams',
    help: 'Open SSE event streams',
    registers: [registry],
    collect() {
      this.set(streams.size);
    },
  });
  const durations = new Histogram({
    name: 'udpmesh_automation_job_duration_seconds',
    help: 'Job run time (start to end) by operation and final status',
    labelNames: ['operation', 'status'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 2400, 3600],
    registers: [registry],
  });
  runner.finished.on('finished', (job: Job | undefined) => {
    if (!job?.startedAt || !job.finishedAt) return;
    durations.observe(
      { operation: job.operation, status: job.status },
      (Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000,
    );
  });
  const drift = new Gauge({
    name: 'udpmesh_automation_stack_drift',
    help: 'Last drift check per stack: 1 when changes were found, 0 when none',
    labelNames: ['stack'],
    registers: [registry],
  });
  runner.finished.on('drift', (d: { stack: string; drift: boolean }) =>
    drift.set({ stack: d.stack }, d.drift ? 1 : 0),
  );
  const authRefused = new Counter({
    name: 'udpmesh_automation_auth_refused_total',
    help: 'Requests refused by authentication (401), authorization (403) or rate limit (429)',
    labelNames: ['status'],
    registers: [registry],
  });
  return { registry, authRefused };
}
