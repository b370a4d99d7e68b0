// proxy-v2 end to end with real servers, in all three "clouds" of local mode (`npm run local` with
// `--backend aws=... --session-identity proxy-v2`):
//  - dnsdist (Debian package `dnsdist`), which accepts PROXY v2 over UDP from setProxyProtocolACL
//    sources, logs the client address it read from the header (and the origin-cluster TLV) in every
//    cloud, and acts on it at the origin: it answers only the proxied client address 127.0.0.2 (the
//    replicators send from 127.0.0.1, which it refuses).
//  - a session-keyed backend per cloud that checks each session's datagrams carry one client identity,
//    identical in every cloud, in order.
// Skipped (with the reason) when dnsdist is not installed.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLocalModeBase, freePorts } from '../../harness/freePort.ts';
import { decodeProxyV2, TLV_ORIGIN_CLUSTER, TLV_SESSION } from '../../../replicator/delivery/proxyV2.ts';

const CLOUDS = ['aws', 'gcp', 'azure'] as const;
const NODE = process.execPath;
const hasDnsdist = spawnSync('dnsdist', ['--version']).status === 0;

function dnsQuery(id: number, name: string): Buffer {
  const labels = name
    .split('.')
    .filter((l) => l !== '')
    .map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([
    Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
    ...labels,
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
}

async function until(
  what: string | (() => string),
  ms: number,
  ok: () => boolean | Promise<boolean>,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A base port for local mode whose whole plan is free (local mode refuses busy ports). */
class LocalMode {
  private out = '';
  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
  }
  get output(): string {
    return this.out;
  }
  async ready(): Promise<void> {
    await until('local mode to start', 90_000, () => {
      if (this.child.exitCode !== null) throw new Error(`local mode exited:\n${this.out}`);
      return this.out.includes('udpmesh is running locally');
    });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}

function startLocal(base: number, backends: Record<string, number>): LocalMode {
  const args = ['--import', 'tsx', 'replicator/local/main.ts', '--base-port', String(base), '--no-dashboard'];
  for (const c of CLOUDS) args.push('--backend', `${c}=127.0.0.1:${backends[c]}`);
  args.push('--session-identity', 'proxy-v2');
  return new LocalMode(spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
}

describe('local mode, sessionIdentity proxy-v2, real PROXY v2 servers in three clouds', function () {
  this.timeout(180_000);
  let dir: string;
  const children: ChildProcess[] = [];
  let local: LocalMode | undefined;
  const sockets: Socket[] = [];

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'udpmesh-proxyv2-'));
  });

  afterEach(async function () {
    this.timeout(30_000);
    if (this.currentTest?.state === 'failed' && local) process.stderr.write(local.output.slice(-4000));
    await local?.stop();
    local = undefined;
    for (const c of children.splice(0)) {
      if (c.exitCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await gone;
      }
    }
    for (const s of sockets.splice(0)) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('dnsdist in every cloud logs the original client address; the origin answers only that client', async function () {
    if (!hasDnsdist) this.skip(); // apt-get install dnsdist
    const ports = await freePorts(3);
    const backends: Record<string, number> = {};
    CLOUDS.forEach((c, i) => {
      backends[c] = ports[i]!;
      const conf = join(dir, `${c}.lua`);
      writeFileSync(
        conf,
        `setLocal('127.0.0.1:${ports[i]}')
setProxyProtocolACL({'127.0.0.1/32'})
setSecurityPollSuffix('')
local log = io.open('${join(dir, `${c}.log`)}', 'a')
function logClient(dq)
  local v = dq:getProxyProtocolValues() or {}
  log:write(dq.remoteaddr:toStringWithPort() .. ' ' .. tostring(v[0xe0]) .. ' ' .. dq.qname:toString() .. '\\n')
  log:flush()
  return DNSAction.None, ''
end
addAction(AllRule(), LuaAction(logClient))
local clients = newNMG()
clients:addMask('127.0.0.2/32')
addAction(NetmaskGroupRule(clients), SpoofAction('192.0.2.77'))
addAction(AllRule(), RCodeAction(DNSRCode.REFUSED))
`,
      );
      const child = spawn('dnsdist', ['--supervised', '--disable-syslog', '-C', conf], { stdio: 'ignore' });
      children.push(child);
    });
    const base = await freeLocalModeBase();
    local = startLocal(base, backends);
    await local.ready();

    const client = createSocket('udp4');
    sockets.push(client);
    await new Promise<void>((r) => client.bind(0, '127.0.0.2', r));
    const clientAddr = `127.0.0.2:${client.address().port}`;
    const answers: Buffer[] = [];
    client.on('message', (m) => answers.push(m));
    const names = Array.from({ length: 5 }, (_, i) => `q${i}.example.`);
    for (const [i, n] of names.entries()) client.send(dnsQuery(100 + i, n), base + 1, '127.0.0.1');

    // Acted on at the origin: dnsdist answers only the proxied client 127.0.0.2 (A 192.0.2.77) and refuses
    // everyone else, the replicators' own address 127.0.0.1 included; the answer comes back to the client.
    await until('five answers', 20_000, () => answers.length >= 5);
    for (const a of answers) {
      assert.equal(a.readUInt16BE(2) & 0x000f, 0, 'rcode NOERROR: dnsdist saw 127.0.0.2, not the replicator');
      assert.ok(a.subarray(a.length - 4).equals(Buffer.from([192, 0, 2, 77])), 'the spoofed A record');
    }
    // Logged in every cloud, with the client's own address and port and the origin cluster TLV.
    for (const c of CLOUDS) {
      const file = join(dir, `${c}.log`);
      await until(`${c} dnsdist log`, 20_000, () =>
        existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').length >= 5 : false,
      );
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      assert.deepEqual(
        lines,
        names.map((n) => `${clientAddr} aws ${n}`),
        `${c}: dnsdist's view of the client`,
      );
    }
  });

  it('a session-keyed PROXY v2 backend in every cloud: one identity per session, the same everywhere, in order', async () => {
    const seen = new Map<string, Map<string, { src: string; seqs: number[] }>>();
    const backends: Record<string, number> = {};
    for (const c of CLOUDS) {
      const perSession = new Map<string, { src: string; seqs: number[] }>();
      seen.set(c, perSession);
      const s = createSocket('udp4');
      sockets.push(s);
      s.on('message', (msg, rinfo) => {
        const d = decodeProxyV2(msg);
        if (!d.ok) throw new Error(`${c}: not PROXY v2: ${d.reason}`);
        const key = `${d.header.tlvs.get(TLV_ORIGIN_CLUSTER)?.toString()}/${d.header.tlvs.get(TLV_SESSION)?.toString('hex')}`;
        const src = d.header.source ? `${d.header.source.address}:${d.header.source.port}` : 'unknown';
        const e = perSession.get(key) ?? { src, seqs: [] };
        perSession.set(key, e);
        if (e.src !== src) e.src = `CHANGED ${e.src} -> ${src}`;
        e.seqs.push(d.payload.readUInt32BE(0));
        s.send('ok', rinfo.port, rinfo.address); // replies at remote clusters are discarded, and counted
      });
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      backends[c] = s.address().port;
    }
    const base = await freeLocalModeBase();
    local = startLocal(base, backends);
    await local.ready();
    const clients: string[] = [];
    const PER = 50;
    for (let k = 0; k < 8; k++) {
      const cl = createSocket('udp4');
      sockets.push(cl);
      await new Promise<void>((r) => cl.bind(0, '127.0.0.1', r));
      clients.push(`127.0.0.1:${cl.address().port}`);
      const ingress = base + 1 + (k % 3); // sessions enter in every cloud
      for (let i = 0; i < PER; i++) {
        const p = Buffer.alloc(8);
        p.writeUInt32BE(i, 0);
        cl.send(p, ingress, '127.0.0.1');
        // Paced: a burst larger than a socket's receive buffer is lost by the kernel on a busy machine,
        // before any replicator sees it (what the replicators drop is counted; that is not).
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
      }
    }
    const counts = (): string =>
      CLOUDS.map((c) => `${c}: ${[...seen.get(c)!.values()].map((e) => e.seqs.length).join(',')}`).join('; ');
    await until(
      () => `every cloud to see 8 sessions x 50 (${counts()})`,
      30_000,
      () => CLOUDS.every((c) => [...seen.get(c)!.values()].reduce((n, e) => n + e.seqs.length, 0) >= 8 * PER),
    );
    const reference = seen.get('aws')!;
    assert.equal(reference.size, 8);
    assert.deepEqual(new Set([...reference.values()].map((e) => e.src)), new Set(clients));
    for (const c of CLOUDS) {
      const mine = seen.get(c)!;
      for (const [key, e] of reference) {
        assert.equal(mine.get(key)?.src, e.src, `${c}: session ${key} has the origin's client identity`);
        assert.deepEqual(
          mine.get(key)?.seqs,
          Array.from({ length: PER }, (_, i) => i),
          `${c}: ${key} in order`,
        );
      }
    }
  });
});
