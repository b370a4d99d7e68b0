// The portal-facing HTTP API (fastify, done the fastify way): zod schemas through a type provider
// validate requests and serialize responses, @fastify/swagger generates the OpenAPI document from
// those same schemas, authentication is one hook (routes declare their role), and each resource
// has its route plugin (routes/). Operations are jobs: POST answers 202 with the job id; the job's
// status, SSE event stream and log are under /v1/jobs/{id}.
import fastifySwagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import {
  createJsonSchemaTransform,
  createJsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { TokenStore } from '../auth/tokens.ts';
import type { StackEngine } from '../engine.ts';
import type { JobRunner } from '../jobs/jobRunner.ts';
import type { JobStore } from '../jobs/jobStore.ts';
import { StackReads } from '../jobs/reads.ts';
import { stackConfigJsonSchema } from '../spec.ts';
import { installAuth } from './auth.ts';
import { frameworkErrors, HttpError, installErrorHandling } from './errors.ts';
import { createMetrics } from './metrics.ts';
import { redactUrl } from './redactUrl.ts';
import { adminRoutes } from './routes/admin.ts';
import type { RouteContext } from './routes/context.ts';
import { jobRoutes } from './routes/jobs.ts';
import { metaRoutes, OPENAPI_PATH } from './routes/meta.ts';
import { operationRoutes } from './routes/operations.ts';
import { stackRoutes } from './routes/stacks.ts';
import { registry } from './schemas.ts';

export { OPENAPI_PATH };
export { HttpError };

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
  /** How often an open event stream re-checks its token (default 5 s). */
  authRecheckMs?: number;
  /** Open event streams at most (default 200); more get 429. */
  maxStreams?: number;
  /** Engine reads (list, outputs, history) running at once (default 2). */
  readConcurrency?: number;
  /** How long a read answer is reused (default 10 s; a job on the stack drops it). */
  readCacheMs?: number;
  /** Requests per minute per token (default unlimited). */
  perTokenPerMinute?: number;
  /** True while the database accepts writes (readiness). */
  dbWritable?: () => boolean;
}

const VERSION = '1.1.0';

/**
 * JSON bodies: malformed text is `malformed_json`; valid JSON with a `__proto__` or `constructor`
 * key is an unknown field (`invalid_request`), never merged into any object's prototype.
 */
function parseJson(_req: unknown, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (text.trim() === '')
    return done(new HttpError(400, 'malformed_json', 'the request body is empty; send a JSON object'));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return done(
      new HttpError(400, 'malformed_json', `the request body is not valid JSON: ${(err as Error).message}`),
    );
  }
  const bad = forbiddenKey(value);
  if (bad) return done(new HttpError(400, 'invalid_request', `invalid request body: ${bad}: forbidden key`));
  done(null, value);
}

function forbiddenKey(v: unknown, at = ''): string | undefined {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const r = forbiddenKey(v[i], `${at}${at ? '.' : ''}${i}`);
      if (r) return r;
    }
  } else if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) {
      const here = `${at}${at ? '.' : ''}${k}`;
      if (k === '__proto__' || k === 'constructor' || k === 'prototype') return here;
      const r = forbiddenKey((v as Record<string, unknown>)[k], here);
      if (r) return r;
    }
  }
  return undefined;
}

export async function buildApp(opts: AppOptions) {
  const { engine, store, runner, tokens } = opts;
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger as unknown as FastifyBaseLogger } : { logger: false }),
    // Requests are logged once, on response, with credentials removed from the URL (onResponse).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 256 * 1024,
    // Job ids, stack names: a long URL is a bad request, not something to route.
    routerOptions: { maxParamLength: 200 },
    frameworkErrors,
    return503OnClosing: true,
    // On close, drop keep-alive connections at once (open event streams are ended in preClose).
    forceCloseConnections: true,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Only JSON bodies (and JSON merge patches): text/plain would otherwise reach handlers as a string.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser(
    ['application/json', 'application/merge-patch+json'],
    { parseAs: 'string' },
    parseJson,
  );

  // A POST without a body is an empty object (the body schemas then say what is missing).
  app.addHook('preValidation', async (req) => {
    if (req.body === null || req.body === undefined) req.body = {};
  });

  app.addHook('onResponse', async (req, reply) => {
    req.log.info(
      {
        method: req.method,
        url: redactUrl(req.url),
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        ...(req.token ? { actor: `${req.token.name}#${req.token.id}` } : {}),
      },
      'request',
    );
  });

  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  const reads = new StackReads(engine, {
    ...(opts.readConcurrency ? { concurrency: opts.readConcurrency } : {}),
    ...(opts.readCacheMs !== undefined ? { ttlMs: opts.readCacheMs } : {}),
  });
  runner.finished.on('finished', (job: { stack: string } | undefined) => job && reads.invalidate(job.stack));

  const metrics = createMetrics(store, runner, streams);
  installAuth(app, {
    tokens,
    store,
    ...(opts.perTokenPerMinute ? { perTokenPerMinute: opts.perTokenPerMinute } : {}),
    onRefused: (status) => metrics.authRefused.inc({ status: String(status) }),
  });

  // Paths the API serves, for 405 (known path, other method) versus 404.
  const routes: { method: string; pattern: RegExp }[] = [];
  app.addHook('onRoute', (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    const pattern = new RegExp(`^${r.url.replace(/:[^/]+/g, '[^/]+')}$`);
    for (const m of methods) routes.push({ method: String(m), pattern });
  });
  installErrorHandling(app, (path) => [
    ...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method)),
  ]);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'udpmesh automation service',
        version: VERSION,
        description:
          'Drives the udpmesh Pulumi stacks. Operations run as jobs (202 + job id); one job per stack at a time. ' +
          'Authenticate with `Authorization: Bearer <token>` (roles: read, operate). See docs/automation.md.',
      },
      servers: [{ url: '/' }],
      security: [{ bearer: [] }],
      tags: [
        { name: 'operations' },
        { name: 'specs' },
        { name: 'stacks' },
        { name: 'jobs' },
        { name: 'admin' },
        { name: 'meta' },
      ],
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'udpm_<id>_<secret>, created with `udpmesh token create`',
          },
        },
      },
    },
    transform: createJsonSchemaTransform({ schemaRegistry: registry }),
    transformObject: (doc) => {
      const out = createJsonSchemaTransformObject({ schemaRegistry: registry })(doc) as {
        components?: { schemas?: Record<string, unknown> };
      };
      // The stack spec is documented by the infra schema's own JSON Schema (one source of truth).
      const { $schema: _drop, ...spec } = stackConfigJsonSchema as Record<string, unknown>;
      if (out.components?.schemas) {
        for (const k of ['StackConfig', 'StackConfigInput'])
          if (k in out.components.schemas) out.components.schemas[k] = spec;
      }
      return out as never;
    },
  });

  const ctx: RouteContext = {
    engine,
    store,
    runner,
    tokens,
    reads,
    heartbeatMs: opts.heartbeatMs ?? 15_000,
    authRecheckMs: opts.authRecheckMs ?? 5_000,
    maxStreams: opts.maxStreams ?? 200,
    streams,
  };
  await app.register(
    metaRoutes(ctx, {
      metrics: metrics.registry,
      openapi: () => app.swagger(),
      dbWritable: opts.dbWritable ?? (() => true),
    }),
  );
  await app.register(operationRoutes(ctx));
  await app.register(stackRoutes(ctx));
  await app.register(jobRoutes(ctx));
  await app.register(adminRoutes(ctx));
  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
