// Unauthenticated meta routes: liveness (/healthz: 503 while draining), readiness (/readyz: engine
// usable, database writable, not draining), Prometheus metrics (/metrics) and the OpenAPI document.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { RouteContext } from './context.ts';

export const OPENAPI_PATH = '/openapi.json';

export function metaRoutes(
  ctx: RouteContext,
  opts: { metrics: Registry; openapi: () => unknown; dbWritable: () => boolean },
): FastifyPluginAsyncZod {
  return async (app) => {
    const Health = z.object({ status: z.enum(['ok', 'draining']) });
    app.get(
      '/healthz',
      {
        schema: {
          summary: 'Liveness: 200 ok, 503 while draining (graceful stop)',
          tags: ['meta'],
          security: [],
          querystring: z.strictObject({}),
          response: { 200: Health, 503: Health },
        },
      },
      async (_req, reply) => {
        if (ctx.runner.draining)
          return reply.code(503).header('retry-after', '30').send({ status: 'draining' });
        return { status: 'ok' as const };
      },
    );

    const Ready = z.object({
      ready: z.boolean(),
      checks: z.object({
        engine: z.object({ ok: z.boolean(), message: z.string().optional() }),
        database: z.object({ ok: z.boolean() }),
        draining: z.boolean(),
      }),
    });
    app.get(
      '/readyz',
      {
        schema: {
          summary: 'Readiness: the Pulumi CLI is usable, the database writable, not draining',
          tags: ['meta'],
          security: [],
          querystring: z.strictObject({}),
          response: { 200: Ready, 503: Ready },
        },
      },
      async (_req, reply) => {
        let engine: { ok: boolean; message?: string } = { ok: true };
        try {
          await ctx.engine.ready?.();
        } catch (err) {
          engine = { ok: false, message: (err as Error).message };
        }
        const database = { ok: opts.dbWritable() };
        const draining = ctx.runner.draining;
        const ready = engine.ok && database.ok && !draining;
        return reply.code(ready ? 200 : 503).send({ ready, checks: { engine, database, draining } });
      },
    );

    app.get(
      '/metrics',
      {
        schema: {
          summary: 'Prometheus metrics (jobs by state and operation, durations, queue, auth failures)',
          tags: ['meta'],
          security: [],
          querystring: z.strictObject({}),
          response: {
            200: { description: 'Prometheus text format', content: { 'text/plain': { schema: z.string() } } },
          },
        },
      },
      async (_req, reply) => reply.type(opts.metrics.contentType).send(await opts.metrics.metrics()),
    );

    app.get(
      OPENAPI_PATH,
      {
        schema: {
          summary: 'This OpenAPI document',
          tags: ['meta'],
          security: [],
          querystring: z.strictObject({}),
          response: { 200: z.record(z.string(), z.unknown()) },
        },
      },
      async () => opts.openapi() as Record<string, unknown>,
    );
    app.get('/.well-known/openapi.json', { schema: { hide: true } }, async () => opts.openapi());
  };
}
