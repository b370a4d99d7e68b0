// The local backends a replicator delivers to: a static host:port list, or a DNS name re-resolved
// periodically (a headless Service). Sessions map to backends through a consistent-hash ring.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { HashRing } from './hashRing.ts';

export interface Backend {
  address: string;
  port: number;
  family: 4 | 6;
}

export function parseHostPort(hp: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(hp) ?? /^([^:]+):(\d+)$/.exec(hp);
  if (!m) throw new Error(`expected host:port, got "${hp}"`);
  const port = Number(m[2]);
  if (!(port >= 1 && port <= 65535)) throw new Error(`port out of range in "${hp}"`);
  return { host: m[1], port };
}

const key = (b: Backend): string => `${b.address}:${b.port}`;

export class BackendPool {
  private ring = new HashRing<Backend>([], key);
  version = 0;
  private timer: NodeJS.Timeout | undefined;
  lastError: string | undefined;

  constructor(private readonly onError: (msg: string) => void = () => {}) {}

  get backends(): readonly Backend[] {
    return this.ring.members;
  }

  pick(sessionKey: number): Backend | undefined {
    return this.ring.pick(sessionKey);
  }

  /** Static list (host names are resolved once here, not per datagram) or a DNS name refreshed every refreshMs. */
  async configure(backends: readonly string[], dns: string | undefined, refreshMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const targets = [...backends];
    const resolveAll = async (): Promise<void> => {
      const found: Backend[] = [];
      for (const hp of targets) found.push(...(await resolve(hp)));
      if (dns) found.push(...(await resolve(dns)));
      this.set(found);
    };
    try {
      await resolveAll();
    } catch (err) {
      this.lastError = (err as Error).message;
      this.onError(`backend resolution failed: ${this.lastError}`);
    }
    // A malformed entry was reported above; it must not make configure() reject (callers fire and forget).
    const isName = (hp: string): boolean => {
      try {
        return isIP(parseHostPort(hp).host) === 0;
      } catch {
        return false;
      }
    };
    if (dns || targets.some(isName)) {
      this.timer = setInterval(() => {
        resolveAll().catch((err: Error) => {
          // Keep the last good set: a DNS blip must not stop delivery.
          this.lastError = err.message;
          this.onError(`backend re-resolution failed, keeping ${this.ring.size} backends: ${err.message}`);
        });
      }, refreshMs);
      this.timer.unref();
    }
  }

  set(backends: Backend[]): void {
    const uniq = [...new Map(backends.map((b) => [key(b), b])).values()].sort((a, b) =>
      key(a).localeCompare(key(b)),
    );
    const same = uniq.length === this.ring.size && uniq.every((b, i) => key(b) === key(this.ring.members[i]));
    if (same) return;
    this.ring = new HashRing(uniq, key);
    this.version++;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

async function resolve(hp: string): Promise<Backend[]> {
  const { host, port } = parseHostPort(hp);
  const fam = isIP(host);
  if (fam !== 0) return [{ address: host, port, family: fam as 4 | 6 }];
  const addrs = await lookup(host, { all: true });
  return addrs.map((a) => ({ address: a.address, port, family: a.family as 4 | 6 }));
}
