// A backend for the bench, one process per cluster: counts datagrams per bench step, measures delivery
// latency from the send time in the payload, notices per-session reordering, and echoes when told to
// (reply mode). Controlled over IPC by run.ts.
//   node --import tsx test/bench/sink.ts --port N [--host 127.0.0.1]
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { Histogram } from './hist.ts';
import {
  HEADER_BYTES,
  MAGIC,
  monoNs,
  OFF_SENT_NS,
  OFF_SEQ,
  OFF_SESSION,
  OFF_STEP,
  serveIpc,
  type SinkCommand,
  type SinkStepReport,
} from './wire.ts';

interface StepStats {
  received: number;
  outOfOrder: number;
  firstRxNs: number;
  lastRxNs: number;
  latency: Histogram;
  /** Last seq seen per session index, -1 = none. */
  lastSeq: Int32Array;
  sessions: number;
}

const MAX_SESSIONS = 1 << 18;

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535)
  throw new Error(`--port: expected 1-65535, got ${values.port}`);

let echo = false;
let foreign = 0;
const steps = new Map<number, StepStats>();
let lastStep = -1;
let last: StepStats | undefined;

function statsFor(step: number): StepStats {
  if (step === lastStep && last) return last;
  let s = steps.get(step);
  if (!s) {
    s = {
      received: 0,
      outOfOrder: 0,
      firstRxNs: 0,
      lastRxNs: 0,
      latency: new Histogram(),
      lastSeq: new Int32Array(1024).fill(-1),
      sessions: 0,
    };
    steps.set(step, s);
  }
  lastStep = step;
  last = s;
  return s;
}

const socket = createSocket({
  type: 'udp4',
  recvBufferSize: 4 * 1024 * 1024,
  sendBufferSize: 4 * 1024 * 1024,
});
socket.on('message', (msg, rinfo) => {
  if (echo) socket.send(msg, rinfo.port, rinfo.address);
  if (msg.length < HEADER_BYTES || msg.readUInt32LE(0) !== MAGIC) {
    foreign++;
    return;
  }
  const now = monoNs();
  const s = statsFor(msg.readUInt32LE(OFF_STEP));
  s.received++;
  if (s.firstRxNs === 0) s.firstRxNs = now;
  s.lastRxNs = now;
  s.latency.record((now - msg.readDoubleLE(OFF_SENT_NS)) / 1000);
  const session = msg.readUInt32LE(OFF_SESSION);
  const seq = msg.readUInt32LE(OFF_SEQ) | 0;
  if (session < MAX_SESSIONS) {
    if (session >= s.lastSeq.length) {
      let n = s.lastSeq.length;
      while (n <= session) n *= 2;
      const grown = new Int32Array(Math.min(n, MAX_SESSIONS)).fill(-1);
      grown.set(s.lastSeq);
      s.lastSeq = grown;
    }
    const prev = s.lastSeq[session];
    if (prev === -1) s.sessions++;
    if (seq <= prev) s.outOfOrder++;
    else s.lastSeq[session] = seq;
  }
});
socket.on('error', () => {
  /* ICMP port unreachable from a client that already closed its socket: not our concern */
});
await new Promise<void>((resolve, reject) => {
  socket.once('error', reject);
  socket.bind(port, values.host, () => {
    socket.off('error', reject);
    resolve();
  });
});

serveIpc<SinkCommand>((c) => {
  switch (c.cmd) {
    case 'config':
      echo = c.echo;
      return { echo };
    case 'report': {
      const s = steps.get(c.step);
      const r: SinkStepReport = s
        ? {
            step: c.step,
            received: s.received,
            outOfOrder: s.outOfOrder,
            firstRxNs: s.firstRxNs,
            lastRxNs: s.lastRxNs,
            latency: s.latency.toData(),
            sessions: s.sessions,
          }
        : {
            step: c.step,
            received: 0,
            outOfOrder: 0,
            firstRxNs: 0,
            lastRxNs: 0,
            latency: new Histogram().toData(),
            sessions: 0,
          };
      return r;
    }
    case 'forget':
      steps.clear();
      last = undefined;
      lastStep = -1;
      return { foreign };
  }
});
