// The `dgram` implementation of the socket seam: Node's own UDP sockets, one 'message' event per datagram
// presented as a one-datagram RecvBatch (one reusable batch object per socket, so no extra allocation
// beyond what dgram itself makes). Works everywhere; it is the fallback when the addon is not built.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import {
  familyOf,
  type BindOptions,
  type IoTotals,
  type RecvBatch,
  type SocketCounters,
  type UdpIo,
  type UdpSocketIo,
} from './udpIo.ts';

class OneBatch implements RecvBatch {
  count = 1;
  data: Buffer = Buffer.alloc(0);
  rinfo: RemoteInfo | undefined;
  offset(): number {
    return 0;
  }
  length(): number {
    return this.data.length;
  }
  payload(): Buffer {
    return this.data;
  }
  copy(): Buffer {
    return this.data;
  }
  address(): string {
    return this.rinfo!.address;
  }
  port(): number {
    return this.rinfo!.port;
  }
  family(): 4 | 6 {
    return this.rinfo!.family === 'IPv6' ? 6 : 4;
  }
  sourceKey(_i: number, listenerIndex: number): string {
    const r = this.rinfo!;
    return listenerIndex === 0 ? `${r.address}|${r.port}` : `${listenerIndex}/${r.address}|${r.port}`;
  }
}

const totals = { sent: 0, received: 0, sendErrors: 0, receiveErrors: 0, open: 0 };

class DgramSocket implements UdpSocketIo {
  readonly kind = 'dgram' as const;
  context: unknown;
  onBatch: UdpSocketIo['onBatch'] = () => {};
  onError: UdpSocketIo['onError'] = () => {};
  readonly counters: SocketCounters = {
    receivedDatagrams: 0,
    receiveBatches: 0,
    sentDatagrams: 0,
    sendErrors: 0,
    receiveErrors: 0,
  };
  connected = false;
  private closed = false;
  private readonly batch = new OneBatch();
  /** One completion callback per socket (not per datagram): failed sends are counted, never thrown. */
  private readonly sent = (err: Error | null): void => {
    if (!err) return;
    this.counters.sendErrors++;
    totals.sendErrors++;
    this.onError(err, this);
  };

  constructor(
    readonly socket: Socket,
    readonly family: 4 | 6,
  ) {
    totals.open++;
    socket.on('message', (msg, rinfo) => {
      const b = this.batch;
      b.data = msg;
      b.rinfo = rinfo;
      this.counters.receivedDatagrams++;
      this.counters.receiveBatches++;
      totals.received++;
      this.onBatch(b, this);
    });
    // Receive-side failures (ICMP errors on a connected socket) arrive here; send failures go to `sent`.
    socket.on('error', (err) => {
      this.counters.receiveErrors++;
      totals.receiveErrors++;
      this.onError(err, this);
    });
  }

  send(
    buf: Uint8Array,
    port: number,
    address: string | undefined,
    offset = 0,
    length = buf.length - offset,
  ): void {
    if (this.closed) {
      this.counters.sendErrors++;
      totals.sendErrors++;
      return;
    }
    this.counters.sentDatagrams++;
    totals.sent++;
    try {
      // The whole buffer (the usual case: a reply, a frame) goes without offset/length, which would
      // make dgram build a view of it per datagram (sliceBuffer).
      if (offset === 0 && length === buf.length) {
        if (address === undefined) this.socket.send(buf, this.sent);
        else this.socket.send(buf, port, address, this.sent);
      } else if (address === undefined) this.socket.send(buf, offset, length, this.sent);
      else this.socket.send(buf, offset, length, port, address, this.sent);
    } catch (err) {
      this.counters.sendErrors++;
      totals.sendErrors++;
      this.onError(err as Error, this);
    }
  }

  connect(port: number, address: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onErr = (err: Error) => reject(err);
      this.socket.once('error', onErr);
      try {
        this.socket.connect(port, address, () => {
          this.socket.off('error', onErr);
          this.connected = true;
          resolve();
        });
      } catch (err) {
        this.socket.off('error', onErr);
        reject(err as Error);
      }
    });
  }

  address(): { address: string; port: number; family: 4 | 6 } {
    const a = this.socket.address();
    return { address: a.address, port: a.port, family: a.family === 'IPv6' ? 6 : 4 };
  }

  bufferSizes(): { receive: number; send: number } {
    try {
      return { receive: this.socket.getRecvBufferSize(), send: this.socket.getSendBufferSize() };
    } catch {
      return { receive: 0, send: 0 }; // not bound yet
    }
  }

  unref(): void {
    this.socket.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    totals.open--;
    try {
      this.socket.close();
    } catch {
      /* already closed */
    }
  }
}

function newSocket(family: 4 | 6, opts: Partial<BindOptions> = {}): Socket {
  return createSocket({
    type: family === 6 ? 'udp6' : 'udp4',
    ipv6Only: opts.ipv6Only,
    reusePort: opts.reusePort,
  });
}

export function createDgramIo(reason = 'io: dgram configured'): UdpIo {
  return {
    kind: 'dgram',
    reason,
    async bind(opts: BindOptions): Promise<UdpSocketIo> {
      const family = familyOf(opts.address);
      const socket = newSocket(family, opts);
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(opts.port, opts.address, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      try {
        if (opts.receiveBufferBytes) socket.setRecvBufferSize(opts.receiveBufferBytes);
        if (opts.sendBufferBytes) socket.setSendBufferSize(opts.sendBufferBytes);
      } catch {
        /* capped by net.core.rmem_max/wmem_max: bufferSizes() tells what was achieved */
      }
      return new DgramSocket(socket, family);
    },
    open(family: 4 | 6): UdpSocketIo {
      return new DgramSocket(newSocket(family), family);
    },
    flush(): void {
      /* dgram sends each datagram at once */
    },
    totals(): IoTotals {
      // dgram makes one syscall per datagram each way.
      return {
        receiveSyscalls: totals.received,
        receivedDatagrams: totals.received,
        groSplits: 0,
        receiveErrors: totals.receiveErrors,
        receiveTruncated: 0,
        sendSyscalls: totals.sent,
        sentDatagrams: totals.sent - totals.sendErrors,
        gsoMessages: 0,
        sendErrors: totals.sendErrors,
        sendWouldBlock: 0,
        callbacks: totals.received,
        openSockets: totals.open,
      };
    },
  };
}
