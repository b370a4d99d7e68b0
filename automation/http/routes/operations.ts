// POST /v1/stacks/{stack}/{up,preview,refresh,destroy}: operations as jobs (202 + job id). The
// stack's stored spec is the source of truth: `up` without a spec applies it; a full spec is
// accepted (and stored) only for a stack that has none yet. Refused with 503 while the engine is
// not usable (no CLI), 503 + Retry-After while draining, 429 when the queue is full, 409 when the
// stack has a job (naming it). A POST with an Idempotency-Key is run once per key and token.
// Destroy of a protected stack is refused. POST drift is a refresh-then-preview drift check.
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { OperationKind } from '../../engine.ts';
import type { StackConfig } from '../../spec.ts';
import { requireIdentity, validateSpec } from '../../spec.ts';
import { actorOf } from '../auth.ts';
import { HttpError } from '../errors.ts';
import type { Job } from '../../jobs/jobStore.ts';
import {
  Accepted,
  destroyBody,
  driftBody,
  errors,
  idempotencyHeaders,
  previewBody,
  refreshBody,
  stackParams,
  upBody,
} from '../schemas.ts';
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

    type Body = {
      savePlan?: boolean;
      planFrom?: string;
      message?: string;
      remove?: boolean;
      confirmReplace?: boolean;
      targets?: string[];
      replace?: string[];
      refresh?: boolean;
      expectNoChanges?: boolean;
    };
    async function submit(
      operation: OperationKind,
      stack: string,
      who: string,
      body: Body,
      spec?: StackConfig,
      drift = false,
    ) {
      // The engine must be usable before a job is accepted (as documented: 503, not 202-then-fail).
      await engine.ready?.();
      const engineOptions = {
        ...(body.targets?.length ? { targets: body.targets } : {}),
        ...(body.replace?.length ? { replace: body.replace } : {}),
        ...(body.refresh ? { refresh: true } : {}),
        ...(body.expectNoChanges ? { expectNoChanges: true } : {}),
      };
      return runner.submit({
        stack,
        operation,
        actor: who,
        ...(spec ? { spec } : {}),
        ...(body.message ? { message: body.message } : {}),
        ...(operation === 'destroy' ? { remove: !!body.remove } : {}),
        ...(body.confirmReplace ? { confirmReplace: true } : {}),
        ...(Object.keys(engineOptions).length ? { engineOptions } : {}),
        ...(drift ? { drift: true } : {}),
        ...(body.savePlan ? { savePlan: true } : {}),
        ...(body.planFrom ? { planFrom: body.planFrom } : {}),
        ...(spec && store.getSpec(stack) ? { specVersion: store.getSpec(stack)!.version } : {}),
      });
    }

    /** The preview job whose plan an up applies: same stack, succeeded, saved, spec unchanged since. */
    function checkPlan(stack: string, planFrom: string): void {
      const p = store.getJob(planFrom);
      if (!p || p.stack !== stack || p.operation !== 'preview' || !p.options.savePlan)
        throw new HttpError(
          400,
          'invalid_plan',
          `job ${planFrom} is not a preview of ${stack} that saved a plan`,
        );
      if (p.status !== 'succeeded')
        throw new HttpError(409, 'plan_stale', `the preview ${planFrom} did not succeed (${p.status})`);
      const current = store.getSpec(stack)?.version;
      if (p.options.specVersion !== current)
        throw new HttpError(
          409,
          'plan_stale',
          `the stored spec changed since the preview ${planFrom} (version ${String(p.options.specVersion)} -> ${String(current)}): preview again`,
        );
    }

    /**
     * Idempotency-Key: the same key (per token) with the same request answers the first job again
     * (Idempotent-Replayed: true); with a different request it is a 409.
     */
    async function once(
      req: FastifyRequest,
      reply: FastifyReply,
      run: () => Promise<Job>,
    ): Promise<FastifyReply> {
      const key = req.headers['idempotency-key'];
      const token = req.token!;
      const route = `${req.method} ${req.url.split('?')[0]}`;
      const bodyHash = createHash('sha256')
        .update(JSON.stringify(req.body ?? {}))
        .digest('hex');
      if (typeof key === 'string') {
        const prior = store.idempotent(token.id, key);
        if (prior) {
          if (prior.route !== route || prior.bodyHash !== bodyHash)
            throw new HttpError(
              409,
              'idempotency_key_reused',
              'this Idempotency-Key was used for a different request',
              { jobId: prior.jobId },
            );
          const job = store.getJob(prior.jobId);
          if (job)
            return reply
              .code(202)
              .header('location', `/v1/jobs/${job.id}`)
              .header('idempotent-replayed', 'true')
              .send({ jobId: job.id, job: jobView(job, runner) });
        }
      }
      const job = await run();
      if (typeof key === 'string') store.rememberIdempotent(token.id, key, route, bodyHash, job.id);
      return reply
        .code(202)
        .header('location', `/v1/jobs/${job.id}`)
        .send({ jobId: job.id, job: jobView(job, runner) });
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
          headers: idempotencyHeaders,
          body: upBody,
          response: responses,
        },
      },
      async (req, reply) =>
        once(req, reply, async () => {
          const who = actorOf(req.token!);
          if (req.body.planFrom) {
            if (req.body.spec)
              throw new HttpError(400, 'invalid_request', 'planFrom applies a saved plan: send no spec');
            checkPlan(req.params.stack, req.body.planFrom);
          }
          const { spec, save } = specFor(req.params.stack, req.body.spec, true, who);
          const job = await submit('up', req.params.stack, who, req.body, spec);
          save?.();
          return job;
        }),
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
          headers: idempotencyHeaders,
          body: previewBody,
          response: responses,
        },
      },
      async (req, reply) =>
        once(req, reply, async () => {
          const who = actorOf(req.token!);
          if (req.body.savePlan && req.body.spec)
            throw new HttpError(400, 'invalid_request', 'savePlan previews the stored spec: send no spec');
          const { spec } = specFor(req.params.stack, req.body.spec, false, who);
          return submit('preview', req.params.stack, who, req.body, spec);
        }),
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
          headers: idempotencyHeaders,
          body: refreshBody,
          response: responses,
        },
      },
      async (req, reply) =>
        once(req, reply, () => submit('refresh', req.params.stack, actorOf(req.token!), req.body)),
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
          headers: idempotencyHeaders,
          body: destroyBody,
          response: responses,
        },
      },
      async (req, reply) =>
        once(req, reply, async () => {
          if (store.isProtected(req.params.stack)) {
            store.audit({
              actor: actorOf(req.token!),
              action: 'job.destroy',
              stack: req.params.stack,
              result: 'rejected_protected',
            });
            throw new HttpError(
              409,
              'stack_protected',
              `stack ${req.params.stack} is protected: PUT /v1/stacks/${req.params.stack}/protection {"protected": false} first`,
            );
          }
          return submit('destroy', req.params.stack, actorOf(req.token!), req.body);
        }),
    );

    app.post(
      '/v1/stacks/:stack/drift',
      {
        config: { role: 'operate' },
        schema: {
          summary:
            'Drift check: refresh, then preview the stored spec; the result says whether anything would change',
          tags: ['operations'],
          params: stackParams,
          querystring: z.strictObject({}),
          headers: idempotencyHeaders,
          body: driftBody,
          response: responses,
        },
      },
      async (req, reply) =>
        once(req, reply, async () => {
          const who = actorOf(req.token!);
          const { spec } = specFor(req.params.stack, undefined, false, who);
          return submit('preview', req.params.stack, who, { message: 'drift check' }, spec, true);
        }),
    );
  };
}
