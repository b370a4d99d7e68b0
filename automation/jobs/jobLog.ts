// A job's log as plain text: the same readable lines the CLI prints, from the stored events.
import { formatChanges, progressPrinter } from '../cli/progress.ts';
import type { StackEvent } from '../events.ts';
import type { Job, JobEventRecord } from './jobStore.ts';

export function renderJobLog(job: Job, events: JobEventRecord[]): string {
  let out = `${job.operation} of ${job.stack} (job ${job.id}), requested by ${job.requestedBy} at ${job.createdAt}\n`;
  const print = progressPrinter({ stdout: (s) => (out += s), stderr: (s) => (out += s) });
  for (const e of events) {
    if (e.type === 'status') {
      const d = e.data as { status?: string; by?: string };
      out += `[${e.time}] ${d.status ?? ''}${d.by ? ` (by ${d.by})` : ''}\n`;
    } else if (e.type === 'engine' || e.type === 'preflight') {
      print(e.data as StackEvent);
    } else if (e.type === 'result') {
      const d = e.data as {
        status?: string;
        result?: { changes?: Record<string, number> };
        error?: { code: string; message: string };
      };
      out += `[${e.time}] ${d.status ?? ''}`;
      if (d.result?.changes) out += `: ${formatChanges(d.result.changes)}`;
      if (d.error) out += `: ${d.error.code}: ${d.error.message}`;
      out += '\n';
    }
  }
  return out;
}
