// Stacks: reads through the engine (coalesced, cached, bounded: jobs/reads.ts), the stored spec
// (GET; PATCH = JSON merge patch; PUT = explicit full replacement), and the operator's stale-lock
// clear after a crash (audited).
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Redactor, redactOutputs } from '../../redact.ts';
import { mergePatch, requireIdentity, validateSpec } from '../../spec.ts';
import { grantAllows } from '../../auth/tokens.ts';
import { actorOf } from '../auth.ts';
import { HttpError } from '../errors.ts';
import {
  errors,
  HistoryEntry,
  Output,
  queryInt,
  StackConfig,
  stackParams,
  StackSummary,
  StoredSpec,
} from '../schemas.ts';
import type { RouteContext } from './context.ts';

export function stackRoutes(ctx: RouteContext): FastifyPluginAsyncZod {
  return async (app) => {
    const { reads, store } = ctx;
    const engineErrors = errors(400, 401, 403, 404, 429, 502, 503);

    app.get(
      '/v1/stacks',
      {
        config: { role: 'read' },
        schema: {
          summary: 'Stacks in the backend',
          tags: ['stacks'],
          querystring: z.strictObject({}),
          response: { 200: z.object({ stacks: z.array(StackSummary) }), ...engineErrors },
        },
      },
      async (req) => ({
        stacks: (await reads.listStacks()).filter((s) => grantAllows(req.token!.stacks, s.name)),
      }),
    );

    app.get(
      '/v1/stacks/:stack/outputs',
      {
        config: { role: 'read' },
        schema: {
          summary: 'Stack outputs (secret values hidden)',
          tags: ['stacks'],
          params: stackParams,
          querystring: z.strictObject({}),
          response: {
            200: z.object({ stack: z.string(), outputs: z.record(z.string(), Output) }),
            ...engineErrors,
          },
        },
      },
      // The engine redacts already; doing it again here keeps the guarantee independent of it.
      async (req) => ({
        stack: req.params.stack,
        outputs: redactOutputs(await reads.outputs(req.params.stack), new Redactor()),
      }),
    );

    app.get(
      '/v1/stacks/:stack/history',
      {
        config: { role: 'read' },
        schema: {
          summary: 'Pulumi update history, newest first',
          tags: ['stacks'],
          params: stackParams,
          querystring: z.strictObject({
            pageSize: queryInt(1, 500).optional(),
            page: queryInt(1, 1_000_000).optional(),
          }),
          response: {
            200: z.object({ stack: z.string(), updates: z.array(HistoryEntry) }),
            ...engineErrors,
          },
        },
      },
      async (req) => ({
        stack: req.params.stack,
        updates: await reads.history(req.params.stack, req.query),
      }),
    );

    const specView = (stack: string) => {
      const s = store.getSpec(stack);
      if (!s) throw new HttpError(404, 'spec_not_found', `stack ${stack} has no stored spec`);
      return {
        ...s,
        spec: s.spec as Record<string, unknown>,
        resolved: validateSpec(s.spec) as Record<string, unknown>,
      };
    };
    const save = (stack: string, raw: unknown, by: string, action: string) => {
      requireIdentity(raw);
      validateSpec(raw);
      const saved = store.putSpec(stack, raw, by);
      store.audit({ actor: by, action, stack, result: 'stored', detail: `version ${saved.version}` });
      return specView(stack);
    };

    app.get(
      '/v1/stacks/:stack/spec',
      {
        config: { role: 'read' },
        schema: {
          summary: "The stack's stored spec (the source of truth for up)",
          tags: ['specs'],
          params: stackParams,
          querystring: z.strictObject({}),
          response: { 200: StoredSpec, ...errors(400, 401, 403, 404, 429) },
        },
      },
      async (req) => specView(req.params.stack),
    );
    app.put(
      '/v1/stacks/:stack/spec',
      {
        config: { role: 'operate' },
        schema: {
          summary: 'Replace the stored spec (a full spec; regions and project must be given)',
          tags: ['specs'],
          params: stackParams,
          querystring: z.strictObject({}),
          body: StackConfig,
          response: { 200: StoredSpec, ...errors(400, 401, 403, 413, 415, 429) },
        },
      },
      async (req) => save(req.params.stack, req.body, actorOf(req.token!), 'spec.put'),
    );
    app.patch(
      '/v1/stacks/:stack/spec',
      {
        config: { role: 'operate' },
        schema: {
          summary: 'Change the stored spec by JSON merge patch (RFC 7396: null deletes a key)',
          tags: ['specs'],
          params: stackParams,
          querystring: z.strictObject({}),
          body: z.record(z.string(), z.unknown()),
          response: { 200: StoredSpec, ...errors(400, 401, 403, 404, 413, 415, 429) },
        },
      },
      async (req) => {
        const current = store.getSpec(req.params.stack);
        if (!current)
          throw new HttpError(
            404,
            'spec_not_found',
            `stack ${req.params.stack} has no stored spec: PUT a full one first`,
          );
        return save(req.params.stack, mergePatch(current.spec, req.body), actorOf(req.token!), 'spec.patch');
      },
    );

    const Protection = z.object({ stack: z.string(), protected: z.boolean() });
    app.get(
      '/v1/stacks/:stack/protection',
      {
        config: { role: 'read' },
        schema: {
          summary: 'Whether the stack is protected from destroy',
          tags: ['stacks'],
          params: stackParams,
          querystring: z.strictObject({}),
          response: { 200: Protection, ...errors(400, 401, 403, 429) },
        },
      },
      async (req) => ({ stack: req.params.stack, protected: store.isProtected(req.params.stack) }),
    );
    app.put(
      '/v1/stacks/:stack/protection',
      {
        config: { role: 'operate' },
        schema: {
          summary: 'Protect the stack from destroy (or lift the protection); audited',
          tags: ['stacks'],
          params: stackParams,
          querystring: z.strictObject({}),
          body: z.strictObject({ protected: z.boolean() }),
          response: { 200: Protection, ...errors(400, 401, 403, 413, 415, 429) },
        },
      },
      async (req) => {
        store.setProtected(req.params.stack, req.body.protected, actorOf(req.token!));
        store.audit({
          actor: actorOf(req.token!),
          action: 'stack.protection',
          stack: req.params.stack,
          result: req.body.protected ? 'protected' : 'unprotected',
        });
        return { stack: req.params.stack, protected: req.body.protected };
      },
    );

    app.post(
      '/v1/stacks/:stack/lock/clear',
      {
        config: { role: 'operate' },
        schema: {
          summary: "Clear a stack's stale lock after a crash (refused while a live job holds it)",
          tags: ['stacks'],
          params: stackParams,
          querystring: z.strictObject({}),
          body: z.strictObject({ reason: z.string().min(1).max(500) }),
          response: {
            200: z.object({ stack: z.string(), cleared: z.boolean(), previousJobId: z.string().optional() }),
            ...errors(400, 401, 403, 409, 415, 429),
          },
        },
      },
      async (req) => {
        const stack = req.params.stack;
        const who = actorOf(req.token!);
        const lock = store.lockOf(stack);
        if (lock && ctx.runner.isActive(lock.jobId))
          throw new HttpError(
            409,
            'lock_held',
            `job ${lock.jobId} is active on ${stack}: cancel it instead`,
            {
              runningJobId: lock.jobId,
            },
          );
        const cleared = store.clearLock(stack);
        store.audit({
          actor: who,
          action: 'stack.lock.clear',
          stack,
          ...(lock ? { jobId: lock.jobId } : {}),
          result: cleared ? 'cleared' : 'no_lock',
          detail: req.body.reason,
        });
        return { stack, cleared, ...(lock ? { previousJobId: lock.jobId } : {}) };
      },
    );
  };
}
