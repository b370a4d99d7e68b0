// Loopback ports for the bench beyond what replicator/local/freePort.ts hands out: runs of consecutive
// free ports (a replicator with N workers binds replication port p .. p+N-1) and "is something bound
// to this UDP port yet" (for relays that print nothing when ready).
import { createSocket } from 'node:dgram';
import { freePort, isPortFree } from '../../replicator/local/freePort.ts';

/** The first of n consecutive ports that TCP and UDP can all bind on host right now. */
export async function freePortRun(n: number, host = '127.0.0.1'): Promise<number> {
  if (n <= 1) return freePort(host);
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = await freePort(host);
    let ok = base + n - 1 <= 65535;
    for (let i = 1; ok && i < n; i++) ok = await isPortFree(base + i, host);
    if (ok) return base;
  }
  throw new Error(`no run of ${n} free ports found on ${host}`);
}

/** True once some socket holds UDP host:port (an exclusive bind fails). */
export function udpPortTaken(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(true);
    });
    s.bind({ port, address: host, exclusive: true }, () => s.close(() => resolve(false)));
  });
}
