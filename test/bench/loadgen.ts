// The load generator, in its own process so it does not share an event loop with what it measures.
// Paced sends over S sessions (one socket each) at a target rate, or open loop (rate 0); every payload
// carries step, session, seq and the CLOCK_MONOTONIC send time; reply round trips are measured here.
// A separate command opens many distinct sessions (one source address each, 127.1.0.0 upwards).
import { createSocket, type Socket } from 'node:dgram';
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
  type LoadCollectResult,
  type LoadCommand,
  type LoadStepResult,
  type LoadStepSpec,
  type SessionsResult,
  type SessionsSpec,
} from './wire.ts';

interface StepState {
  sockets: Socket[];
  rtt: Histogram;
  replies: number;
  lastReplyNs: number;
}

const states = new Map<number, StepState>();

function bind(sock: Socket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, address, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}

function template(step: number, bytes: number): Buffer {
  const b = Buffer.alloc(Math.max(HEADER_BYTES, bytes));
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(step, OFF_STEP);
  for (let i = HEADER_BYTES; i < b.length; i++) b[i] = i & 0xff;
  return b;
}

async function run(spec: LoadStepSpec): Promise<LoadStepResult> {
  const st: StepState = { sockets: [], rtt: new Histogram(), replies: 0, lastReplyNs: 0 };
  states.set(spec.step, st);
  const onReply = (msg: Buffer): void => {
    if (
      msg.length < HEADER_BYTES ||
      msg.readUInt32LE(0) !== MAGIC ||
      msg.readUInt32LE(OFF_STEP) !== spec.step
    )
      return;
    st.replies++;
    const now = monoNs();
    st.lastReplyNs = now;
    st.rtt.record((now - msg.readDoubleLE(OFF_SENT_NS)) / 1000);
  };
  for (let i = 0; i < spec.sessions; i++) {
    const s = createSocket({ type: 'udp4', recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    s.on('message', onReply);
    s.on('error', () => {
      /* ICMP unreachable and the like */
    });
    await bind(s, '127.0.0.1', 0);
    st.sockets.push(s);
  }
  const tpl = template(spec.step, spec.payloadBytes);
  // A small pool of payload buffers: dgram may hold a buffer until the send completes, so reuse only
  // after the pool has wrapped (sends on loopback complete synchronously in practice).
  const POOL = 4096;
  const pool = Array.from({ length: POOL }, () => Buffer.from(tpl));
  const seqs = new Uint32Array(spec.sessions);
  let sent = 0;
  let sendErrors = 0;
  let next = 0;
  const onSent = (err: Error | null): void => {
    if (err) sendErrors++;
  };
  const sendOne = (): void => {
    const sess = next;
    next = next + 1 === spec.sessions ? 0 : next + 1;
    const buf = pool[sent & (POOL - 1)];
    buf.writeUInt32LE(sess, OFF_SESSION);
    buf.writeUInt32LE(seqs[sess]++, OFF_SEQ);
    buf.writeDoubleLE(monoNs(), OFF_SENT_NS);
    st.sockets[sess].send(buf, spec.port, spec.host, onSent);
    sent++;
  };
  const startNs = monoNs();
  const endAt = startNs + spec.durationMs * 1e6;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      const now = monoNs();
      if (now >= endAt) {
        resolve();
        return;
      }
      if (spec.rate <= 0) {
        // Open loop: batches, yielding between them so replies are read too.
        for (let i = 0; i < 64; i++) sendOne();
        setImmediate(pump);
        return;
      }
      const due = Math.floor(((now - startNs) / 1e9) * spec.rate) + 1;
      let n = Math.min(due - sent, 512);
      while (n-- > 0) sendOne();
      if (sent < due) setImmediate(pump);
      else setTimeout(pump, 1);
    };
    pump();
  });
  return { step: spec.step, sent, sendErrors, startNs, endNs: monoNs() };
}

function collect(step: number): LoadCollectResult {
  const st = states.get(step);
  if (!st) return { step, replies: 0, lastReplyNs: 0, rtt: new Histogram().toData() };
  for (const s of st.sockets) s.close();
  states.delete(step);
  return { step, replies: st.replies, lastReplyNs: st.lastReplyNs, rtt: st.rtt.toData() };
}

// Session i sends from a fixed tuple: address 127.1.0.0 + floor(i / PORTS_PER_ADDRESS), port
// FIRST_PORT + i % PORTS_PER_ADDRESS (the whole 127/8 is loopback on Linux). The ports lie above the
// kernel's ephemeral range, so the replicator's own upstream sockets (bound to 0.0.0.0:<ephemeral>,
// one per session in reply mode) never take a tuple a later round needs again.
const FIRST_PORT = 61_000;
const PORTS_PER_ADDRESS = 4_000;

function sessionTuple(i: number): { address: string; port: number } {
  const n = (1 << 16) + Math.floor(i / PORTS_PER_ADDRESS); // 127.1.0.0 + k
  return {
    address: `127.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
    port: FIRST_PORT + (i % PORTS_PER_ADDRESS),
  };
}

async function sessions(spec: SessionsSpec): Promise<SessionsResult> {
  if (spec.count > (1 << 24) - (1 << 16)) throw new Error('too many sessions');
  const t0 = monoNs();
  const tpl = template(spec.step, spec.payloadBytes);
  let sent = 0;
  let bindFailures = 0;
  let established = 0;
  for (let start = 0; start < spec.count; start += spec.batch) {
    // batch of sockets open at once
    const end = Math.min(spec.count, start + spec.batch);
    const open: Socket[] = [];
    await Promise.all(
      Array.from({ length: end - start }, async (_, k) => {
        const i = start + k;
        const s = createSocket('udp4');
        s.on('error', () => {});
        try {
          const t = sessionTuple(i);
          await bind(s, t.address, t.port);
        } catch {
          bindFailures++;
          s.close();
          return;
        }
        open.push(s);
        established++;
        for (let q = 0; q < spec.perSession; q++) {
          const b = Buffer.from(tpl);
          b.writeUInt32LE(i, OFF_SESSION);
          b.writeUInt32LE((spec.refresh ? spec.perSession : 0) + q, OFF_SEQ);
          b.writeDoubleLE(monoNs(), OFF_SENT_NS);
          s.send(b, spec.port, spec.host);
          sent++;
        }
      }),
    );
    // Let the sends leave before closing the sockets.
    await new Promise((r) => setImmediate(r));
    for (const s of open) s.close();
    // Paced: this step measures memory, not speed, and the ingress must not drop the opening datagrams.
    const ahead = t0 / 1e6 + (sent / spec.rate) * 1000 - monoNs() / 1e6;
    await new Promise((r) => setTimeout(r, Math.max(1, ahead)));
  }
  return { step: spec.step, sessions: established, sent, bindFailures, elapsedMs: (monoNs() - t0) / 1e6 };
}

serveIpc<LoadCommand>((c) => {
  switch (c.cmd) {
    case 'run':
      return run(c.spec);
    case 'collect':
      return collect(c.step);
    case 'sessions':
      return sessions(c.spec);
  }
});
