// The one place replication frames meet a UDP socket. The replication core only ever calls
// `Transport.send`; production binds a socket of the I/O seam (UdpTransport over replicator/io: `batched`
// = recvmmsg/sendmmsg with UDP GSO/GRO, `dgram` = Node's sockets), the simulator passes its own network.
// With batched I/O the frames of one event-loop turn leave together (one sendmmsg, GSO per peer) when the
// owner calls flush() after building them, or at the latest on the turn's setImmediate; never on a timer.
import { bindUdp } from '../ingress/listeners.ts';
import type { UdpIo, UdpSocketIo } from '../io/udpIo.ts';

export interface Transport {
  /** Sends one frame; failures are reported through the callback given at construction, never thrown. */
  send(bytes: Buffer, port: number, address: string): void;
}

export class UdpTransport implements Transport {
  private constructor(
    private readonly io: UdpIo,
    private readonly socket: UdpSocketIo,
  ) {}

  static async bind(
    io: UdpIo,
    address: string,
    port: number,
    onFrame: (bytes: Buffer) => void,
    onSendError: () => void,
    onSocketError: (err: Error) => void,
  ): Promise<UdpTransport> {
    // GRO: a peer's burst of frames is read as one coalesced datagram and split in the addon.
    const socket = await bindUdp(io, address, port, { gro: true });
    // A frame's records are views of it that the reorder buffer may keep: copy(i), since the batched
    // ring is reused after the callback (dgram: its own Buffer, no copy).
    socket.onBatch = (b) => {
      for (let i = 0; i < b.count; i++) onFrame(b.copy(i));
    };
    socket.onError = (err) => {
      if ((err as NodeJS.ErrnoException).syscall?.startsWith('send')) onSendError();
      onSocketError(err);
    };
    return new UdpTransport(io, socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(bytes: Buffer, port: number, address: string): void {
    if (port === 0) return;
    this.socket.send(bytes, port, address);
  }

  /** Sends what is queued now (batched); called right after the frames of a turn were built. */
  flush(): void {
    this.io.flush();
  }

  bufferSizes(): { receive: number; send: number } {
    return this.socket.bufferSizes();
  }

  close(): void {
    this.socket.close();
  }
}
