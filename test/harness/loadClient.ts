// A UDP load client: S sessions x N datagrams into one ingress address. Each session has its own
// socket (so the replicator sees S distinct client sessions); payloads carry (session, seq) via
// payload.ts. Sending is paced at a total rate (datagrams/s), optionally also bounded by the number
// of datagrams whose echo has not come back yet. Echo replies are recorded per session.
import { createSocket, type Socket } from 'node:dgram';
import { decodePayload, encodePayload } from './payload.ts';
import { analyzeDelivery, type DeliveryReport, type Expected } from './deliveryCheck.ts';

export interface LoadOptions {
  host: string;
  port: number;
  sessions: number;
  perSession: number;
  /** Total payload size in bytes (>= 16). Default 100. */
  payloadBytes?: number;
  /** Total send rate in datagrams per second. Default 6000. */
  rate?: number;
  /** If set, pause sending while sent - replied >= maxInFlight. */
  maxInFlight?: number;
  /** Session ids are sessionBase .. sessionBase+sessions-1 (default 1). */
  sessionBase?: number;
}

export class LoadRun {
  readonly sessionIds: number[];
  private readonly sockets: Socket[] = [];
  private readonly replies = new Map<number, number[]>();
  sent = 0;
  sendErrors = 0;
  repliesReceived = 0;
  invalidReplies = 0;
  /** Time the first and last datagram were sent (ms since epoch). */
  startedAt = 0;
  finishedAt = 0;
  private readonly waiters: { n: number; resolve: () => void }[] = [];
  private closed = false;
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;

  constructor(readonly opts: LoadOptions) {
    const base = opts.sessionBase ?? 1;
    this.sessionIds = Array.from({ length: opts.sessions }, (_, i) => base + i);
    this.done = new Promise((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    this.done.catch(() => {
      /* observed by whoever awaits it */
    });
  }

  get total(): number {
    return this.opts.sessions * this.opts.perSession;
  }

  get expected(): Expected {
    return { sessions: this.sessionIds, perSession: this.opts.perSession };
  }

  /** Session id and seq of the i-th datagram sent (sending is round-robin over sessions). */
  nth(i: number): { session: number; seq: number } {
    return { session: this.sessionIds[i % this.opts.sessions]!, seq: Math.floor(i / this.opts.sessions) };
  }

  async open(): Promise<void> {
    const family = this.opts.host.includes(':') ? 'udp6' : 'udp4';
    const bindHost = family === 'udp6' ? '::1' : '127.0.0.1';
    await Promise.all(
      this.sessionIds.map(async (session, idx) => {
        const s = createSocket({ type: family, recvBufferSize: 1024 * 1024 });
        s.on('message', (msg) => {
          const d = decodePayload(msg);
          if (!d.ok || d.session !== session) {
            this.invalidReplies++;
            return;
          }
          this.repliesReceived++;
          let list = this.replies.get(session);
          if (!list) {
            list = [];
            this.replies.set(session, list);
          }
          list.push(d.seq);
        });
        s.on('error', () => {
          this.sendErrors++;
        });
        await new Promise<void>((resolve) => s.bind(0, bindHost, () => resolve()));
        this.sockets[idx] = s;
      }),
    );
  }

  /** Start sending; resolves `done` when every datagram was handed to the kernel. */
  start(): this {
    const rate = this.opts.rate ?? 6000;
    const size = this.opts.payloadBytes ?? 100;
    const total = this.total;
    const S = this.opts.sessions;
    const onSent = (err: Error | null): void => {
      if (err) this.sendErrors++;
    };
    this.startedAt = Date.now();
    let paceFrom = this.startedAt;
    let pacedBase = 0;
    const tick = (): void => {
      if (this.closed) {
        this.rejectDone(new Error('load client closed before it finished sending'));
        return;
      }
      // Pace by elapsed time, but never burst more than 20 ms worth after a stall (a burst of thousands
      // of datagrams would overflow the ingress socket's receive buffer): fall behind instead.
      const maxBurst = Math.max(1, Math.ceil(rate / 50));
      let allowedByRate = Math.floor(((Date.now() - paceFrom) * rate) / 1000) + 1 + pacedBase;
      if (allowedByRate - this.sent > maxBurst) {
        paceFrom = Date.now();
        pacedBase = this.sent + maxBurst - 1;
        allowedByRate = this.sent + maxBurst;
      }
      let budget = Math.min(allowedByRate, total) - this.sent;
      if (this.opts.maxInFlight !== undefined)
        budget = Math.min(budget, this.opts.maxInFlight - (this.sent - this.repliesReceived));
      while (budget-- > 0) {
        const i = this.sent;
        const sessionIdx = i % S;
        const seq = Math.floor(i / S);
        this.sockets[sessionIdx]!.send(
          encodePayload(this.sessionIds[sessionIdx]!, seq, size),
          this.opts.port,
          this.opts.host,
          onSent,
        );
        this.sent++;
      }
      for (let w = this.waiters.length - 1; w >= 0; w--) {
        if (this.sent >= this.waiters[w]!.n) {
          this.waiters[w]!.resolve();
          this.waiters.splice(w, 1);
        }
      }
      if (this.sent >= total) {
        this.finishedAt = Date.now();
        this.resolveDone();
        return;
      }
      setTimeout(tick, 2);
    };
    tick();
    return this;
  }

  /** Resolves once at least n datagrams were sent. */
  whenSent(n: number): Promise<void> {
    if (this.sent >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  /** Per session: seqs of echo replies in arrival order. */
  repliesBySession(): Map<number, number[]> {
    return this.replies;
  }

  /** Report over echo replies (missing = replies that never came back). */
  replyReport(): DeliveryReport {
    return analyzeDelivery(this.replies, this.expected);
  }

  /** Local ports of the session sockets. */
  localPorts(): number[] {
    return this.sockets.map((s) => s.address().port);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** Open the session sockets and start sending; await run.done for the end of sending. */
export async function startLoad(opts: LoadOptions): Promise<LoadRun> {
  const run = new LoadRun(opts);
  await run.open();
  return run.start();
}
