// The `batched` implementation of the socket seam, over the udp_batch addon. Per process: one receive ring
// (every socket readable in an event-loop turn reads into it with recvmmsg; the addon then makes ONE call
// into JS for the turn, and `dispatch` gives each socket's run of datagrams to its onBatch as a RecvBatch
// that indexes into the ring: one JS entry per turn even with a socket per client session) and one
// send queue (send() copies into an arena; a setImmediate flushes it with sendmmsg/GSO in the same
// event-loop turn, right after the poll phase: the replies read from many upstream sockets in one turn
// leave the ingress socket in one syscall, and nothing waits for a timer; flush() sends at once). The hot path allocates nothing per datagram: sources stay in typed
// arrays, IPv4 destinations are parsed straight into the queue, session keys for IPv4 are numbers.
import { lookup } from 'node:dns';
import { getSystemErrorName } from 'node:util';
import { C, loadAddon, type UdpBatchAddon } from './native.ts';
import {
  IoError,
  familyOf,
  type BindOptions,
  type IoTotals,
  type RecvBatch,
  type SocketCounters,
  type UdpIo,
  type UdpSocketIo,
} from './udpIo.ts';

const SLOTS = 64;
/** A slot holds the largest UDP payload, so a GRO-coalesced read (up to 64 KiB) is never truncated. */
const SLOT_BYTES = 65536;
const OUT_CAP = SLOTS * 64;
const QUEUE_CAP = 4096;
const ARENA_BYTES = 4 * 1024 * 1024;

interface Shared {
  addon: UdpBatchAddon;
  ring: Buffer;
  socks: Int32Array;
  byId: Array<BatchedSocket | undefined>;
  lengths: Uint32Array;
  offsets: Uint32Array;
  ports: Uint16Array;
  families: Uint8Array;
  addrs: Uint8Array;
  arena: Buffer;
  qSocks: Int32Array;
  qOffsets: Uint32Array;
  qLengths: Uint32Array;
  qPorts: Uint16Array;
  qFamilies: Uint8Array;
  qAddrs: Uint8Array;
  eIndex: Int32Array;
  eCode: Int32Array;
  counters: Float64Array;
  owners: Array<BatchedSocket | undefined>;
  count: number;
  used: number;
  scheduled: boolean;
  batch: RingBatch;
}

let shared: Shared | undefined;

/** Writes a dotted-quad IPv4 literal into out[at..at+4); false if it is not one. No allocation. */
export function parseIPv4(s: string, out: Uint8Array, at: number): boolean {
  const n = s.length;
  if (n < 7 || n > 15) return false;
  let part = 0;
  let digits = 0;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || k === 3) return false;
      out[at + k++] = part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return false;
    } else return false;
  }
  if (digits === 0 || k !== 3) return false;
  out[at + 3] = part;
  return true;
}

/** One socket's run of the turn's datagrams: entries [base, base + count) of the shared arrays. */
class RingBatch implements RecvBatch {
  count = 0;
  base = 0;
  constructor(private readonly s: Shared) {}
  get data(): Buffer {
    return this.s.ring;
  }
  offset(i: number): number {
    return this.s.offsets[this.base + i];
  }
  length(i: number): number {
    return this.s.lengths[this.base + i];
  }
  payload(i: number): Buffer {
    const o = this.s.offsets[this.base + i];
    return this.s.ring.subarray(o, o + this.s.lengths[this.base + i]);
  }
  copy(i: number): Buffer {
    const o = this.s.offsets[this.base + i];
    const len = this.s.lengths[this.base + i];
    const b = Buffer.allocUnsafe(len);
    this.s.ring.copy(b, 0, o, o + len);
    return b;
  }
  address(j: number): string {
    const i = this.base + j;
    const a = this.s.addrs;
    const at = i * 16;
    if (this.s.families[i] === 4) return `${a[at]}.${a[at + 1]}.${a[at + 2]}.${a[at + 3]}`;
    return this.s.addon.ntop6(a, at);
  }
  port(i: number): number {
    return this.s.ports[this.base + i];
  }
  family(i: number): 4 | 6 {
    return this.s.families[this.base + i] === 6 ? 6 : 4;
  }
  sourceKey(j: number, listenerIndex: number): string | number {
    const i = this.base + j;
    if (this.s.families[i] === 4 && listenerIndex < 32) {
      const a = this.s.addrs;
      const at = i * 16;
      const ip = ((a[at] << 24) | (a[at + 1] << 16) | (a[at + 2] << 8) | a[at + 3]) >>> 0;
      // < 2^53: 5 bits of listener, 32 of address, 16 of port.
      return listenerIndex * 2 ** 48 + ip * 65536 + this.s.ports[i];
    }
    const addr = this.address(j);
    const port = this.s.ports[i];
    return listenerIndex === 0 ? `${addr}|${port}` : `${listenerIndex}/${addr}|${port}`;
  }
}

function setup(addon: UdpBatchAddon): Shared {
  const s: Shared = {
    addon,
    ring: Buffer.alloc(SLOTS * SLOT_BYTES),
    socks: new Int32Array(OUT_CAP),
    byId: [],
    lengths: new Uint32Array(OUT_CAP),
    offsets: new Uint32Array(OUT_CAP),
    ports: new Uint16Array(OUT_CAP),
    families: new Uint8Array(OUT_CAP),
    addrs: new Uint8Array(OUT_CAP * 16),
    arena: Buffer.alloc(ARENA_BYTES),
    qSocks: new Int32Array(QUEUE_CAP),
    qOffsets: new Uint32Array(QUEUE_CAP),
    qLengths: new Uint32Array(QUEUE_CAP),
    qPorts: new Uint16Array(QUEUE_CAP),
    qFamilies: new Uint8Array(QUEUE_CAP),
    qAddrs: new Uint8Array(QUEUE_CAP * 16),
    eIndex: new Int32Array(QUEUE_CAP),
    eCode: new Int32Array(QUEUE_CAP),
    counters: new Float64Array(Math.max(16, addon.counterSlots)),
    owners: new Array<BatchedSocket | undefined>(QUEUE_CAP).fill(undefined),
    count: 0,
    used: 0,
    scheduled: false,
    batch: undefined as unknown as RingBatch,
  };
  s.batch = new RingBatch(s);
  addon.setup(
    s.ring,
    SLOT_BYTES,
    s.lengths,
    s.offsets,
    s.ports,
    s.families,
    s.addrs,
    s.arena,
    s.qSocks,
    s.qOffsets,
    s.qLengths,
    s.qPorts,
    s.qFamilies,
    s.qAddrs,
    s.eIndex,
    s.eCode,
    s.counters,
    s.socks,
    (count: number) => dispatch(s, count),
  );
  return s;
}

/** The turn's datagrams, in runs per socket, to each socket's onBatch (the ring is valid until we return). */
function dispatch(s: Shared, count: number): void {
  const b = s.batch;
  const socks = s.socks;
  let i = 0;
  while (i < count) {
    const id = socks[i];
    let j = i + 1;
    while (j < count && socks[j] === id) j++;
    const sock = s.byId[id];
    if (sock !== undefined) {
      b.base = i;
      b.count = j - i;
      sock.counters.receivedDatagrams += j - i;
      sock.counters.receiveBatches++;
      sock.onBatch(b, sock);
    }
    i = j;
  }
}

const errOwners: Array<BatchedSocket | undefined> = [];
const errCodes: number[] = [];

/** Sends everything queued: one sendmmsg per run of one socket's entries, GSO for runs to one peer. */
function flushQueue(): void {
  const s = shared!;
  s.scheduled = false;
  const n = s.count;
  if (n === 0) return;
  const errors = s.addon.flush(n);
  for (let k = 0; k < errors; k++) {
    errOwners[k] = s.owners[s.eIndex[k]];
    errCodes[k] = s.eCode[k];
  }
  s.owners.fill(undefined, 0, n);
  s.count = 0;
  s.used = 0;
  for (let k = 0; k < errors; k++) {
    const o = errOwners[k];
    errOwners[k] = undefined;
    if (!o) continue;
    o.counters.sendErrors++;
    o.counters.sentDatagrams--;
    o.reportError(errCodes[k], 'sendmmsg');
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `E${errno}`;
  }
}

const scratch4 = new Uint8Array(4);
const noop = (): void => {};
const RESOLVE_TTL_MS = 10_000;
const resolved = new Map<string, { address: string; at: number }>();

class BatchedSocket implements UdpSocketIo {
  readonly kind = 'batched' as const;
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
  readonly id: number;
  private closed = false;

  constructor(
    private readonly s: Shared,
    readonly family: 4 | 6,
    opts: Partial<BindOptions>,
  ) {
    this.id = s.addon.open(
      family,
      opts.address,
      opts.port ?? 0,
      opts.reusePort ?? false,
      opts.ipv6Only ?? false,
      opts.receiveBufferBytes ?? 0,
      opts.sendBufferBytes ?? 0,
      opts.gro ?? false,
      noop,
      (errno, syscall) => {
        this.counters.receiveErrors++;
        this.reportError(errno, syscall);
      },
    );
    s.byId[this.id] = this;
  }

  reportError(errno: number, syscall: string): void {
    const code = errnoName(errno);
    this.onError(new IoError(`${syscall} ${code}`, code, syscall), this);
  }

  send(
    buf: Buffer,
    port: number,
    address: string | undefined,
    offset = 0,
    length = buf.length - offset,
  ): void {
    const s = this.s;
    if (this.closed) {
      this.counters.sendErrors++;
      s.counters[C.sendErrors]++;
      return;
    }
    if (s.count === QUEUE_CAP || s.used + length > ARENA_BYTES) flushQueue();
    const q = s.count;
    if (address === undefined) {
      s.qFamilies[q] = 0;
    } else if (parseIPv4(address, s.qAddrs, q * 16)) {
      s.qFamilies[q] = 4;
    } else if (address.includes(':') && s.addon.pton6(address, s.qAddrs, q * 16)) {
      s.qFamilies[q] = 6;
    } else {
      this.sendToName(buf.subarray(offset, offset + length), port, address);
      return;
    }
    buf.copy(s.arena, s.used, offset, offset + length);
    s.qSocks[q] = this.id;
    s.qOffsets[q] = s.used;
    s.qLengths[q] = length;
    s.qPorts[q] = port;
    s.owners[q] = this;
    s.used += length;
    s.count = q + 1;
    this.counters.sentDatagrams++;
    if (!s.scheduled) {
      s.scheduled = true;
      setImmediate(flushQueue);
    }
  }

  /** A host name (a peer behind a load balancer's DNS name): resolved, cached for a while, then sent. */
  private sendToName(bytes: Buffer, port: number, name: string): void {
    const hit = resolved.get(name);
    if (hit && performance.now() - hit.at < RESOLVE_TTL_MS) {
      this.send(bytes, port, hit.address);
      return;
    }
    const copy = Buffer.from(bytes);
    lookup(name, { family: this.family === 4 ? 4 : 0 }, (err, address) => {
      if (err || this.closed) {
        this.counters.sendErrors++;
        if (err) this.onError(err, this);
        return;
      }
      resolved.set(name, { address, at: performance.now() });
      this.send(copy, port, address);
    });
  }

  async connect(port: number, address: string): Promise<void> {
    let ip = address;
    if (!parseIPv4(address, scratch4, 0) && !address.includes(':')) {
      ip = await new Promise<string>((resolve, reject) =>
        lookup(address, { family: this.family === 4 ? 4 : 0 }, (err, a) => (err ? reject(err) : resolve(a))),
      );
    }
    this.s.addon.connect(this.id, familyOf(ip), ip, port);
    this.connected = true;
  }

  address(): { address: string; port: number; family: 4 | 6 } {
    const [address, port, family] = this.s.addon.info(this.id);
    return { address, port, family };
  }

  bufferSizes(): { receive: number; send: number } {
    const i = this.s.addon.info(this.id);
    return { receive: i[3], send: i[4] };
  }

  get gro(): boolean {
    return this.s.addon.info(this.id)[5];
  }

  unref(): void {
    if (!this.closed) this.s.addon.ref(this.id, false);
  }

  close(): void {
    if (this.closed) return;
    // Queued datagrams of this socket go out first: its id may be reused by the next socket opened.
    if (this.s.count > 0) flushQueue();
    this.closed = true;
    if (this.s.byId[this.id] === this) this.s.byId[this.id] = undefined;
    this.s.addon.close(this.id);
  }
}

/** The batched I/O, or the reason it cannot be had here. */
export function createBatchedIo(): UdpIo | { reason: string } {
  if (!shared) {
    const loaded = loadAddon();
    if (!loaded.addon) return { reason: loaded.reason };
    try {
      shared = setup(loaded.addon);
    } catch (err) {
      return { reason: `the udp_batch addon does not initialise: ${(err as Error).message}` };
    }
  }
  const s = shared;
  return {
    kind: 'batched',
    reason: 'udp_batch addon loaded',
    async bind(opts: BindOptions): Promise<UdpSocketIo> {
      return new BatchedSocket(s, familyOf(opts.address), opts);
    },
    open(family: 4 | 6): UdpSocketIo {
      return new BatchedSocket(s, family, {});
    },
    flush(): void {
      if (s.count > 0) flushQueue();
    },
    totals(): IoTotals {
      const c = s.counters;
      return {
        receiveSyscalls: c[C.recvCalls],
        receivedDatagrams: c[C.recvDatagrams],
        groSplits: c[C.groSplits],
        receiveErrors: c[C.recvErrors],
        receiveTruncated: c[C.recvTruncated],
        sendSyscalls: c[C.sendCalls],
        sentDatagrams: c[C.sendDatagrams],
        gsoMessages: c[C.gsoMessages],
        sendErrors: c[C.sendErrors],
        sendWouldBlock: c[C.sendWouldBlock],
        callbacks: c[C.callbacks],
        openSockets: s.addon.sockets(),
      };
    },
  };
}
