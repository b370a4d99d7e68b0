// The agent that runs inside a namespace (`ip netns exec <ns> node --import tsx test/chaos/agent.ts`):
// the chaos runner in the root namespace has no route into the namespaces (by design, see netns.ts), so
// everything that must live in a namespace runs here and is driven over stdin/stdout (one JSON object
// per line: requests {id, op, args}, answers {id, ok, result | error}). A partition never cuts this
// channel. In a cloud namespace: one agent runs the recording backend (test/harness/recordingBackend.ts),
// another the impairment proxy in front of the replicator's replication port (test/harness/impairmentProxy.ts):
// separate processes, so that forwarding a catch-up burst never starves the backend's socket.
// In the client namespace: the load generators and HTTP GETs (metrics, /readyz, etcd health).
// The proxy agent can also capture the DATA frames it forwards and replay them later to any address (a
// receiver's new incarnation, another receiver): an attacker or a confused network on the replication path.
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { analyzeDelivery } from '../harness/deliveryCheck.ts';
import { ImpairmentProxy, type Impairment } from '../harness/impairmentProxy.ts';
import { RecordingBackend } from '../harness/recordingBackend.ts';
import { dropsOnPorts } from '../harness/udpDrops.ts';
import { LoadGen, type LoadGenOptions } from './loadGen.ts';
import { FrameType, MAGIC } from '../../replicator/protocol/frame.ts';

export interface SessionGroup {
  /** Sessions lo..hi inclusive, each with seqs 0..perSession-1. */
  lo: number;
  hi: number;
  perSession: number;
}

export interface AnalyzeResult {
  /** Arrivals of the groups' sessions. */
  received: number;
  distinct: number;
  missing: number;
  /** Arrivals of a pair that had already arrived (anywhere in the run). */
  duplicates: number;
  /** Of those, duplicates inside one segment (one replicator incarnation). */
  duplicatesWithinSegment: number;
  /** First arrivals (within a segment) of a pair after a higher seq of the same session in that segment. */
  outOfOrder: number;
  unexpected: number;
  examples: string[];
  segments: { from: number; to: number; received: number; outOfOrder: number; duplicates: number }[];
}

export interface CloudStats {
  count: number;
  invalid: number;
  invalidExamples: string[];
  kernelDrops: number;
  /** Kernel receive-buffer drops per UDP port in this namespace (ingress, replication, proxy, backend). */
  portDrops: Record<number, number>;
  proxy: ImpairmentProxy['counters'] | undefined;
  proxyQueued: number;
}

let backend: RecordingBackend | undefined;
let proxy: ImpairmentProxy | undefined;
const loads = new Map<string, LoadGen>();
let captured: Buffer[] = [];

/** Send the captured frames to host:port, paced (about 2 per ms) so the target's socket buffer keeps them all. */
async function replay(host: string, port: number): Promise<{ sent: number; errors: number }> {
  const sock = createSocket('udp4');
  let sent = 0;
  let errors = 0;
  try {
    for (let i = 0; i < captured.length; i += 10) {
      await Promise.all(
        captured.slice(i, i + 10).map(
          (f) =>
            new Promise<void>((resolve) =>
              sock.send(f, port, host, (err) => {
                if (err) errors++;
                else sent++;
                resolve();
              }),
            ),
        ),
      );
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    sock.close();
  }
  return { sent, errors };
}

// Incremental distinct (and total arrival) count per session, for cheap polling.
const seenKeys = new Set<number>();
const distinctBySession = new Map<number, number>();
const receivedBySession = new Map<number, number>();
let processed = 0;

function catchUpDistinct(): void {
  if (!backend) return;
  const b = backend.log;
  const n = b.count;
  for (let i = processed; i < n; i++) {
    const s = b.arrivalSession[i]!;
    receivedBySession.set(s, (receivedBySession.get(s) ?? 0) + 1);
    const key = s * 4294967296 + b.arrivalSeq[i]!;
    if (seenKeys.has(key)) continue;
    seenKeys.add(key);
    distinctBySession.set(s, (distinctBySession.get(s) ?? 0) + 1);
  }
  processed = n;
}

function filterGroup(
  map: ReadonlyMap<number, readonly number[]>,
  g: SessionGroup,
): Map<number, readonly number[]> {
  const out = new Map<number, readonly number[]>();
  for (let s = g.lo; s <= g.hi; s++) {
    const v = map.get(s);
    if (v) out.set(s, v);
  }
  return out;
}

function sessionsOf(g: SessionGroup): number[] {
  return Array.from({ length: g.hi - g.lo + 1 }, (_, i) => g.lo + i);
}

function analyze(groups: SessionGroup[], marks: number[]): AnalyzeResult {
  const b = need(backend, 'backend');
  const end = b.count;
  const bounds = [0, ...marks.filter((m) => m > 0 && m < end).sort((x, y) => x - y), end];
  const r: AnalyzeResult = {
    received: 0,
    distinct: 0,
    missing: 0,
    duplicates: 0,
    duplicatesWithinSegment: 0,
    outOfOrder: 0,
    unexpected: 0,
    examples: [],
    segments: [],
  };
  const all = b.seqsBySession();
  for (const g of groups) {
    const whole = analyzeDelivery(filterGroup(all, g), { sessions: sessionsOf(g), perSession: g.perSession });
    r.received += whole.received;
    r.distinct += whole.distinct;
    r.missing += whole.missing;
    r.duplicates += whole.duplicates;
    r.unexpected += whole.unexpected;
    for (const e of whole.examples) if (r.examples.length < 10) r.examples.push(e);
  }
  for (let k = 0; k + 1 < bounds.length; k++) {
    const from = bounds[k]!;
    const to = bounds[k + 1]!;
    const seg = { from, to, received: 0, outOfOrder: 0, duplicates: 0 };
    const part = b.seqsBySession(from, to);
    for (const g of groups) {
      const sub = filterGroup(part, g);
      // perSession only bounds "unexpected"/"missing", which are not used per segment.
      const x = analyzeDelivery(sub, { sessions: sessionsOf(g), perSession: g.perSession });
      seg.received += x.received;
      seg.outOfOrder += x.outOfOrder;
      seg.duplicates += x.duplicates;
      if (x.outOfOrder > 0) {
        for (const e of x.examples)
          if (r.examples.length < 10) r.examples.push(`segment ${k} [${from},${to}): ${e}`);
      }
    }
    r.outOfOrder += seg.outOfOrder;
    r.duplicatesWithinSegment += seg.duplicates;
    r.segments.push(seg);
  }
  return r;
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} not started`);
  return v;
}

type Args = Record<string, unknown>;

async function handle(op: string, a: Args): Promise<unknown> {
  switch (op) {
    case 'ping':
      return { pid: process.pid };
    case 'backend': {
      backend = await new RecordingBackend({
        host: a.host as string,
        port: a.port as number,
        reply: a.reply as boolean,
        name: 'backend',
      }).start();
      return { port: backend.port };
    }
    case 'proxy': {
      proxy = new ImpairmentProxy({
        listenHost: a.listenHost as string,
        listenPort: a.listenPort as number,
        target: { host: a.targetHost as string, port: a.targetPort as number },
        seed: a.seed as number,
      });
      await proxy.start();
      return { port: proxy.port };
    }
    case 'impair':
      need(proxy, 'proxy').setImpairment(a.impairment as Partial<Impairment>);
      need(proxy, 'proxy').setSources(a.sources as string[] | undefined);
      return need(proxy, 'proxy').current;
    case 'captureStart': {
      // DATA frames only (magic, version byte, type byte at offset 3): what carries datagrams.
      const max = a.max as number;
      captured = [];
      need(proxy, 'proxy').tap = (msg) => {
        if (
          captured.length < max &&
          msg.length > 4 &&
          msg.readUInt16BE(0) === MAGIC &&
          msg[3] === FrameType.Data
        )
          captured.push(Buffer.from(msg));
      };
      return {};
    }
    case 'captureCount':
      return { frames: captured.length };
    case 'captureStop':
      need(proxy, 'proxy').tap = undefined;
      return { frames: captured.length, bytes: captured.reduce((n, f) => n + f.length, 0) };
    case 'replay':
      return replay(a.host as string, a.port as number);
    case 'mark':
      return { index: need(backend, 'backend').count };
    case 'distinct': {
      catchUpDistinct();
      let distinct = 0;
      let received = 0;
      for (const [lo, hi] of a.ranges as [number, number][])
        for (let s = lo; s <= hi; s++) {
          distinct += distinctBySession.get(s) ?? 0;
          received += receivedBySession.get(s) ?? 0;
        }
      return { distinct, received, count: need(backend, 'backend').count };
    }
    case 'analyze':
      return analyze(a.groups as SessionGroup[], a.marks as number[]);
    case 'dump': {
      // Arrival order of the given sessions as CSV (index,session,seq), for a failure's evidence.
      const log = need(backend, 'backend').log;
      const groups = a.groups as SessionGroup[];
      const lines = ['index,session,seq'];
      for (let i = 0; i < log.count; i++) {
        const sess = log.arrivalSession[i]!;
        if (groups.some((g) => sess >= g.lo && sess <= g.hi)) lines.push(`${i},${sess},${log.arrivalSeq[i]}`);
      }
      writeFileSync(a.file as string, `${lines.join('\n')}\n`);
      return { lines: lines.length - 1 };
    }
    case 'stats': {
      const b = backend;
      const s: CloudStats = {
        count: b?.count ?? 0,
        invalid: b?.invalid ?? 0,
        invalidExamples: b?.log.invalidExamples ?? [],
        kernelDrops: b?.kernelDrops ?? 0,
        portDrops: dropsOnPorts((a.ports as number[] | undefined) ?? []),
        proxy: proxy ? { ...proxy.counters } : undefined,
        proxyQueued: proxy?.queued ?? 0,
      };
      return s;
    }
    case 'load': {
      const id = a.id as string;
      const gen = new LoadGen(a.options as LoadGenOptions);
      await gen.open();
      gen.start();
      loads.set(id, gen);
      return gen.status();
    }
    case 'loadStatus':
      return need(loads.get(a.id as string), `load ${String(a.id)}`).status();
    case 'loadStop':
      return need(loads.get(a.id as string), `load ${String(a.id)}`).stop();
    case 'loadClose': {
      const gen = loads.get(a.id as string);
      loads.delete(a.id as string);
      await gen?.close();
      return {};
    }
    case 'fetch': {
      try {
        const res = await fetch(a.url as string, {
          signal: AbortSignal.timeout((a.timeoutMs as number | undefined) ?? 1500),
        });
        return { status: res.status, body: await res.text() };
      } catch (err) {
        return { status: 0, body: '', error: String((err as Error).cause ?? err) };
      }
    }
    default:
      throw new Error(`unknown op ${op}`);
  }
}

function send(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let msg: { id: number; op: string; args?: Args };
  try {
    msg = JSON.parse(line) as typeof msg;
  } catch {
    return;
  }
  handle(msg.op, msg.args ?? {}).then(
    (result) => send({ id: msg.id, ok: true, result }),
    (err: unknown) =>
      send({
        id: msg.id,
        ok: false,
        error: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err),
      }),
  );
});
// The runner went away (crash, SIGKILL): do not linger inside the namespace.
rl.on('close', () => process.exit(0));
process.stderr.write(`agent ${process.argv[2] ?? ''} pid ${process.pid} ready\n`);
