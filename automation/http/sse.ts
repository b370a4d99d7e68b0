// A job's events as server-sent events: history after `after` from the store, then live events,
// ending after the `result` event. A client resuming past the last id (or past the result) still
// gets the result event when the job ends, and the stream ends: it never hangs open. The token is
// re-checked while the stream is open, so revoking (or expiry) ends it.
import type { FastifyReply } from 'fastify';
import type { JobRunner } from '../jobs/jobRunner.ts';
import { isTerminal, type JobEventRecord, type JobStore } from '../jobs/jobStore.ts';

export interface StreamOptions {
  store: JobStore;
  runner: JobRunner;
  heartbeatMs: number;
  /** Re-check interval of the token (ms). */
  recheckMs: number;
  /** False once the token is no longer valid. */
  stillAuthorized: () => boolean;
  /** Open streams; `end` functions, called on shutdown. */
  streams: Set<() => void>;
}

export function streamJobEvents(reply: FastifyReply, jobId: string, after: number, o: StreamOptions): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write('retry: 2000\n\n');
  let last = after;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    unsubscribe();
    clearInterval(heartbeat);
    clearInterval(recheck);
    o.streams.delete(end);
    res.end();
  };
  const write = (e: JobEventRecord) =>
    res.write(
      `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify({ seq: e.seq, time: e.time, type: e.type, data: e.data })}\n\n`,
    );
  const send = (e: JobEventRecord) => {
    if (ended) return;
    if (e.seq > last) {
      last = e.seq;
      write(e);
    } else if (e.type === 'result' && after > e.seq) {
      // Resumed past the end (an id the job never had): the result tells the client it is over.
      write(e);
    }
    if (e.type === 'result') end();
  };
  // Subscribe first, then replay: both in this synchronous block, so no event is lost between the
  // two, and `last` drops duplicates.
  const unsubscribe = o.runner.subscribe(jobId, send);
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), o.heartbeatMs);
  heartbeat.unref();
  const recheck = setInterval(() => {
    if (!o.stillAuthorized()) {
      res.write(
        'event: error\ndata: {"code":"unauthorized","message":"the token was revoked or expired"}\n\n',
      );
      end();
    }
  }, o.recheckMs);
  recheck.unref();
  o.streams.add(end);
  for (const e of o.store.events(jobId, after)) send(e);
  const job = o.store.getJob(jobId);
  if (!ended && job && isTerminal(job.status) && !o.runner.isActive(jobId)) {
    // Finished, and the client is past the result: send it again so the client knows it is over.
    const result = o.store.events(jobId, job.eventCount - 1).find((e) => e.type === 'result');
    if (result && after > result.seq) write(result);
    end();
  }
  res.on('close', end);
}
