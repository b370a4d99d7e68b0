// Operators: the audit log (filters by stack, actor, action, result, time; cursor pagination with
// a total) and the retention purge of old jobs, events and audit entries (itself audited). A token with
// stack grants reads the log of its stacks only and cannot purge (it would delete other stacks' history).
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { actorOf, requireOwnStackFilter } from '../auth.ts';
import { HttpError } from '../errors.ts';
import { AuditEntry, errors, queryInt, stackName } from '../schemas.ts';
import type { RouteContext } from './context.ts';

const isoTime = z.iso.datetime({ offset: true });

export function adminRoutes(ctx: RouteContext): FastifyPluginAsyncZod {
  return async (app) => {
    const { store } = ctx;
    app.get(
      '/v1/audit',
      {
        config: { role: 'operate' },
        schema: {
          summary: 'Audit log, newest first (who did what, when, with what result; refusals too)',
          tags: ['admin'],
          querystring: z.strictObject({
            stack: stackName.optional(),
            actor: z.string().min(1).max(200).optional(),
            action: z.string().min(1).max(200).optional(),
            result: z.string().min(1).max(100).optional(),
            since: isoTime.optional(),
            until: isoTime.optional(),
            before: queryInt(1, 999_999_999)
              .optional()
              .describe('Cursor: the nextBefore of the previous page'),
            limit: queryInt(1, 500).optional(),
          }),
          response: {
            200: z.object({
              entries: z.array(AuditEntry),
              total: z.number().int().describe('Entries matching the filters (all pages)'),
              nextBefore: z.number().int().optional().describe('Pass as ?before= for the next page'),
            }),
            ...errors(400, 401, 403, 429),
          },
        },
      },
      async (req) => {
        // A stack-limited token reads the log of one of its stacks at a time (as GET /v1/jobs).
        requireOwnStackFilter(req.token!, req.query.stack);
        const limit = req.query.limit ?? 100;
        const entries = store.listAudit({ ...req.query, limit });
        const last = entries.at(-1);
        return {
          entries,
          total: store.countAudit(req.query),
          ...(entries.length === limit && last ? { nextBefore: last.id } : {}),
        };
      },
    );

    app.post(
      '/v1/admin/purge',
      {
        config: { role: 'operate' },
        schema: {
          summary: 'Retention: delete finished jobs, their events and audit entries older than a time',
          tags: ['admin'],
          querystring: z.strictObject({}),
          body: z.strictObject({ olderThanDays: z.number().int().min(1).max(36_500) }),
          response: {
            200: z.object({
              before: z.string(),
              jobs: z.number().int(),
              events: z.number().int(),
              audit: z.number().int(),
            }),
            ...errors(400, 401, 403, 415, 429),
          },
        },
      },
      async (req) => {
        // A purge deletes every stack's history: only a token without stack grants may do it.
        const grants = req.token!.stacks;
        if (grants)
          throw new HttpError(
            403,
            'forbidden',
            `a purge removes every stack's history; this token is limited to the stacks ${grants.join(', ')}`,
          );
        const before = new Date(Date.now() - req.body.olderThanDays * 86_400_000).toISOString();
        const removed = store.purge(before);
        store.audit({
          actor: actorOf(req.token!),
          action: 'admin.purge',
          result: 'purged',
          detail: `before ${before}: ${removed.jobs} jobs, ${removed.events} events, ${removed.audit} audit entries`,
        });
        return { before, ...removed };
      },
    );
  };
}
