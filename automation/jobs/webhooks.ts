// Webhooks: when a job ends, each configured URL gets a POST with the job (as GET /v1/jobs/{id}
// answers it), signed so the receiver can trust it, retried with exponential backoff until a 2xx.
// Signature (like Stripe's): header `x-udpmesh-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" with the shared secret>`; `x-udpmesh-delivery` is unique per delivery (dedupe).
import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Job } from './jobStore.ts';

export interface WebhookOptions {
  urls: string[];
  secret: string;
  /** Attempts per delivery (default 5). */
  attempts?: number;
  /** First retry delay; doubles each time (default 1 s). */
  backoffMs?: number;
  /** Per attempt (default 10 s). */
  timeoutMs?: number;
  logger?: Logger;
}

export function signPayload(secret: string, body: string, t = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

export class Webhooks {
  private readonly pending = new Set<Promise<void>>();
  constructor(private readonly opts: WebhookOptions) {}

  /** Sends `job.finished` for the job to every URL (in the background). */
  jobFinished(job: Job): void {
    const body = JSON.stringify({ event: 'job.finished', job });
    for (const url of this.opts.urls) {
      const p = this.deliver(url, body).finally(() => this.pending.delete(p));
      this.pending.add(p);
    }
  }

  /** Waits for deliveries in flight (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private async deliver(url: string, body: string): Promise<void> {
    const attempts = this.opts.attempts ?? 5;
    const delivery = randomUUID();
    let delay = this.opts.backoffMs ?? 1000;
    for (let i = 1; i <= attempts; i++) {
      let outcome: string;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'udpmesh-automation',
            'x-udpmesh-delivery': delivery,
            'x-udpmesh-signature': signPayload(this.opts.secret, body),
          },
          body,
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        outcome = `HTTP ${res.status}`;
      } catch (err) {
        outcome = (err as Error).message;
      }
      this.opts.logger?.warn({ url, delivery, attempt: i, outcome }, 'webhook delivery failed');
      if (i < attempts) {
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
    this.opts.logger?.error({ url, delivery }, 'webhook delivery abandoned');
  }
}
