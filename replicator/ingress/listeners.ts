// Binds the ingress UDP sockets: every configured address x port, IPv4 and IPv6, through the I/O seam
// (replicator/io: batched or dgram).
import { isIP } from 'node:net';
import type { UdpIo, UdpSocketIo } from '../io/udpIo.ts';

export interface Listener {
  socket: UdpSocketIo;
  address: string;
  port: number;
}

export function familyOf(address: string): 'udp4' | 'udp6' {
  return isIP(address) === 6 ? 'udp6' : 'udp4';
}

/** Bigger kernel buffers absorb bursts between event-loop turns (the achieved size is in /status). */
export const SOCKET_BUFFER_BYTES = 8 * 1024 * 1024;

export function bindUdp(
  io: UdpIo,
  address: string,
  port: number,
  opts: { ipv6Only?: boolean; reusePort?: boolean; gro?: boolean } = {},
): Promise<UdpSocketIo> {
  return io.bind({
    address,
    port,
    ipv6Only: opts.ipv6Only,
    reusePort: opts.reusePort,
    gro: opts.gro,
    receiveBufferBytes: SOCKET_BUFFER_BYTES,
    sendBufferBytes: SOCKET_BUFFER_BYTES,
  });
}

export async function bindListeners(
  io: UdpIo,
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
        const socket = await bindUdp(io, address, port, {
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
