// A user-space UDP impairment proxy: listens on a port and forwards every datagram from one
// outbound socket to a target, impaired: loss, duplication, reordering (extra delay for some
// datagrams) and jitter, all decided by a seeded PRNG. Used between replicators: each replicator
// advertises the proxy's port, so every frame and ack sent to it crosses the impaired link.
import { createSocket, type Socket } from 'node:dgram';
import { mulberry32, type Rng } from './prng.ts';

export interface Impairment {
  /** Probability a datagram is dropped. */
  loss: number;
  /** Probability a (not dropped) datagram is sent twice. */
  duplicate: number;
  /** Probability a copy gets reorderDelayMs extra delay, so later datagrams overtake it. */
  reorder: number;
  reorderDelayMs: number;
  /** Each copy is delayed by baseDelayMs + uniform[0, jitterMs). */
  jitterMs: number;
  baseDelayMs: number;
}

export const NO_IMPAIRMENT: Impairment = {
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderDelayMs: 0,
  jitterMs: 0,
  baseDelayMs: 0,
};

export interface Decision {
  /** Delay in ms for each copy to send; empty when the datagram is dropped. */
  delays: number[];
  reordered: number;
}

/** The fate of one datagram. Pure given the rng, so it can be tested statistically. */
export function decide(rng: Rng, imp: Impairment): Decision {
  if (imp.loss > 0 && rng() < imp.loss) return { delays: [], reordered: 0 };
  const copies = imp.duplicate > 0 && rng() < imp.duplicate ? 2 : 1;
  const delays: number[] = [];
  let reordered = 0;
  for (let c = 0; c < copies; c++) {
    let d = imp.baseDelayMs + (imp.jitterMs > 0 ? rng() * imp.jitterMs : 0);
    if (imp.reorder > 0 && rng() < imp.reorder) {
      d += imp.reorderDelayMs;
      reordered++;
    }
    delays.push(d);
  }
  return { delays, reordered };
}

const UNTOUCHED: Decision = { delays: [0], reordered: 0 };

export interface ProxyCounters {
  received: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  forwarded: number;
  sendErrors: number;
  /** Datagrams that arrived on the outbound socket (the target answering the source; ignored). */
  strayReplies: number;
}

export interface ImpairmentProxyOptions {
  target: { host: string; port: number };
  listenHost?: string;
  /** 0 (default) picks a free port. */
  listenPort?: number;
  impairment?: Partial<Impairment>;
  seed?: number;
}

interface Pending {
  due: number;
  order: number;
  buf: Buffer;
}

/** Binary min-heap on (due, order): equal due times keep arrival order. */
class Heap {
  private a: Pending[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): Pending | undefined {
    return this.a[0];
  }
  private less(i: number, j: number): boolean {
    const x = this.a[i]!;
    const y = this.a[j]!;
    return x.due < y.due || (x.due === y.due && x.order < y.order);
  }
  push(p: Pending): void {
    const a = this.a;
    a.push(p);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }
  pop(): Pending | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(l, m)) m = l;
        if (r < a.length && this.less(r, m)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
  clear(): void {
    this.a = [];
  }
}

export class ImpairmentProxy {
  readonly counters: ProxyCounters = {
    received: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    forwarded: 0,
    sendErrors: 0,
    strayReplies: 0,
  };
  private impairment: Impairment;
  private readonly rng: Rng;
  private inbound: Socket | undefined;
  private outbound: Socket | undefined;
  private readonly heap = new Heap();
  private order = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;
  private closed = false;
  /** Sees every datagram as it arrives, before impairment (the chaos suite captures frames to replay them). */
  tap: ((msg: Buffer) => void) | undefined;
  /** When set, only datagrams from these source addresses are impaired; the rest pass untouched. */
  private sources: ReadonlySet<string> | undefined;

  constructor(readonly opts: ImpairmentProxyOptions) {
    this.impairment = { ...NO_IMPAIRMENT, ...opts.impairment };
    this.rng = mulberry32(opts.seed ?? 1);
  }

  setImpairment(imp: Partial<Impairment>): void {
    this.impairment = { ...this.impairment, ...imp };
  }

  /** Impair only what comes from these addresses (one sender's side of a shared link); undefined: all. */
  setSources(addresses: readonly string[] | undefined): void {
    this.sources = addresses ? new Set(addresses) : undefined;
  }

  get current(): Impairment {
    return { ...this.impairment };
  }

  get port(): number {
    if (!this.inbound) throw new Error('proxy not started');
    return this.inbound.address().port;
  }

  /** Datagrams waiting for their delay to pass. */
  get queued(): number {
    return this.heap.size;
  }

  async start(): Promise<this> {
    const host = this.opts.listenHost ?? '127.0.0.1';
    const type = host.includes(':') ? 'udp6' : 'udp4';
    const inbound = createSocket({ type, recvBufferSize: 4 * 1024 * 1024 });
    const outbound = createSocket({
      type: this.opts.target.host.includes(':') ? 'udp6' : 'udp4',
      sendBufferSize: 4 * 1024 * 1024,
    });
    this.inbound = inbound;
    this.outbound = outbound;
    inbound.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo.address));
    inbound.on('error', () => {
      /* keep proxying */
    });
    outbound.on('message', () => {
      this.counters.strayReplies++;
    });
    outbound.on('error', () => {
      this.counters.sendErrors++;
    });
    await new Promise<void>((resolve, reject) => {
      inbound.once('error', reject);
      inbound.bind(this.opts.listenPort ?? 0, host, () => {
        inbound.off('error', reject);
        resolve();
      });
    });
    await new Promise<void>((resolve) =>
      outbound.bind(0, this.opts.target.host.includes(':') ? '::1' : '127.0.0.1', () => resolve()),
    );
    return this;
  }

  private readonly onSent = (err: Error | null): void => {
    if (err) this.counters.sendErrors++;
    else this.counters.forwarded++;
  };

  private send(buf: Buffer): void {
    this.outbound?.send(buf, this.opts.target.port, this.opts.target.host, this.onSent);
  }

  private onDatagram(msg: Buffer, from: string): void {
    if (this.closed) return;
    this.counters.received++;
    this.tap?.(msg);
    const d = this.sources && !this.sources.has(from) ? UNTOUCHED : decide(this.rng, this.impairment);
    if (d.delays.length === 0) {
      this.counters.dropped++;
      return;
    }
    if (d.delays.length > 1) this.counters.duplicated++;
    this.counters.reordered += d.reordered;
    const now = performance.now();
    for (const delay of d.delays) {
      if (delay <= 0 && this.heap.size === 0) this.send(msg);
      else this.heap.push({ due: now + delay, order: this.order++, buf: msg });
    }
    this.schedule();
  }

  private schedule(): void {
    const next = this.heap.peek();
    if (!next) return;
    if (this.timer && next.due >= this.timerDue) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDue = next.due;
    this.timer = setTimeout(this.flush, Math.max(0, next.due - performance.now()));
  }

  private readonly flush = (): void => {
    this.timer = undefined;
    this.timerDue = Infinity;
    if (this.closed) return;
    const now = performance.now();
    for (let p = this.heap.peek(); p && p.due <= now + 0.5; p = this.heap.peek()) {
      this.heap.pop();
      this.send(p.buf);
    }
    this.schedule();
  };

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.heap.clear();
    const socks = [this.inbound, this.outbound].filter((s): s is Socket => s !== undefined);
    await Promise.all(socks.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export async function startImpairmentProxy(opts: ImpairmentProxyOptions): Promise<ImpairmentProxy> {
  return new ImpairmentProxy(opts).start();
}
