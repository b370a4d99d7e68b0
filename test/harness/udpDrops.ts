// Kernel-side UDP drop counters, to tell a harness/host problem (a socket buffer overflowed on
// loopback) from a replicator bug when datagrams go missing: per local port from /proc/net/udp(6)
// ("drops" column) and host-wide from /proc/net/snmp (Udp: RcvbufErrors, InErrors).
import { readFileSync } from 'node:fs';

/** Drops per local UDP port (summed over sockets on that port). */
export function socketDropsByPort(): Map<number, number> {
  const out = new Map<number, number>();
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 13) continue;
      const port = parseInt(f[1]!.split(':')[1] ?? '', 16);
      const drops = Number(f[f.length - 1]);
      if (Number.isFinite(port) && Number.isFinite(drops)) out.set(port, (out.get(port) ?? 0) + drops);
    }
  }
  return out;
}

export function dropsOnPorts(ports: number[]): Record<number, number> {
  const all = socketDropsByPort();
  const out: Record<number, number> = {};
  for (const p of ports) out[p] = all.get(p) ?? 0;
  return out;
}

/** Host-wide UDP counters (Udp: line of /proc/net/snmp). */
export function hostUdpCounters(): Record<string, number> {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    const keys = lines[0]!.split(/\s+/).slice(1);
    const vals = lines[1]!.split(/\s+/).slice(1).map(Number);
    const out: Record<string, number> = {};
    keys.forEach((k, i) => (out[k] = vals[i]!));
    return out;
  } catch {
    return {};
  }
}
