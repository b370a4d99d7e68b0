// A recording UDP backend: decodes every datagram of the load payload, records (session, seq) in
// arrival order (RecordingLog), and answers each with an echo. Runs in the calling process; the
// integration tests run it in a child process (remoteRecordingBackend.ts) so that it keeps up with
// the load even when the test process is busy.
import { createSocket, type Socket } from 'node:dgram';
import { decodePayload } from './payload.ts';
import { RecordingLog } from './recordingLog.ts';
import type { DeliveryReport, Expected } from './deliveryCheck.ts';
import { dropsOnPorts } from './udpDrops.ts';

export interface RecordingBackendOptions {
  host?: string;
  port?: number;
  /** Echo every datagram back to its source (default true). */
  reply?: boolean;
  name?: string;
}

export class RecordingBackend {
  readonly name: string;
  readonly log = new RecordingLog();
  private socket: Socket | undefined;
  private readonly reply: boolean;
  private readonly host: string;
  private readonly wantedPort: number;
  replyErrors = 0;

  constructor(opts: RecordingBackendOptions = {}) {
    this.name = opts.name ?? 'backend';
    this.reply = opts.reply ?? true;
    this.host = opts.host ?? '127.0.0.1';
    this.wantedPort = opts.port ?? 0;
  }

  async start(): Promise<this> {
    const socket = createSocket({
      type: this.host.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: 4 * 1024 * 1024,
    });
    this.socket = socket;
    const onSent = (err: Error | null): void => {
      if (err) this.replyErrors++;
    };
    const log = this.log;
    socket.on('message', (msg, rinfo) => {
      const d = decodePayload(msg);
      if (d.ok) log.add(d.session, d.seq, `${rinfo.address}:${rinfo.port}`);
      else log.addInvalid(`${d.reason} from ${rinfo.address}:${rinfo.port}`);
      if (this.reply) socket.send(msg, rinfo.port, rinfo.address, onSent);
    });
    socket.on('error', () => {
      /* send errors (ICMP unreachable) are not fatal for a test backend */
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.wantedPort, this.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return this;
  }

  get port(): number {
    if (!this.socket) throw new Error(`${this.name} not started`);
    return this.socket.address().port;
  }

  /** host:port for delivery.backends. */
  get endpoint(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  get count(): number {
    return this.log.count;
  }

  get distinct(): number {
    return this.log.distinct;
  }

  get invalid(): number {
    return this.log.invalid;
  }

  /** Kernel drops on this backend's socket (receive buffer overflow), from /proc/net/udp. */
  get kernelDrops(): number {
    return this.socket ? (dropsOnPorts([this.port])[this.port] ?? 0) : 0;
  }

  mark(label: string): number {
    return this.log.mark(label);
  }

  seqsBySession(from?: number, to?: number): Map<number, number[]> {
    return this.log.seqsBySession(from, to);
  }

  sourcesOf(session: number): number {
    return this.log.sourcesOf(session);
  }

  report(expected: Expected, from?: number, to?: number): DeliveryReport {
    return this.log.report(expected, from, to);
  }

  orderViolations(from?: number, to?: number): { violations: number; examples: string[] } {
    return this.log.orderViolations(from, to);
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

export async function startRecordingBackend(opts: RecordingBackendOptions = {}): Promise<RecordingBackend> {
  return new RecordingBackend(opts).start();
}
