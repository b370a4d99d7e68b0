// The data plane's socket seam. Two implementations pass the same tests (test/replicator/io): `dgram`
// (Node's own sockets: one syscall, one callback, one Buffer + rinfo per datagram) and `batched` (the
// udp_batch addon: recvmmsg/sendmmsg, UDP GSO/GRO, one callback per batch, no per-datagram objects).
// Consumers read a RecvBatch by index and send from any byte range, so the batched path never needs a
// Buffer or a closure per datagram; a consumer that KEEPS a payload (the retransmit buffer) takes copy(i).

export type IoKind = 'batched' | 'dgram';
export type IoMode = 'auto' | IoKind;

/**
 * One read's worth of datagrams, valid only during the onBatch callback (the batched ring is reused).
 * Datagram i occupies data[offset(i) .. offset(i) + length(i)).
 */
export interface RecvBatch {
  readonly count: number;
  readonly data: Buffer;
  offset(i: number): number;
  length(i: number): number;
  /** A new view of datagram i (no copy); valid only during the callback. */
  payload(i: number): Buffer;
  /** Datagram i as a Buffer the caller may keep (a copy in batched mode; dgram's own Buffer otherwise). */
  copy(i: number): Buffer;
  address(i: number): string;
  port(i: number): number;
  family(i: number): 4 | 6;
  /**
   * A session-table key for the source of datagram i on the listener with this index: the string
   * `${address}|${port}` (prefixed `${index}/` for index > 0), or, for IPv4 in batched mode, a number that
   * encodes the same (no string is built per datagram).
   */
  sourceKey(i: number, listenerIndex: number): string | number;
}

export interface SocketCounters {
  receivedDatagrams: number;
  receiveBatches: number;
  sentDatagrams: number;
  sendErrors: number;
  receiveErrors: number;
}

export interface BindOptions {
  address: string;
  port: number;
  reusePort?: boolean;
  ipv6Only?: boolean;
  /** Requested kernel buffer sizes (bytes); the achieved ones are in bufferSizes(). */
  receiveBufferBytes?: number;
  sendBufferBytes?: number;
  /** Ask the kernel to coalesce a burst from one source (UDP GRO); batched only, where it helps. */
  gro?: boolean;
}

export type BatchHandler = (batch: RecvBatch, socket: UdpSocketIo) => void;
export type ErrorHandler = (err: Error, socket: UdpSocketIo) => void;

export interface UdpSocketIo {
  readonly kind: IoKind;
  /** Owner's data (e.g. the session of an upstream socket), so one handler serves every socket. */
  context: unknown;
  onBatch: BatchHandler;
  onError: ErrorHandler;
  readonly counters: SocketCounters;
  /**
   * Sends bytes [offset, offset+length) of buf to port/address (to the connected peer when address is
   * undefined). Batched: copied into the send queue, flushed in the same event-loop turn (setImmediate,
   * or flush()), never on a timer. Failures are counted (counters.sendErrors) and reported through onError.
   */
  send(buf: Buffer, port: number, address: string | undefined, offset?: number, length?: number): void;
  connect(port: number, address: string): Promise<void>;
  readonly connected: boolean;
  address(): { address: string; port: number; family: 4 | 6 };
  /** Achieved kernel buffer sizes (as the kernel reports them: Linux doubles the request). */
  bufferSizes(): { receive: number; send: number };
  unref(): void;
  close(): void;
}

export interface IoTotals {
  receiveSyscalls: number;
  receivedDatagrams: number;
  groSplits: number;
  receiveErrors: number;
  receiveTruncated: number;
  sendSyscalls: number;
  sentDatagrams: number;
  gsoMessages: number;
  sendErrors: number;
  sendWouldBlock: number;
  callbacks: number;
  openSockets: number;
}

export interface UdpIo {
  readonly kind: IoKind;
  /** Why this kind was chosen (auto mode says why it fell back). */
  readonly reason: string;
  bind(opts: BindOptions): Promise<UdpSocketIo>;
  /** An unbound socket of this family: bound to an ephemeral port by connect() or the first send. */
  open(family: 4 | 6): UdpSocketIo;
  /**
   * Sends what is queued now (batched; dgram sends at once). Queued sends otherwise leave in the same
   * event-loop turn (setImmediate); a caller that queues from its own setImmediate calls this at its end.
   */
  flush(): void;
  totals(): IoTotals;
}

export function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

export class IoError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly syscall: string,
  ) {
    super(message);
    this.name = 'IoError';
  }
}
