// Sockets towards the local backends. A connected UDP socket sends without the per-send address lookup
// (a closure and a nextTick in Node's dgram), which the profile showed as the largest cost of a send:
// so each backend gets one connected socket for replicated deliveries, used once its connect completes
// (until then a shared unconnected socket per family carries the traffic). Replies that arrive on them
// belong to datagrams that entered elsewhere (or to one-way mode): they are counted and discarded.
// Sockets come from the I/O seam (replicator/io): with batched I/O a run of deliveries to one backend
// leaves in one sendmmsg/GSO message.
import type { RecvBatch, UdpIo, UdpSocketIo } from '../io/udpIo.ts';
import type { Backend } from './backendPool.ts';

interface Connected {
  socket: UdpSocketIo;
  ready: boolean;
}

export class BackendSockets {
  private readonly connected = new Map<string, Connected>();
  private shared: { udp4?: UdpSocketIo; udp6?: UdpSocketIo } = {};
  private closed = false;
  private readonly onBatch = (batch: RecvBatch): void => this.onReply(batch.count);

  constructor(
    private readonly io: UdpIo,
    private readonly onReply: (count: number) => void,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Sends bytes [offset, offset+length) of payload (all of it by default) to the backend. */
  send(b: Backend, payload: Buffer, offset = 0, length = payload.length - offset): void {
    const key = `${b.address}|${b.port}`;
    let c = this.connected.get(key);
    if (c === undefined && !this.closed) {
      const socket = this.newSocket(b.family);
      const entry: Connected = { socket, ready: false };
      c = entry;
      this.connected.set(key, entry);
      socket.connect(b.port, b.address).then(
        () => {
          entry.ready = true;
        },
        (err: Error) => this.onError(err),
      );
    }
    if (c?.ready) c.socket.send(payload, 0, undefined, offset, length);
    else this.sharedSocket(b.family).send(payload, b.port, b.address, offset, length);
  }

  /** Closes the sockets of backends that are no longer configured. */
  retain(backends: readonly Backend[]): void {
    const keep = new Set(backends.map((b) => `${b.address}|${b.port}`));
    for (const [key, c] of this.connected) {
      if (!keep.has(key)) {
        this.connected.delete(key);
        c.socket.close();
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const c of this.connected.values()) c.socket.close();
    this.connected.clear();
    for (const s of Object.values(this.shared)) s?.close();
    this.shared = {};
  }

  private sharedSocket(family: 4 | 6): UdpSocketIo {
    const type = family === 6 ? 'udp6' : 'udp4';
    return (this.shared[type] ??= this.newSocket(family));
  }

  private newSocket(family: 4 | 6): UdpSocketIo {
    const socket = this.io.open(family);
    socket.onBatch = this.onBatch;
    socket.onError = this.onError;
    return socket;
  }
}
