// Binds the ingress UDP sockets: every configured address x port, IPv4 and IPv6.
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';

export interface Listener {
  socket: Socket;
  address: string;
  port: number;
}

export function familyOf(address: string): 'udp4' | 'udp6' {
  return isIP(address) === 6 ? 'udp6' : 'udp4';
}

export async function bindUdp(
  address: string,
  port: number,
  opts: { ipv6Only?: boolean; reusePort?: boolean } = {},
): Promise<Socket> {
  const socket = createSocket({
    type: familyOf(address),
    ipv6Only: opts.ipv6Only,
    reusePort: opts.reusePort,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  try {
    // Bigger kernel buffers absorb bursts between event-loop turns.
    socket.setRecvBufferSize(8 * 1024 * 1024);
    socket.setSendBufferSize(8 * 1024 * 1024);
  } catch {
    /* capped by net.core.rmem_max: the default still works */
  }
  return socket;
}

export async function bindListeners(
  addresses: readonly string[],
  ports: readonly number[],
  reusePort = false,
): Promise<Listener[]> {
  const out: Listener[] = [];
  const hasV4 = addresses.some((a) => familyOf(a) === 'udp4');
  try {
    for (const address of addresses) {
      for (const port of ports) {
        // With both 0.0.0.0 and :: configured, the IPv6 socket must not also claim IPv4.
        const socket = await bindUdp(address, port, {
          ipv6Only: familyOf(address) === 'udp6' && hasV4,
          reusePort,
        });
        out.push({ socket, address, port: socket.address().port });
      }
    }
  } catch (err) {
    for (const l of out) l.socket.close();
    throw err;
  }
  return out;
}
