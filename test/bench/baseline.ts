// The baseline: the same topology built from plain Node UDP forwarders with no reliability, no
// ordering, no sessions table beyond what a relay needs. One process per "cluster".
//   fanout (the ingress, "aws"): every client datagram to the local sink and to every peer forwarder;
//     in reply mode through one upstream socket per client session (as nginx/Envoy relay), relaying the
//     sink's replies back to the client from the ingress socket.
//   leaf ("gcp", "azure"): every datagram to the local sink; replies from the sink are dropped.
//   node --import tsx test/bench/baseline.ts --role fanout|leaf --port N --sink host:port
//        [--peers host:port,host:port] [--mode oneway|reply]
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    sink: { type: 'string' },
    peers: { type: 'string', default: '' },
    mode: { type: 'string', default: 'oneway' },
  },
});

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
    throw new Error(`expected host:port, got ${s}`);
  return { host: s.slice(0, i), port };
}

const role = values.role;
if (role !== 'fanout' && role !== 'leaf') throw new Error('--role fanout|leaf');
const mode = values.mode;
if (mode !== 'oneway' && mode !== 'reply') throw new Error('--mode oneway|reply');
const sink = hostPort(values.sink ?? '');
const peers = (values.peers ?? '')
  .split(',')
  .filter((p) => p.length > 0)
  .map(hostPort);
const port = Number(values.port);

const BUF = 8 * 1024 * 1024; // what the replicator asks for too (both are capped by net.core.*mem_max)
function udp(): Socket {
  const s = createSocket('udp4');
  s.on('error', () => {
    /* ICMP-induced errors on loopback are not fatal */
  });
  return s;
}
function bufs(s: Socket): void {
  try {
    s.setRecvBufferSize(BUF);
    s.setSendBufferSize(BUF);
  } catch {
    /* capped */
  }
}

const ingress = udp();
const out = udp();
let dropped = 0;
out.on('message', () => dropped++); // replies from sinks at a leaf (or in oneway mode): nobody to relay to

const sessions = new Map<string, Socket>();

function upstreamFor(rinfo: RemoteInfo): Socket {
  const key = `${rinfo.address}|${rinfo.port}`;
  let up = sessions.get(key);
  if (up === undefined) {
    const address = rinfo.address;
    const cport = rinfo.port;
    up = udp();
    up.on('message', (reply) => ingress.send(reply, cport, address));
    sessions.set(key, up);
  }
  return up;
}

if (role === 'fanout') {
  ingress.on('message', (msg, rinfo) => {
    if (mode === 'reply') upstreamFor(rinfo).send(msg, sink.port, sink.host);
    else out.send(msg, sink.port, sink.host);
    for (let i = 0; i < peers.length; i++) out.send(msg, peers[i].port, peers[i].host);
  });
} else {
  ingress.on('message', (msg) => out.send(msg, sink.port, sink.host));
}

await new Promise<void>((resolve, reject) => {
  ingress.once('error', reject);
  ingress.bind(port, values.host, () => resolve());
});
bufs(ingress);
out.bind(0, values.host, () => bufs(out));
process.stdout.write(`baseline ${role} ${mode} on ${values.host}:${ingress.address().port}\n`);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
void dropped;
