// Who may open a session (allow/deny CIDR lists, checked once per new session, not per datagram) and how
// fast a session may send (a token bucket per client).
import { BlockList, isIP } from 'node:net';

export class Admission {
  private readonly allow: BlockList | undefined;
  private readonly deny: BlockList | undefined;

  constructor(allowCidrs: readonly string[], denyCidrs: readonly string[]) {
    this.allow = allowCidrs.length > 0 ? toBlockList(allowCidrs) : undefined;
    this.deny = denyCidrs.length > 0 ? toBlockList(denyCidrs) : undefined;
  }

  /** 'allowed', or why not. IPv4-mapped IPv6 sources (a dual-stack socket) are checked as IPv4. */
  check(address: string): 'allowed' | 'denied' | 'not_allowed' {
    const addr = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (this.deny?.check(addr, type)) return 'denied';
    if (this.allow && !this.allow.check(addr, type)) return 'not_allowed';
    return 'allowed';
  }
}

function toBlockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [net, bits] = c.split('/');
    list.addSubnet(net, Number(bits), isIP(net) === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

/** Token bucket state kept on the session itself (two numbers, no timers). */
export interface Bucket {
  tokens: number;
  refilledAt: number;
}

export function takeToken(b: Bucket, now: number, ratePerSecond: number, burst: number): boolean {
  const elapsed = now - b.refilledAt;
  if (elapsed > 0) {
    b.tokens = Math.min(burst, b.tokens + (elapsed * ratePerSecond) / 1000);
    b.refilledAt = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return true;
  }
  return false;
}
