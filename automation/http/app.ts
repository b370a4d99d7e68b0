// The portal-facing HTTP API (fastify). Operations are jobs: POST answers 202 with the job id,
// GET /v1/jobs/:id gives its status, GET /v1/jobs/:id/events streams its events (SSE, resumable
// with Last-Event-ID), POST /v1/jobs/:id/cancel cancels it. Request bodies and queries are
// validated strictly (unknown fields rejected) before anything is changed.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { OperationKind, StackEngine } from '../engine.ts';
import { AutomationError, StackBusyError } from '../errors.ts';
import { JobFinishedError, JobNotFoundError, type JobRunner } from '../jobs/jobRunner.ts';
import { isTerminal, type Job, type JobEventRecord, type JobStore } from '../jobs/jobStore.ts';
import { Redactor, redactOutputs } from '../redact.ts';
import { isValidStackName, validateSpec } from '../spec.ts';
import { roleAllows, type Role, type TokenInfo, type TokenStore } from '../auth/tokens.ts';
import { buildOpenApiDocument, OPENAPI_PATH } from './openapi.ts';

export interface AppOptions {
  engine: StackEngine;
  store: JobStore;
  runner: JobRunner;
  tokens: TokenStore;
  /** pino logger; default: silent. */
  logger?: Logger;
  /** Maximum request body in bytes (default 256 KiB); larger bodies get 413. */
  bodyLimit?: number;
  /** SSE keep-alive comment interval (default 15 s). */
  heartbeatMs?: number;
}

/** An error answered as-is: { error: { code, message, details? } } with the given status. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

const STATUS_BY_CODE: Record<string, number> = {
  invalid_spec: 400,
  invalid_stack_name: 400,
  stack_not_found: 404,
  stack_busy: 409,
  cancelled: 409,
  engine_failure: 502,
  pulumi_cli_missing: 503,
  pulumi_cli_too_old: 503,
};

const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const message = z.string().max(1000).optional();
const upBody = z.strictObject({ spec: z.unknown(), message });
const refreshBody = z.strictObject({ message });
const destroyBody = z.strictObject({ remove: z.boolean().optional(), message });
const pageQuery = {
  limit: z.coerce.number().int().min(1).max(500).optional(),
  offset: z.coerce.number().int().min(0).max(1_000_000).optional(),
};
const jobsQuery = z.strictObject({
  stack: z.string().refine(isValidStackName, 'invalid stack name').optional(),
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted']).optional(),
  ...pageQuery,
});
const auditQuery = z.strictObject({
  stack: z.string().refine(isValidStackName, 'invalid stack name').optional(),
  ...pageQuery,
});
const historyQuery = z.strictObject({
  pageSize: z.coerce.number().int().min(1).max(500).optional(),
  page: z.coerce.number().int().min(1).max(1_000_000).optional(),
});
const eventsQuery = z.strictObject({ after: z.coerce.number().int().min(0).optional() });
const emptyQuery = z.strictObject({});

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  throw new HttpError(
    400,
    'invalid_request',
    `invalid ${what}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    { issues: r.error.issues.map((i) => ({ key: i.path.join('.'), message: i.message })) },
  );
}

function stackParam(req: FastifyRequest): string {
  const stack = (req.params as { stack?: unknown }).stack;
  if (!isValidStackName(stack)) {
    throw new HttpError(
      400,
      'invalid_stack_name',
      'invalid stack name: use 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit (no path characters)',
    );
  }
  return stack;
}

function jobParam(req: FastifyRequest): string {
  const id = (req.params as { id?: unknown }).id;
  if (typeof id !== 'string' || !JOB_ID.test(id))
    throw new HttpError(400, 'invalid_job_id', 'invalid job id');
  return id;
}

const actorOf = (t: TokenInfo) => `${t.name}#${t.id}`;

function jobView(job: Job) {
  return {
    ...job,
    links: {
      self: `/v1/jobs/${job.id}`,
      events: `/v1/jobs/${job.id}/events`,
      cancel: `/v1/jobs/${job.id}/cancel`,
    },
  };
}

export async function buildApp(opts: AppOptions) {
  const { engine, store, runner, tokens } = opts;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit: opts.bodyLimit ?? 256 * 1024,
    // Job ids, stack names: a long URL is a bad request, not something to route.
    routerOptions: { maxParamLength: 200 },
    return503OnClosing: true,
    // On close, drop keep-alive connections at once (open event streams are ended in preClose).
    forceCloseConnections: true,
  });
  // Only JSON bodies: text/plain would otherwise reach handlers as a string.
  app.removeContentTypeParser('text/plain');

  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    if (err instanceof HttpError) {
      return reply.code(err.statusCode).send({
        error: {
          code: err.code,
          message: err.message,
          ...(err.details !== undefined ? { details: err.details } : {}),
        },
      });
    }
    if (err instanceof AutomationError) {
      const status = STATUS_BY_CODE[err.code] ?? 500;
      if (status >= 500) req.log.warn({ code: err.code, msg: err.message }, 'engine call failed');
      return reply.code(status).send({ error: err.toJSON() });
    }
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      const code =
        e.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? 'body_too_large'
          : e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
            ? 'unsupported_media_type'
            : e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
              ? 'malformed_json'
              : 'bad_request';
      return reply.code(e.statusCode).send({ error: { code, message: e.message ?? 'bad request' } });
    }
    req.log.error({ err: { message: e.message, code: e.code } }, 'unhandled error');
    return reply.code(500).send({ error: { code: 'internal', message: 'internal error' } });
  });

  /** Bearer auth: 401 without a valid token, 403 when its role is not enough. */
  function authenticate(req: FastifyRequest, reply: FastifyReply, need: Role): TokenInfo {
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    const info = m ? tokens.verify(m[1]!) : undefined;
    if (!info) {
      void reply.header('www-authenticate', 'Bearer realm="udpmesh"');
      throw new HttpError(
        401,
        'unauthorized',
        m ? 'invalid or revoked token' : 'missing bearer token (Authorization: Bearer <token>)',
      );
    }
    if (!roleAllows(info.role, need)) {
      throw new HttpError(
        403,
        'forbidden',
        `this operation needs the ${need} role; the token has ${info.role}`,
      );
    }
    return info;
  }

  // --- unauthenticated ---
  const openapi = buildOpenApiDocument();
  app.get(OPENAPI_PATH, async () => openapi);
  app.get('/.well-known/openapi.json', async () => openapi);
  app.get('/healthz', async () => ({ status: 'ok' }));

  // --- operations (jobs) ---
  function submit(req: FastifyRequest, reply: FastifyReply, operation: OperationKind) {
    const who = authenticate(req, reply, 'operate');
    const stack = stackParam(req);
    parse(emptyQuery, req.query, 'query');
    let job: Job;
    try {
      if (operation === 'up' || operation === 'preview') {
        const body = parse(upBody, req.body, 'request body');
        if (body.spec === undefined) {
          throw new HttpError(
            400,
            'invalid_request',
            'invalid request body: spec: required (the stack spec, see the StackConfig schema)',
          );
        }
        const spec = validateSpec(body.spec);
        job = runner.submit({
          stack,
          operation,
          actor: actorOf(who),
          spec,
          ...(body.message ? { message: body.message } : {}),
        });
      } else if (operation === 'refresh') {
        const body = parse(refreshBody, req.body, 'request body');
        job = runner.submit({
          stack,
          operation,
          actor: actorOf(who),
          ...(body.message ? { message: body.message } : {}),
        });
      } else {
        const body = parse(destroyBody, req.body, 'request body');
        job = runner.submit({
          stack,
          operation,
          actor: actorOf(who),
          remove: !!body.remove,
          ...(body.message ? { message: body.message } : {}),
        });
      }
    } catch (err) {
      if (err instanceof StackBusyError) {
        throw new HttpError(409, 'stack_busy', err.message, {
          runningJobId: err.runningJobId,
          runningJob: `/v1/jobs/${err.runningJobId}`,
        });
      }
      throw err;
    }
    return reply
      .code(202)
      .header('location', `/v1/jobs/${job.id}`)
      .send({ jobId: job.id, job: jobView(job) });
  }
  for (const op of ['up', 'preview', 'refresh', 'destroy'] as const) {
    app.post(`/v1/stacks/:stack/${op}`, async (req, reply) => submit(req, reply, op));
  }

  // --- stacks (synchronous reads through the engine) ---
  app.get('/v1/stacks', async (req, reply) => {
    authenticate(req, reply, 'read');
    parse(emptyQuery, req.query, 'query');
    return { stacks: await engine.listStacks() };
  });
  app.get('/v1/stacks/:stack/outputs', async (req, reply) => {
    authenticate(req, reply, 'read');
    const stack = stackParam(req);
    parse(emptyQuery, req.query, 'query');
    // The engine redacts already; doing it again here keeps the guarantee independent of it.
    return { stack, outputs: redactOutputs(await engine.outputs(stack), new Redactor()) };
  });
  app.get('/v1/stacks/:stack/history', async (req, reply) => {
    authenticate(req, reply, 'read');
    const stack = stackParam(req);
    const q = parse(historyQuery, req.query, 'query');
    return { stack, updates: await engine.history(stack, q) };
  });

  // --- jobs ---
  app.get('/v1/jobs', async (req, reply) => {
    authenticate(req, reply, 'read');
    const q = parse(jobsQuery, req.query, 'query');
    return { jobs: store.listJobs(q).map(jobView) };
  });
  app.get('/v1/jobs/:id', async (req, reply) => {
    authenticate(req, reply, 'read');
    const id = jobParam(req);
    parse(emptyQuery, req.query, 'query');
    const job = store.getJob(id);
    if (!job) throw new HttpError(404, 'job_not_found', `job ${id} not found`);
    return jobView(job);
  });
  app.post('/v1/jobs/:id/cancel', async (req, reply) => {
    const who = authenticate(req, reply, 'operate');
    const id = jobParam(req);
    parse(emptyQuery, req.query, 'query');
    parse(z.strictObject({}), req.body, 'request body');
    try {
      const job = runner.cancel(id, actorOf(who));
      return reply.code(202).send({ jobId: id, job: jobView(job) });
    } catch (err) {
      if (err instanceof JobNotFoundError) throw new HttpError(404, 'job_not_found', err.message);
      if (err instanceof JobFinishedError) {
        throw new HttpError(409, 'job_finished', err.message, { status: err.job.status });
      }
      throw err;
    }
  });
  app.get('/v1/jobs/:id/events', async (req, reply) => {
    authenticate(req, reply, 'read');
    const id = jobParam(req);
    const q = parse(eventsQuery, req.query, 'query');
    const header = req.headers['last-event-id'];
    let after = q.after ?? 0;
    if (typeof header === 'string' && header.trim() !== '') {
      if (!/^\d{1,9}$/.test(header.trim()))
        throw new HttpError(400, 'invalid_request', 'Last-Event-ID must be an event id (integer)');
      after = Number(header.trim());
    }
    const job = store.getJob(id);
    if (!job) throw new HttpError(404, 'job_not_found', `job ${id} not found`);
    streamEvents(req, reply, id, after);
  });

  app.get('/v1/audit', async (req, reply) => {
    authenticate(req, reply, 'operate');
    const q = parse(auditQuery, req.query, 'query');
    return { entries: store.listAudit(q) };
  });

  /** SSE: history after `after` from the store, then live events, ending after the `result` event. */
  function streamEvents(req: FastifyRequest, reply: FastifyReply, jobId: string, after: number) {
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
      streams.delete(end);
      res.end();
    };
    const send = (e: JobEventRecord) => {
      if (ended || e.seq <= last) return;
      last = e.seq;
      res.write(
        `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify({ seq: e.seq, time: e.time, type: e.type, data: e.data })}\n\n`,
      );
      if (e.type === 'result') end();
    };
    // Subscribe first, then replay: both happen in this synchronous block, so no event is lost
    // between the two, and `last` drops duplicates.
    const unsubscribe = runner.subscribe(jobId, send);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
    heartbeat.unref();
    streams.add(end);
    for (const e of store.events(jobId, after)) send(e);
    const job = store.getJob(jobId);
    // A finished job whose result the client has already seen (resumed past it): nothing more comes.
    if (!ended && job && isTerminal(job.status) && !runner.isActive(jobId)) end();
    res.on('close', end);
  }

  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
