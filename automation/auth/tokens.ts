// Bearer tokens for the service. A token is `udpm_<id>_<secret>`; only sha256(secret) is stored
// (the secret is 256 random bits, so a fast hash is as good as a slow one here), compared in
// constant time. Roles: `read` (status, events, outputs, history) and `operate` (also up, preview,
// refresh, destroy, cancel).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';

export type Role = 'read' | 'operate';
export const ROLES: readonly Role[] = ['read', 'operate'];

export interface TokenInfo {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  revokedAt?: string;
  lastUsedAt?: string;
  /** After this instant the token is refused (401 token expired). */
  expiresAt?: string;
  /** Stack grants: name patterns (`*` wildcard); absent = every stack. */
  stacks?: string[];
}

/** Whether a token with these grants may act on the stack. */
export function grantAllows(grants: string[] | undefined, stack: string): boolean {
  if (!grants) return true;
  return grants.some((g) =>
    new RegExp(`^${g.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(stack),
  );
}

export const GRANT_PATTERN = /^[A-Za-z0-9*][A-Za-z0-9._*-]{0,63}$/;

export type TokenCheck =
  { ok: true; info: TokenInfo } | { ok: false; reason: 'invalid' | 'revoked' | 'expired' };

const TOKEN_PATTERN = /^udpm_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export function roleAllows(have: Role, need: Role): boolean {
  return have === 'operate' || need === 'read';
}

type Row = Record<string, unknown>;
const toInfo = (r: Row): TokenInfo => ({
  id: String(r.id),
  name: String(r.name),
  role: String(r.role) as Role,
  createdAt: String(r.created_at),
  ...(r.revoked_at != null ? { revokedAt: String(r.revoked_at) } : {}),
  ...(r.last_used_at != null ? { lastUsedAt: String(r.last_used_at) } : {}),
  ...(r.expires_at != null ? { expiresAt: String(r.expires_at) } : {}),
  ...(r.stacks != null ? { stacks: JSON.parse(String(r.stacks)) as string[] } : {}),
});

export class TokenStore {
  constructor(private readonly db: DatabaseSync) {}

  /** Creates a token; the returned `token` is shown once and never stored. */
  create(
    name: string,
    role: Role,
    opts: { expiresAt?: Date; stacks?: string[] } = {},
  ): { token: string; info: TokenInfo } {
    for (const g of opts.stacks ?? [])
      if (!GRANT_PATTERN.test(g))
        throw new Error(`stack grant ${JSON.stringify(g)}: use [A-Za-z0-9._-] and *`);
    if (!ROLES.includes(role))
      throw new Error(`unknown role ${JSON.stringify(role)} (use ${ROLES.join(' or ')})`);
    if (!/^[\w .@:-]{1,64}$/.test(name))
      throw new Error('token name: 1-64 characters from [A-Za-z0-9_ .@:-]');
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    this.db
      .prepare(
        'INSERT INTO tokens (id, name, role, hash, created_at, expires_at, stacks) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        id,
        name,
        role,
        sha256(secret).toString('hex'),
        new Date().toISOString(),
        opts.expiresAt ? opts.expiresAt.toISOString() : null,
        opts.stacks ? JSON.stringify(opts.stacks) : null,
      );
    return { token: `udpm_${id}_${secret}`, info: this.get(id)! };
  }

  get(id: string): TokenInfo | undefined {
    const r = this.db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as Row | undefined;
    return r ? toInfo(r) : undefined;
  }

  list(): TokenInfo[] {
    return (this.db.prepare('SELECT * FROM tokens ORDER BY created_at').all() as Row[]).map(toInfo);
  }

  revoke(id: string): boolean {
    const r = this.db
      .prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL')
      .run(new Date().toISOString(), id);
    return Number(r.changes) > 0;
  }

  /** The token's identity if it is valid, not revoked and not expired. */
  verify(token: string): TokenInfo | undefined {
    const c = this.check(token);
    return c.ok ? c.info : undefined;
  }

  /**
   * Checks a token and says why it is refused. Records the last use (at most once a second per
   * token, so streams that re-check do not write constantly).
   */
  check(token: string, opts: { touch?: boolean } = {}): TokenCheck {
    const m = TOKEN_PATTERN.exec(token);
    if (!m) return { ok: false, reason: 'invalid' };
    const r = this.db.prepare('SELECT * FROM tokens WHERE id = ?').get(m[1]!) as Row | undefined;
    if (!r) return { ok: false, reason: 'invalid' };
    const stored = Buffer.from(String(r.hash), 'hex');
    const given = sha256(m[2]!);
    if (stored.length !== given.length || !timingSafeEqual(stored, given))
      return { ok: false, reason: 'invalid' };
    if (r.revoked_at != null) return { ok: false, reason: 'revoked' };
    if (r.expires_at != null && Date.parse(String(r.expires_at)) <= Date.now())
      return { ok: false, reason: 'expired' };
    const now = new Date();
    if (opts.touch !== false) {
      const last = r.last_used_at != null ? Date.parse(String(r.last_used_at)) : 0;
      if (now.getTime() - last >= 1000) {
        this.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(now.toISOString(), m[1]!);
        r.last_used_at = now.toISOString();
      }
    }
    return { ok: true, info: toInfo(r) };
  }
}
