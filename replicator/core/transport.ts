// The one place replication frames meet a UDP socket. The replication core only ever calls
// `Transport.send`; production binds a real socket (UdpTransport), the simulator passes its own network.
// A batched-socket layer (sendmmsg and the like) replaces UdpTransport without touching the core.
import type { Socket } from 'node:dgram';
import { bindUdp } from '../ingress/listeners.ts';

export interface Transport {
  /** Sends one frame; failures are reported through the callback given at construction, never thrown. */
  send(bytes: Buffer, port: number, address: string): void;
}

export class UdpTransport implements Transport {
  private constructor(
    private readonly socket: Socket,
    private readonly onSendError: () => void,
  ) {}

  static async bind(
    address: string,
    port: number,
    onFrame: (bytes: Buffer, from: { address: string; port: number }) => void,
    onSendError: () => void,
    onSocketError: (err: Error) => void,
  ): Promise<UdpTransport> {
    const socket = await bindUdp(address, port);
    socket.on('message', onFrame);
    socket.on('error', onSocketError);
    return new UdpTransport(socket, onSendError);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(bytes: Buffer, port: number, address: string): void {
    if (port === 0) return;
    this.socket.send(bytes, port, address, (err) => {
      if (err) this.onSendError();
    });
  }

  close(): void {
    this.socket.close();
  }
}
