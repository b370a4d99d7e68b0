// Small probes for the behaviour tests: metric reads with a deadline, a UDP client bound to any loopback
// address (the harness load client binds 127.0.0.1 only), raw datagrams to a port, etcd reads, log waits.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { Etcd3 } from 'etcd3';
import {
  analyzeDelivery,
  exactlyOnceInOrder,
  formatReport,
  type DeliveryReport,
  type Expected,
} from '../../../harness/deliveryCheck.ts';
import type { Mesh } from '../../../harness/mesh.ts';
import { decodePayload, encodePayload } from '../../../harness/payload.ts';
import type { RecordingLog } from '../../../harness/recordingLog.ts';
import { formatSamples, sumOf, tryScrape, valueOf, type Sample } from '../../../harness/metrics.ts';
import type { ReplicatorProcess } from '../../../harness/replicatorLauncher.ts';
import { waitFor } from '../../../harness/wait.ts';

export type Labels = Record<string, string>;

/** Scrape, throwing when the endpoint does not answer (the process must be up). */
export async function scrape(proc: ReplicatorProcess): Promise<Sample[]> {
  const s = await tryScrape(proc.metricsUrl);
  if (!s)
    throw new Error(`${proc.name}: /metrics does not answer (running: ${proc.running})\n${proc.logTail(30)}`);
  return s;
}

export function dropped(samples: Sample[], reason: string): number {
  return sumOf(samples, 'udpmesh_dropped_datagrams_total', { reason });
}

/** Current sum of a metric (0 when absent). */
export async function metric(proc: ReplicatorProcess, name: string, labels?: Labels): Promise<number> {
  return sumOf(await scrape(proc), name, labels);
}

/** Poll one metric until pred holds; returns the value that satisfied it. */
export async function waitMetric(
  proc: ReplicatorProcess,
  name: string,
  labels: Labels | undefined,
  pred: (v: number) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<number> {
  let last: Sample[] | undefined;
  const r = await waitFor(
    async () => {
      last = await tryScrape(proc.metricsUrl);
      if (!last) return undefined;
      const v = sumOf(last, name, labels);
      return pred(v) ? { v } : undefined;
    },
    {
      timeoutMs,
      intervalMs: 150,
      what: `${proc.name}: ${what}`,
      detail: () => `${formatSamples(last)}\n${proc.logTail(30)}`,
    },
  );
  return r.v;
}

export { valueOf, sumOf };

/**
 * One client socket bound to a loopback address, sending load payloads (session, seq) and recording
 * the echo replies it gets back.
 */
export class UdpClient {
  readonly replies: number[] = [];
  invalidReplies = 0;
  sendErrors = 0;
  private constructor(
    private readonly socket: Socket,
    readonly session: number,
  ) {}

  static async open(session: number, bindAddress = '127.0.0.1'): Promise<UdpClient> {
    const socket = createSocket('udp4');
    const c = new UdpClient(socket, session);
    socket.on('message', (msg) => {
      const d = decodePayload(msg);
      if (d.ok && d.session === session) c.replies.push(d.seq);
      else c.invalidReplies++;
    });
    socket.on('error', () => {
      c.sendErrors++;
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, bindAddress, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return c;
  }

  get address(): string {
    return this.socket.address().address;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Send seqs [from, to) of this session, each `bytes` long, back to back. */
  send(port: number, from: number, to: number, bytes = 64): void {
    for (let seq = from; seq < to; seq++)
      this.socket.send(encodePayload(this.session, seq, bytes), port, '127.0.0.1');
  }

  sendRaw(port: number, buf: Buffer): void {
    this.socket.send(buf, port, '127.0.0.1');
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

/** Send raw datagrams to 127.0.0.1:port from a fresh socket, then close it. */
export async function sendDatagrams(
  port: number,
  datagrams: Buffer[],
  bindAddress = '127.0.0.1',
): Promise<void> {
  const socket = createSocket('udp4');
  socket.on('error', () => {
    /* ICMP unreachable and the like: irrelevant here */
  });
  await new Promise<void>((resolve) => socket.bind(0, bindAddress, () => resolve()));
  await Promise.all(
    datagrams.map((d) => new Promise<void>((resolve) => socket.send(d, port, '127.0.0.1', () => resolve()))),
  );
  await new Promise<void>((resolve) => socket.close(() => resolve()));
}

/** Read every key under a prefix as a map key -> string value. */
export async function etcdGetPrefix(endpoints: string[], prefix: string): Promise<Map<string, string>> {
  const client = new Etcd3({ hosts: endpoints, dialTimeout: 2000 });
  try {
    const kvs = await client.getAll().prefix(prefix).strings();
    return new Map(Object.entries(kvs));
  } finally {
    client.close();
  }
}

export async function etcdPut(endpoints: string[], key: string, value: string): Promise<void> {
  const client = new Etcd3({ hosts: endpoints, dialTimeout: 2000 });
  try {
    await client.put(key).value(value);
  } finally {
    client.close();
  }
}

/** Parsed pino JSON lines of a replicator log (non-JSON lines are skipped). */
export function logRecords(proc: ReplicatorProcess): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of proc.logText().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a partial last line */
    }
  }
  return out;
}

/** Wait until the log has a record whose msg matches (and, optionally, passes `also`); returns it. */
export async function waitLog(
  proc: ReplicatorProcess,
  msg: string | RegExp,
  timeoutMs = 15_000,
  also: (r: Record<string, unknown>) => boolean = () => true,
  after = 0,
): Promise<Record<string, unknown>> {
  const matches = (r: Record<string, unknown>) =>
    typeof r.msg === 'string' && (typeof msg === 'string' ? r.msg === msg : msg.test(r.msg)) && also(r);
  return waitFor(() => logRecords(proc).slice(after).find(matches), {
    timeoutMs,
    intervalMs: 150,
    what: `${proc.name} logs ${String(msg)}`,
    detail: () => proc.logTail(40),
  });
}

/** Exactly-once/in-order report of one run at one backend, ignoring sessions of other runs (other ingresses). */
export function runReport(log: RecordingLog, exp: Expected, from?: number, to?: number): DeliveryReport {
  const wanted = new Set(exp.sessions);
  const only = new Map([...log.seqsBySession(from, to)].filter(([s]) => wanted.has(s)));
  return analyzeDelivery(only, exp);
}

/**
 * Wait until each listed cloud's backend has every (session, seq) of this run (the harness's awaitDelivery
 * counts all distinct datagrams at a backend, so it cannot tell runs into different ingresses apart).
 */
export async function awaitRun(
  mesh: Mesh,
  exp: Expected,
  clouds: string[],
  timeoutMs: number,
  label = 'the run',
): Promise<void> {
  const total = exp.sessions.length * exp.perSession;
  await waitFor(
    async () => {
      for (const c of clouds)
        if (runReport(await mesh.node(c).backend.snapshot(), exp).distinct < total) return false;
      return true;
    },
    {
      timeoutMs,
      intervalMs: 250,
      what: `the backends of ${clouds.join(', ')} each have all ${total} datagrams of ${label}`,
      detail: async () => {
        const lines: string[] = [];
        for (const c of clouds)
          lines.push(formatReport(`${c} backend`, runReport(await mesh.node(c).backend.snapshot(), exp)));
        return `${lines.join('\n')}\n${await mesh.diagnostics()}`;
      },
    },
  );
}

/** Assert that every listed backend got this run exactly once, in order per session, and nothing altered. */
export async function assertRunExactlyOnce(
  mesh: Mesh,
  exp: Expected,
  clouds: string[],
  label = 'run',
): Promise<void> {
  for (const c of clouds) {
    const log = await mesh.node(c).backend.snapshot();
    const r = runReport(log, exp);
    if (!exactlyOnceInOrder(r) || log.invalid !== 0) {
      assert.fail(
        `${formatReport(`${c} backend, ${label}`, r)}\ninvalid datagrams ${log.invalid}: ${log.invalidExamples.join('; ')}\n${await mesh.diagnostics()}`,
      );
    }
  }
}
