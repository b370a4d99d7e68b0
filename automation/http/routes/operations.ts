// POST /v1/stacks/{stack}/{up,preview,refresh,destroy}: operations as jobs (202 + job id). The
// stack's stored spec is the source of truth: `up` without a spec applies it; a full spec is
// accepted (and stored) only for a stack that has none yet. Refused with 503 while the engine is
// not usable (no CLI), 503 + Retry-After while draining, 429 when the queue is full, 409 when the
// stack has a job (naming it).
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { OperationKind } from '../../engine.ts';
import type { StackConfig } from '../../spec.ts';
import { requireIdentity, validateSpec } from '../../spec.ts';
import { actorOf } from '../auth.ts';
import { HttpError } from '../errors.ts';
import { Accepted, destroyBody, errors, previewBody, refreshBody, stackParams, upBody } from '../schemas.ts';
import { jobView, type RouteContext } from './context.ts';

const SUMMARY: Record<OperationKind, string> = {
  up: 'Create or update the stack from its stored spec',
  preview: 'Preview what up would change',
  refresh: 'Refresh the stack state from the clouds',
  destroy: 'Destroy every resource of the stack (optionally remove the stack)',
};

export function operationRoutes(ctx: RouteContext): FastifyPluginAsyncZod {
  return async (app) => {
    const { runner, store, engine } = ctx;
    const responses = { 202: Accepted, ...errors(400, 401, 403, 404, 409, 413, 415, 429, 503) };

    /** The spec an up or preview runs with: the stored one, or a full one for a new stack. */
    function specFor(
      stack: string,
      given: Record<string, unknown> | undefined,
      keep: boolean,
      by: string,
    ): { spec: StackConfig; save?: () => void } {
      const stored = store.getSpec(stack);
      if (given === undefined) {
        if (!stored)
          throw new HttpError(
            400,
            'spec_required',
            `stack ${stack} has no stored spec: send spec (the full stack spec) or PUT /v1/stacks/${stack}/spec first`,
          );
        return { spec: validateSpec(stored.spec) };
      }
      runner.assertFree(stack, by, 'up');
      if (stored && keep)
        throw new HttpError(
          409,
          'spec_exists',
          `stack ${stack} has a stored spec (version ${stored.version}): change it with PATCH (merge) or PUT (full replacement) /v1/stacks/${stack}/spec, then POST up without a spec`,
          { specVersion: stored.version },
        );
      requireIdentity(given);
      const spec = validateSpec(given);
      return keep ? { spec, save: () => void store.putSpec(stack, given, by) } : { spec };
    }

    async function submit(
      operation: OperationKind,
      stack: string,
      who: string,
      body: { message?: string; remove?: boolean; confirmReplace?: boolean },
      spec?: StackConfig,
    ) {
      // The engine must be usable before a job is accepted (as documented: 503, not 202-then-fail).
      await engine.ready?.();
      return runner.submit({
        stack,
        operation,
        actor: who,
        ...(spec ? { spec } : {}),
        ...(body.message ? { message: body.message } : {}),
        ...(operation === 'destroy' ? { remove: !!body.remove } : {}),
        ...(body.confirmReplace ? { confirmReplace: true } : {}),
      });
    }

    app.post(
      '/v1/stacks/:stack/up',
      {
        config: { role: 'operate' },
        schema: {
          summary: SUMMARY.up,
          tags: ['operations'],
          params: stackParams,
          querystring: z.strictObject({}),
          body: upBody,
          response: responses,
        },
      },
      async (req, reply) => {
        const who = actorOf(req.token!);
        const { spec, save } = specFor(req.params.stack, req.body.spec, true, who);
        const job = await submit('up', req.params.stack, who, req.body, spec);
        save?.();
        return reply
          .code(202)
          .header('location', `/v1/jobs/${job.id}`)
          .send({ jobId: job.id, job: jobView(job, runner) });
      },
    );
    app.post(
      '/v1/stacks/:stack/preview',
      {
        config: { role: 'operate' },
        schema: {
          summary: SUMMARY.preview,
          tags: ['operations'],
          params: stackParams,
          querystring: z.strictObject({}),
          body: previewBody,
          response: responses,
        },
      },
      async (req, reply) => {
        const who = actorOf(req.token!);
        const { spec } = specFor(req.params.stack, req.body.spec, false, who);
        const job = await submit('preview', req.params.stack, who, req.body, spec);
        return reply
          .code(202)
          .header('location', `/v1/jobs/${job.id}`)
          .send({ jobId: job.id, job: jobView(job, runner) });
      },
    );
    app.post(
      '/v1/stacks/:stack/refresh',
      {
        config: { role: 'operate' },
        schema: {
          summary: SUMMARY.refresh,
          tags: ['operations'],
          params: stackParams,
          querystring: z.strictObject({}),
          body: refreshBody,
          response: responses,
        },
      },
      async (req, reply) => {
        const job = await submit('refresh', req.params.stack, actorOf(req.token!), req.body);
        return reply
          .code(202)
          .header('location', `/v1/jobs/${job.id}`)
          .send({ jobId: job.id, job: jobView(job, runner) });
      },
    );
    app.post(
      '/v1/stacks/:stack/destroy',
      {
        config: { role: 'operate' },
        schema: {
          summary: SUMMARY.destroy,
          tags: ['operations'],
          params: stackParams,
          querystring: z.strictObject({}),
          body: destroyBody,
          response: responses,
        },
      },
      async (req, reply) => {
        const job = await submit('destroy', req.params.stack, actorOf(req.token!), req.body);
        return reply
          .code(202)
          .header('location', `/v1/jobs/${job.id}`)
          .send({ jobId: job.id, job: jobView(job, runner) });
      },
    );
  };
}
