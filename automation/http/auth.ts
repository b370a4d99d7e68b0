// Bearer authentication as one onRequest hook: every route declares the role it needs in its
// config (`config: { role: 'read' | 'operate' }`; none = public), so no handler can forget it.
// Refusals (401, 403) are audited with the route and, when known, the token; each token has its own
// request budget (429 with Retry-After past it). Runs before body parsing and validation.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { grantAllows, roleAllows, type Role, type TokenInfo, type TokenStore } from '../auth/tokens.ts';
import type { JobStore } from '../jobs/jobStore.ts';
import { HttpError } from './errors.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    role?: Role;
  }
  interface FastifyRequest {
    token?: TokenInfo;
  }
}

export interface AuthOptions {
  tokens: TokenStore;
  store: JobStore;
  /** Requests per minute per token (default unlimited). */
  perTokenPerMinute?: number;
  /** Called on every refusal (metrics). */
  onRefused?: (status: 401 | 403 | 429) => void;
}

export const actorOf = (t: TokenInfo) => `${t.name}#${t.id}`;

/**
 * A listing across stacks (jobs, audit): a stack-limited token must filter it by one of its stacks, or it
 * would read other stacks' entries.
 */
export function requireOwnStackFilter(t: TokenInfo, stack: string | undefined): void {
  const grants = t.stacks;
  if (grants && !(stack && grantAllows(grants, stack)))
    throw new HttpError(
      403,
      'forbidden',
      `this token is limited to the stacks ${grants.join(', ')}: pass ?stack=<one of them>`,
    );
}

export function bearerOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m?.[1];
}

export function installAuth(app: FastifyInstance, opts: AuthOptions): void {
  const { tokens, store } = opts;
  const buckets = new Map<string, { windowStart: number; count: number }>();
  const refuse = (req: FastifyRequest, status: 401 | 403, actor: string, detail: string) => {
    opts.onRefused?.(status);
    store.audit({
      actor,
      action: `http.${req.method} ${req.routeOptions.url ?? ''}`,
      result: status === 401 ? 'refused_unauthenticated' : 'refused_forbidden',
      detail: detail.slice(0, 300),
      ...(typeof (req.params as { stack?: unknown })?.stack === 'string'
        ? { stack: String((req.params as { stack: string }).stack).slice(0, 64) }
        : {}),
    });
  };

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const need = req.routeOptions.config?.role;
    if (!need) return;
    const bearer = bearerOf(req);
    const check = bearer ? tokens.check(bearer) : undefined;
    if (!check || !check.ok) {
      void reply.header('www-authenticate', 'Bearer realm="udpmesh"');
      const message = !bearer
        ? 'missing bearer token (Authorization: Bearer <token>)'
        : check && !check.ok && check.reason === 'expired'
          ? 'token expired'
          : 'invalid or revoked token';
      refuse(req, 401, 'anonymous', message);
      throw new HttpError(401, 'unauthorized', message);
    }
    const info = check.info;
    if (!roleAllows(info.role, need)) {
      const message = `this operation needs the ${need} role; the token has ${info.role}`;
      refuse(req, 403, actorOf(info), message);
      throw new HttpError(403, 'forbidden', message);
    }
    const stack = (req.params as { stack?: unknown } | undefined)?.stack;
    if (typeof stack === 'string' && !grantAllows(info.stacks, stack)) {
      const message = `this token is limited to the stacks ${info.stacks!.join(', ')}`;
      refuse(req, 403, actorOf(info), message);
      throw new HttpError(403, 'forbidden', message);
    }
    if (opts.perTokenPerMinute) {
      const now = Date.now();
      const b = buckets.get(info.id) ?? { windowStart: now, count: 0 };
      if (now - b.windowStart >= 60_000) {
        b.windowStart = now;
        b.count = 0;
      }
      b.count++;
      buckets.set(info.id, b);
      if (b.count > opts.perTokenPerMinute) {
        opts.onRefused?.(429);
        const retry = Math.max(1, Math.ceil((b.windowStart + 60_000 - now) / 1000));
        throw new HttpError(
          429,
          'rate_limited',
          `this token made more than ${opts.perTokenPerMinute} requests this minute`,
          undefined,
          { 'retry-after': String(retry) },
        );
      }
    }
    req.token = info;
  });
}
