// The chaos load generator: like test/harness/loadClient.ts (S sessions, one socket each, round-robin,
// paced at a total rate, payloads from test/harness/payload.ts), but its sockets bind to a given address
// (the harness client binds 127.0.0.1, which cannot reach an ingress in another namespace) and it can be
// stopped at a round boundary, so every session ends with the same number of datagrams and the run can
// last as long as the fault scenario needs.
import { createSocket, type Socket } from 'node:dgram';
import { decodePayload, encodePayload } from '../harness/payload.ts';

export interface LoadGenOptions {
  host: string;
  port: number;
  /** Address the session sockets bind to (the client namespace's address). */
  bindHost: string;
  sessions: number;
  /** Upper bound of datagrams per session (the run normally ends by stop()). */
  maxPerSession: number;
  /** Total send rate, datagrams/s. */
  rate: number;
  sessionBase: number;
  payloadBytes?: number;
}

export interface LoadStatus {
  sent: number;
  replies: number;
  invalidReplies: number;
  sendErrors: number;
  done: boolean;
  /** Datagrams per session once done (sent / sessions). */
  perSession: number;
  startedAt: number;
  finishedAt: number;
}

export class LoadGen {
  private readonly sockets: Socket[] = [];
  private sent = 0;
  private replies = 0;
  private invalidReplies = 0;
  private sendErrors = 0;
  private total: number;
  private startedAt = 0;
  private finishedAt = 0;
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly doneWaiters: (() => void)[] = [];

  constructor(readonly opts: LoadGenOptions) {
    this.total = opts.sessions * opts.maxPerSession;
  }

  async open(): Promise<void> {
    await Promise.all(
      Array.from({ length: this.opts.sessions }, async (_, idx) => {
        const session = this.opts.sessionBase + idx;
        const s = createSocket({ type: 'udp4', recvBufferSize: 1024 * 1024 });
        s.on('message', (msg) => {
          const d = decodePayload(msg);
          if (d.ok && d.session === session) this.replies++;
          else this.invalidReplies++;
        });
        s.on('error', () => {
          this.sendErrors++;
        });
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.bind(0, this.opts.bindHost, () => {
            s.off('error', reject);
            resolve();
          });
        });
        this.sockets[idx] = s;
      }),
    );
  }

  start(): void {
    const size = this.opts.payloadBytes ?? 100;
    const S = this.opts.sessions;
    const onSent = (err: Error | null): void => {
      if (err) this.sendErrors++;
    };
    this.startedAt = Date.now();
    const tick = (): void => {
      this.timer = undefined;
      const allowed = Math.min(
        Math.floor(((Date.now() - this.startedAt) * this.opts.rate) / 1000) + 1,
        this.total,
      );
      while (this.sent < allowed) {
        const i = this.sent;
        const idx = i % S;
        this.sockets[idx]!.send(
          encodePayload(this.opts.sessionBase + idx, Math.floor(i / S), size),
          this.opts.port,
          this.opts.host,
          onSent,
        );
        this.sent++;
      }
      if (this.sent >= this.total) {
        this.finish();
        return;
      }
      this.timer = setTimeout(tick, 2);
    };
    tick();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.finishedAt = Date.now();
    for (const w of this.doneWaiters.splice(0)) w();
  }

  /** End the run at the end of the current round (every session gets the same count); resolves when done. */
  stop(): Promise<LoadStatus> {
    const S = this.opts.sessions;
    this.total = Math.min(this.total, Math.ceil(this.sent / S) * S);
    if (this.sent >= this.total) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.finish();
    }
    return this.whenDone();
  }

  whenDone(): Promise<LoadStatus> {
    if (this.done) return Promise.resolve(this.status());
    return new Promise((resolve) => this.doneWaiters.push(() => resolve(this.status())));
  }

  status(): LoadStatus {
    return {
      sent: this.sent,
      replies: this.replies,
      invalidReplies: this.invalidReplies,
      sendErrors: this.sendErrors,
      done: this.done,
      perSession: this.done ? this.sent / this.opts.sessions : Math.floor(this.sent / this.opts.sessions),
      startedAt: this.startedAt,
      finishedAt: this.finishedAt,
    };
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all(this.sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
