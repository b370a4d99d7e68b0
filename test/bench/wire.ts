// What the bench processes say to each other: the datagram payload layout (written by the load
// generator, read by sinks and by the load generator on replies) and the IPC messages.
import type { HistData } from './hist.ts';

/** Payload header, little-endian: magic, step id, session index, sequence, send time (CLOCK_MONOTONIC ns as f64). */
export const MAGIC = 0x424d4455; // "UDMB"
export const HEADER_BYTES = 24;
export const OFF_STEP = 4;
export const OFF_SESSION = 8;
export const OFF_SEQ = 12;
export const OFF_SENT_NS = 16;

/** CLOCK_MONOTONIC in ns (the same clock in every process on the host), as a double (exact below 2^53 ns). */
export function monoNs(): number {
  return Number(process.hrtime.bigint());
}

// ------------------------------------------------------------------ sink

export interface SinkStepReport {
  step: number;
  received: number;
  /** Datagrams whose seq was not above the last seen for their session (reordered or duplicated). */
  outOfOrder: number;
  firstRxNs: number;
  lastRxNs: number;
  latency: HistData;
  sessions: number;
}

export type SinkCommand =
  { cmd: 'config'; echo: boolean } | { cmd: 'report'; step: number } | { cmd: 'forget' };

// ------------------------------------------------------------------ load generator

export interface LoadStepSpec {
  step: number;
  host: string;
  port: number;
  /** Datagrams per second over all sessions; 0 = open loop (as fast as the generator can). */
  rate: number;
  durationMs: number;
  sessions: number;
  payloadBytes: number;
}

export interface LoadStepResult {
  step: number;
  sent: number;
  sendErrors: number;
  startNs: number;
  endNs: number;
}

export interface LoadCollectResult {
  step: number;
  replies: number;
  /** When the last reply of the step arrived (CLOCK_MONOTONIC ns), 0 = none. */
  lastReplyNs: number;
  rtt: LoadRttData;
}

export type LoadRttData = HistData;

export interface SessionsSpec {
  step: number;
  host: string;
  port: number;
  count: number;
  /** Datagrams per session in this round. */
  perSession: number;
  /** Sockets open at the same time. */
  batch: number;
  /** Datagrams per second (paced between batches). */
  rate: number;
  payloadBytes: number;
  /** First round binds fresh tuples; later rounds re-bind the same address:port tuples (refresh). */
  refresh: boolean;
}

export interface SessionsResult {
  step: number;
  sessions: number;
  sent: number;
  bindFailures: number;
  elapsedMs: number;
}

export type LoadCommand =
  | { cmd: 'run'; spec: LoadStepSpec }
  | { cmd: 'collect'; step: number }
  | { cmd: 'sessions'; spec: SessionsSpec };

/** Every request carries an id; the answer echoes it. */
export interface Request<C> {
  id: number;
  body: C;
}
export interface Response {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** Child side of the request/response IPC: runs handler for every request, answers with its result. */
export function serveIpc<C>(handler: (body: C) => Promise<unknown> | unknown): void {
  if (!process.send) throw new Error('this process must be started with an IPC channel');
  process.on('message', (raw) => {
    const req = raw as Request<C>;
    Promise.resolve()
      .then(() => handler(req.body))
      .then(
        (result) => process.send!({ id: req.id, ok: true, result } satisfies Response),
        (err: unknown) =>
          process.send!({
            id: req.id,
            ok: false,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          } satisfies Response),
      );
  });
  // The parent going away (crash, SIGKILL) closes the channel: do not linger.
  process.on('disconnect', () => process.exit(0));
  process.send({ id: 0, ok: true, result: 'ready' } satisfies Response);
}
