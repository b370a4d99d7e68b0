// Jobs: list (filters, pagination with a total), status, cancel, the SSE event stream (resumable
// with Last-Event-ID or ?after=) and the job's log as plain text.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { grantAllows, type TokenInfo } from '../../auth/tokens.ts';
import { actorOf, bearerOf, requireOwnStackFilter } from '../auth.ts';
import { HttpError } from '../errors.ts';
import { renderJobLog } from '../../jobs/jobLog.ts';
import { emptyBody, errors, Job, jobParams, JobStatus, queryInt, stackName } from '../schemas.ts';
import { streamJobEvents } from '../sse.ts';
import { jobView, type RouteContext } from './context.ts';

export function jobRoutes(ctx: RouteContext): FastifyPluginAsyncZod {
  return async (app) => {
    const { store, runner, tokens } = ctx;
    /** A job the token may see (a job of a stack outside its grants is not found). */
    const getJob = (id: string, token: TokenInfo | undefined) => {
      const job = store.getJob(id);
      if (!job || !grantAllows(token?.stacks, job.stack))
        throw new HttpError(404, 'job_not_found', `job ${id} not found`);
      return job;
    };

    app.get(
      '/v1/jobs',
      {
        config: { role: 'read' },
        schema: {
          summary: 'Jobs, newest first',
          tags: ['jobs'],
          querystring: z.strictObject({
            stack: stackName.optional(),
            status: JobStatus.optional(),
            limit: queryInt(1, 500).optional(),
            offset: queryInt(0, 1_000_000).optional(),
            cursor: queryInt(1, 999_999_999).optional().describe('nextCursor of the previous page'),
          }),
          response: {
            200: z.object({
              jobs: z.array(Job),
              total: z.number().int().describe('Jobs matching the filters (all pages)'),
              nextCursor: z.number().int().optional().describe('Pass as ?cursor= for the next page'),
            }),
            ...errors(400, 401, 403, 429),
          },
        },
      },
      async (req) => {
        requireOwnStackFilter(req.token!, req.query.stack);
        const q = req.query as Parameters<typeof store.pageJobs>[0];
        const page = store.pageJobs(q);
        return {
          jobs: page.jobs.map((j) => jobView(j, runner)),
          total: store.countJobs(q),
          ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}),
        };
      },
    );

    app.get(
      '/v1/jobs/:id',
      {
        config: { role: 'read' },
        schema: {
          summary: 'A job: status, result or error',
          tags: ['jobs'],
          params: jobParams,
          querystring: z.strictObject({}),
          response: { 200: Job, ...errors(400, 401, 403, 404, 429) },
        },
      },
      async (req) => jobView(getJob(req.params.id, req.token), runner),
    );

    app.post(
      '/v1/jobs/:id/cancel',
      {
        config: { role: 'operate' },
        schema: {
          summary: 'Cancel a job (queued: at once; running: Pulumi stops gracefully)',
          tags: ['jobs'],
          params: jobParams,
          querystring: z.strictObject({}),
          body: emptyBody,
          response: {
            202: z.object({ jobId: z.string(), job: Job }),
            ...errors(400, 401, 403, 404, 409, 415, 429),
          },
        },
      },
      async (req, reply) => {
        getJob(req.params.id, req.token);
        const job = runner.cancel(req.params.id, actorOf(req.token!));
        return reply.code(202).send({ jobId: req.params.id, job: jobView(job, runner) });
      },
    );

    app.get(
      '/v1/jobs/:id/events',
      {
        config: { role: 'read' },
        schema: {
          summary: "The job's events as server-sent events (ends after the result event)",
          description:
            'Resume with the Last-Event-ID header or ?after=<id>. Event types: status, engine, preflight, result.',
          tags: ['jobs'],
          params: jobParams,
          querystring: z.strictObject({ after: queryInt(0, 999_999_999).optional() }),
          headers: z.looseObject({
            'last-event-id': z
              .string()
              .regex(/^\s*\d{1,9}\s*$/, 'must be an event id (integer)')
              .optional(),
          }),
          response: {
            200: {
              description: 'text/event-stream',
              content: { 'text/event-stream': { schema: z.string() } },
            },
            ...errors(400, 401, 403, 404, 429),
          },
        },
      },
      async (req, reply) => {
        const job = getJob(req.params.id, req.token);
        const header = req.headers['last-event-id'];
        const after =
          typeof header === 'string' && header.trim() !== '' ? Number(header.trim()) : (req.query.after ?? 0);
        if (ctx.streams.size >= ctx.maxStreams)
          throw new HttpError(
            429,
            'too_many_streams',
            `${ctx.streams.size} event streams are open (the limit); poll GET /v1/jobs/${job.id} or retry later`,
            undefined,
            { 'retry-after': '5' },
          );
        const bearer = bearerOf(req)!;
        streamJobEvents(reply, job.id, after, {
          store,
          runner,
          heartbeatMs: ctx.heartbeatMs,
          recheckMs: ctx.authRecheckMs,
          stillAuthorized: () => tokens.check(bearer, { touch: false }).ok,
          streams: ctx.streams,
        });
      },
    );

    app.get(
      '/v1/jobs/:id/log',
      {
        config: { role: 'read' },
        schema: {
          summary: "The job's log as plain text (what the CLI prints)",
          tags: ['jobs'],
          params: jobParams,
          querystring: z.strictObject({}),
          response: {
            200: { description: 'text/plain', content: { 'text/plain': { schema: z.string() } } },
            ...errors(400, 401, 403, 404, 429),
          },
        },
      },
      async (req, reply) => {
        const job = getJob(req.params.id, req.token);
        return reply.type('text/plain; charset=utf-8').send(renderJobLog(job, store.events(job.id)));
      },
    );
  };
}
