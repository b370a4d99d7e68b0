// Small helpers for the end-to-end test (portalLocal.test.ts): a step timeline, UDP load that runs
// until told to stop (traffic that spans an operation whose length we cannot know in advance), and
// Prometheus's HTTP API for alert states.
import { createSocket, type Socket } from 'node:dgram';
import { analyzeDelivery, type DeliveryReport, type Expected } from '../harness/deliveryCheck.ts';
import { decodePayload, encodePayload } from '../harness/payload.ts';

/** Each step's duration, printed at the end (also when the test fails part-way). */
export class Timeline {
  readonly steps: { name: string; ms: number; ok: boolean }[] = [];
  private readonly t0 = Date.now();

  async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      const v = await fn();
      this.steps.push({ name, ms: Date.now() - started, ok: true });
      return v;
    } catch (err) {
      this.steps.push({ name, ms: Date.now() - started, ok: false });
      throw err;
    }
  }

  format(): string {
    const lines = this.steps.map(
      (s) => `  ${s.ok ? ' ' : '✗'} ${s.name.padEnd(66)} ${(s.ms / 1000).toFixed(1).padStart(6)} s`,
    );
    lines.push(`    ${'total'.padEnd(66)} ${((Date.now() - this.t0) / 1000).toFixed(1).padStart(6)} s`);
    return lines.join('\n');
  }
}

/**
 * S sessions (one socket each) sending round-robin at `rate` datagrams/s to host:port until stop();
 * stop() finishes the current round so that every session sent the same number of datagrams. Echo
 * replies are recorded per session.
 */
export class ContinuousLoad {
  readonly sessionIds: number[];
  private readonly sockets: Socket[] = [];
  private readonly replies = new Map<number, number[]>();
  sent = 0;
  sendErrors = 0;
  invalidReplies = 0;
  startedAt = 0;
  finishedAt = 0;
  private stopping = false;
  private finished!: () => void;
  readonly done = new Promise<void>((r) => (this.finished = r));

  constructor(
    readonly host: string,
    readonly port: number,
    readonly sessions: number,
    readonly rate: number,
    sessionBase: number,
  ) {
    this.sessionIds = Array.from({ length: sessions }, (_, i) => sessionBase + i);
  }

  async start(): Promise<this> {
    await Promise.all(
      this.sessionIds.map(async (session, idx) => {
        const s = createSocket({ type: 'udp4', recvBufferSize: 1024 * 1024 });
        s.on('message', (msg) => {
          const d = decodePayload(msg);
          if (!d.ok || d.session !== session) {
            this.invalidReplies++;
            return;
          }
          const list = this.replies.get(session) ?? [];
          list.push(d.seq);
          this.replies.set(session, list);
        });
        s.on('error', () => this.sendErrors++);
        await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
        this.sockets[idx] = s;
      }),
    );
    this.startedAt = Date.now();
    const onSent = (err: Error | null): void => {
      if (err) this.sendErrors++;
    };
    const tick = (): void => {
      const due = Math.floor(((Date.now() - this.startedAt) * this.rate) / 1000) + 1;
      // Never more than 20 ms worth at once after a stall (the ingress socket's buffer is finite).
      let budget = Math.min(due - this.sent, Math.ceil(this.rate / 50));
      while (budget-- > 0) {
        if (this.stopping && this.sent % this.sessions === 0) break;
        const idx = this.sent % this.sessions;
        const seq = Math.floor(this.sent / this.sessions);
        this.sockets[idx]!.send(encodePayload(this.sessionIds[idx]!, seq, 100), this.port, this.host, onSent);
        this.sent++;
      }
      if (this.stopping && this.sent % this.sessions === 0) {
        this.finishedAt = Date.now();
        this.finished();
        return;
      }
      setTimeout(tick, 5);
    };
    tick();
    return this;
  }

  /** Finishes the current round and resolves when the last datagram was handed to the kernel. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.done;
  }

  get expected(): Expected {
    return { sessions: this.sessionIds, perSession: this.sent / this.sessions };
  }

  replyReport(): DeliveryReport {
    return analyzeDelivery(this.replies, this.expected);
  }

  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  activeAt?: string;
}

/** Active alerts (pending or firing) named `name`, from Prometheus's /api/v1/alerts. */
export async function alertsNamed(prometheusUrl: string, name: string): Promise<PromAlert[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/alerts`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { status: string; data: { alerts: PromAlert[] } };
  if (body.status !== 'success') throw new Error(`prometheus /api/v1/alerts: ${JSON.stringify(body)}`);
  return body.data.alerts.filter((a) => a.labels.alertname === name);
}

/** The value of an instant query's single series per label value (e.g. udpmesh_peer_up by instance). */
export async function instantQuery(
  prometheusUrl: string,
  query: string,
): Promise<{ metric: Record<string, string>; value: number }[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`, {
    signal: AbortSignal.timeout(5000),
  });
  const body = (await res.json()) as {
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}
