// Every error the service answers has one shape, {error: {code, message, details?}}: validation
// failures, typed engine errors, fastify's own framework errors (bad or over-long URLs, bodies) and
// unknown routes (404, or 405 with Allow when the path exists for another method). Nothing echoes
// the request URL back, and nothing unexpected leaks beyond "internal error".
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AutomationError, StackBusyError } from '../errors.ts';
import { DrainingError, JobFinishedError, JobNotFoundError, QueueFullError } from '../jobs/jobRunner.ts';

/** An error answered as-is with the given status. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const STATUS_BY_CODE: Record<string, number> = {
  invalid_spec: 400,
  invalid_stack_name: 400,
  stack_not_found: 404,
  stack_busy: 409,
  cancelled: 409,
  confirmation_required: 409,
  engine_failure: 502,
  pulumi_cli_missing: 503,
  pulumi_cli_too_old: 503,
};

const send = (reply: FastifyReply, status: number, code: string, message: string, details?: unknown) =>
  reply.code(status).send({ error: { code, message, ...(details !== undefined ? { details } : {}) } });

/** Maps what handlers throw to HttpError (or undefined for unexpected errors). */
export function toHttpError(err: unknown): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (err instanceof StackBusyError && err.runningJobId) {
    return new HttpError(409, 'stack_busy', err.message, {
      runningJobId: err.runningJobId,
      runningJob: `/v1/jobs/${err.runningJobId}`,
      ...(err.holderStatus ? { holderStatus: err.holderStatus } : {}),
    });
  }
  if (err instanceof AutomationError) {
    const j = err.toJSON();
    return new HttpError(STATUS_BY_CODE[err.code] ?? 500, j.code, j.message, j.details);
  }
  if (err instanceof DrainingError)
    return new HttpError(503, 'draining', err.message, undefined, {
      'retry-after': String(err.retryAfterSeconds),
    });
  if (err instanceof QueueFullError)
    return new HttpError(
      429,
      'queue_full',
      err.message,
      { queued: err.queued },
      {
        'retry-after': String(err.retryAfterSeconds),
      },
    );
  if (err instanceof JobNotFoundError) return new HttpError(404, 'job_not_found', err.message);
  if (err instanceof JobFinishedError)
    return new HttpError(409, 'job_finished', err.message, { status: err.job.status });
  return undefined;
}

const CONTEXT: Record<string, string> = {
  body: 'request body',
  querystring: 'query',
  params: 'path',
  headers: 'headers',
};

export function installErrorHandling(app: FastifyInstance, allowedMethods: (url: string) => string[]) {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = CONTEXT[err.validationContext ?? 'body'] ?? 'request';
      const issues = err.validation.map((v) => ({
        key: v.instancePath.replace(/^\//, '').replace(/\//g, '.'),
        message: v.message ?? 'invalid',
      }));
      if (err.validationContext === 'params') {
        if (issues.some((i) => i.key === 'stack'))
          return send(
            reply,
            400,
            'invalid_stack_name',
            'invalid stack name: use 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit (no path characters)',
          );
        return send(reply, 400, 'invalid_job_id', 'invalid job id');
      }
      const text = issues
        .map((i) => `${i.key || '(root)'}: ${plain(i.message, err.validationContext)}`)
        .join('; ');
      return send(reply, 400, 'invalid_request', `invalid ${where}: ${text}`, { issues });
    }
    const mapped = toHttpError(err);
    if (mapped) {
      for (const [k, v] of Object.entries(mapped.headers)) void reply.header(k, v);
      if (mapped.statusCode >= 500)
        req.log.warn({ code: mapped.code, msg: mapped.message }, 'engine call failed');
      return send(reply, mapped.statusCode, mapped.code, mapped.message, mapped.details);
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      if (/forbidden prototype property|constructor property/i.test(err.message ?? ''))
        return send(
          reply,
          400,
          'invalid_request',
          'invalid request body: __proto__ and constructor.prototype keys are not allowed',
        );
      const code =
        err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? 'body_too_large'
          : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
            ? 'unsupported_media_type'
            : err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
              ? 'malformed_json'
              : 'bad_request';
      return send(reply, err.statusCode, code, err.message ?? 'bad request');
    }
    req.log.error({ err: { message: err.message, code: err.code } }, 'unhandled error');
    return send(reply, 500, 'internal', 'internal error');
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const allow = allowedMethods(path);
    if (allow.length > 0) {
      void reply.header('allow', allow.join(', '));
      return send(
        reply,
        405,
        'method_not_allowed',
        `${req.method} is not allowed here; use ${allow.join(', ')}`,
      );
    }
    return send(reply, 404, 'not_found', `no route ${req.method} ${truncate(path)}`);
  });
}

/** fastify's `frameworkErrors`: bad and over-long URLs, answered in our shape without echoing them. */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply) {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH')
    return send(reply, 414, 'uri_too_long', 'a path segment is too long (at most 200 characters)');
  return send(reply, 400, 'bad_url', 'the request URL is malformed');
}

function truncate(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}...` : s;
}

/** Zod's terse messages in plain words. */
function plain(message: string, context: string | undefined): string {
  if (/expected string, received array/.test(message) && context === 'querystring')
    return 'given more than once (each query parameter at most once)';
  if (/nonoptional|received undefined/.test(message)) return 'required';
  return message;
}
