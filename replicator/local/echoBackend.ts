// A small UDP echo backend: every datagram is sent back unchanged to where it came from, and counted.
// Used by local mode (one per cloud) and runnable on its own:
//   node --import tsx replicator/local/echoBackend.ts --port 5353 [--host 127.0.0.1] [--no-reply]
import { createSocket, type Socket } from 'node:dgram';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface EchoBackendOptions {
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Send replies (default true). */
  reply?: boolean;
}

export interface EchoBackend {
  readonly host: string;
  readonly port: number;
  /** host:port, as delivery.backends wants it. */
  readonly endpoint: string;
  /** Datagrams received. */
  readonly received: number;
  /** Bytes received. */
  readonly receivedBytes: number;
  /** Replies sent without error. */
  readonly replied: number;
  /** Distinct source address:port pairs seen. */
  readonly sources: number;
  close(): Promise<void>;
}

const ECHO_MAIN = fileURLToPath(import.meta.url);

/** The command that runs an echo backend as its own process (the `local` Pulumi target runs it detached). */
export function echoBackendCommand(host: string, port: number): { command: string; args: string[] } {
  return {
    command: process.execPath,
    args: ['--import', 'tsx', ECHO_MAIN, '--host', host, '--port', String(port)],
  };
}

export async function startEchoBackend(opts: EchoBackendOptions = {}): Promise<EchoBackend> {
  const host = opts.host ?? '127.0.0.1';
  const reply = opts.reply ?? true;
  const socket: Socket = createSocket({
    type: host.includes(':') ? 'udp6' : 'udp4',
    recvBufferSize: 4 * 1024 * 1024,
  });
  let received = 0;
  let receivedBytes = 0;
  let replied = 0;
  const sources = new Set<string>();
  const onSent = (err: Error | null): void => {
    if (!err) replied++;
  };
  socket.on('message', (msg, rinfo) => {
    received++;
    receivedBytes += msg.length;
    if (sources.size < 1_000_000) sources.add(`${rinfo.address}:${rinfo.port}`);
    if (reply) socket.send(msg, rinfo.port, rinfo.address, onSent);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(opts.port ?? 0, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => {
    /* ICMP-induced send errors on loopback are not fatal for an echo server */
  });
  const port = socket.address().port;
  let closed = false;
  return {
    host,
    port,
    endpoint: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    get received() {
      return received;
    },
    get receivedBytes() {
      return receivedBytes;
    },
    get replied() {
      return replied;
    },
    get sources() {
      return sources.size;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'no-reply': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: echoBackend.ts [--host 127.0.0.1] [--port N] [--no-reply]\n');
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: expected 0-65535, got ${values.port}`);
  const backend = await startEchoBackend({ host: values.host, port, reply: !values['no-reply'] });
  process.stdout.write(`echo backend listening on udp ${backend.endpoint}\n`);
  const timer = setInterval(() => {
    process.stdout.write(
      `received ${backend.received} datagrams (${backend.receivedBytes} bytes), replied ${backend.replied}\n`,
    );
  }, 5000);
  const stop = (): void => {
    clearInterval(timer);
    void backend.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
