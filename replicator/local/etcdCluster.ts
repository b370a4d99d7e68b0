// An N-member etcd cluster on loopback, for local mode and the tests: Debian's etcd binary
// (package etcd-server, 3.4), free ports, data dirs in a temp dir, fast heartbeat/election timers.
// Each member runs in its own process group and can be killed and restarted with the same data.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { track, trackDir, untrackDir, stopChild, signalGroup, waitForExit } from './children.ts';
import { freePorts } from './freePort.ts';
import { which } from './detached.ts';

export interface EtcdClusterOptions {
  /** Number of members (default 3). */
  size?: number;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string;
  /** etcd binary (default: $ETCD_BIN, /usr/bin/etcd, or etcd on PATH). */
  etcdBinary?: string;
  heartbeatIntervalMs?: number;
  electionTimeoutMs?: number;
  /** How long to wait for the cluster to become healthy (default 30 s). */
  startTimeoutMs?: number;
  /** Install etcd-server with apt-get when the binary is missing and we are root (default true). */
  autoInstall?: boolean;
  /** Member name prefix (default "etcd"). */
  namePrefix?: string;
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** Process id of the running member, or undefined while it is down. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Send a signal (default SIGKILL) and wait until the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start the member again with the same name, ports and data dir; waits until it serves. */
  restart(): Promise<void>;
  /** Last lines of the member's log. */
  logTail(lines?: number): string;
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: EtcdMember[];
  readonly dir: string;
  /** The member every running member agrees is the leader (waits up to timeoutMs for one). */
  leader(timeoutMs?: number): Promise<EtcdMember>;
  /** Resolves when every running member reports healthy and a write through the cluster succeeds. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Stop every member (SIGTERM, then SIGKILL) and remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const INSTALL_COMMAND = 'apt-get update && apt-get install -y etcd-server';

/** Path of the etcd binary, installing Debian's etcd-server when missing and allowed (root + apt-get). */
export function findEtcdBinary(autoInstall = true, explicit?: string): string {
  const candidates = [explicit, process.env.ETCD_BIN, '/usr/bin/etcd', which('etcd')].filter(
    (c): c is string => typeof c === 'string' && c.length > 0,
  );
  for (const c of candidates) if (existsSync(c)) return c;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const apt = which('apt-get');
  if (autoInstall && isRoot && apt) {
    process.stderr.write(`etcd not found; installing: ${INSTALL_COMMAND}\n`);
    const r = spawnSync('sh', ['-c', INSTALL_COMMAND], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status === 0 && existsSync('/usr/bin/etcd')) return '/usr/bin/etcd';
    throw new Error(`installing etcd failed (exit ${r.status}); run as root: ${INSTALL_COMMAND}`);
  }
  throw new Error(
    `the etcd binary was not found (looked for $ETCD_BIN, /usr/bin/etcd, PATH); install it with: sudo sh -c '${INSTALL_COMMAND}'`,
  );
}

function tail(file: string, lines: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '';
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True when the member at clientUrl answers /health with health "true" (it sees a leader). */
export async function memberHealthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return false;
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

class Member implements EtcdMember {
  child: ChildProcess | undefined;
  constructor(
    readonly name: string,
    readonly clientUrl: string,
    readonly peerUrl: string,
    readonly dataDir: string,
    readonly logFile: string,
    private readonly binary: string,
    private readonly args: string[],
    private readonly owner: Cluster,
  ) {}

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  spawn(): void {
    const fd = openSync(this.logFile, 'a');
    try {
      this.child = spawn(this.binary, this.args, {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: etcdEnv(),
      });
    } finally {
      closeSync(fd);
    }
    track(this.child);
    this.child.on('error', () => {
      /* reported through exit / health checks */
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = waitForExit(child);
    signalGroup(child, signal);
    await exited;
  }

  async restart(): Promise<void> {
    if (this.running) throw new Error(`etcd member ${this.name} is still running (pid ${this.pid})`);
    this.spawn();
    await this.owner.waitMember(this, 30_000);
  }

  async stop(): Promise<void> {
    // The data is thrown away with the temp dir, so there is nothing to shut down gracefully for
    // (SIGTERM makes a leader try to hand over leadership to members that are stopping too).
    if (this.child) await stopChild(this.child, 'SIGKILL', 5000);
  }

  logTail(lines = 30): string {
    return tail(this.logFile, lines);
  }
}

class Cluster implements EtcdCluster {
  readonly members: Member[] = [];
  private stopped = false;
  constructor(readonly dir: string) {}

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  async waitMember(m: Member, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!m.running) {
        throw new Error(`etcd member ${m.name} exited during start-up; log:\n${m.logTail(40)}`);
      }
      if (await memberHealthy(m.clientUrl)) return;
      await delay(100);
    }
    throw new Error(
      `etcd member ${m.name} (${m.clientUrl}) not healthy after ${timeoutMs} ms; log:\n${m.logTail(40)}`,
    );
  }

  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const m of this.members) {
      if (m.running) await this.waitMember(m, Math.max(1, deadline - Date.now()));
    }
    const running = this.members.filter((m) => m.running).map((m) => m.clientUrl);
    const client = new Etcd3({ hosts: running, dialTimeout: 2000 });
    try {
      let lastError: unknown;
      while (Date.now() < deadline) {
        try {
          await client.put('/udpmesh-local/healthcheck').value(String(Date.now()));
          await client.get('/udpmesh-local/healthcheck').string();
          return;
        } catch (err) {
          lastError = err;
          await delay(100);
        }
      }
      throw new Error(`etcd cluster did not accept a write within ${timeoutMs} ms: ${String(lastError)}`);
    } finally {
      client.close();
    }
  }

  async leader(timeoutMs = 15_000): Promise<EtcdMember> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no member answered';
    while (Date.now() < deadline) {
      const views: { member: Member; self: string; leader: string }[] = [];
      for (const m of this.members) {
        if (!m.running) continue;
        const client = new Etcd3({ hosts: m.clientUrl, dialTimeout: 1000 });
        try {
          const st = await client.maintenance.status({ deadline: new Date(Date.now() + 1000) } as never);
          views.push({ member: m, self: st.header.member_id, leader: st.leader });
        } catch (err) {
          last = `${m.name}: ${String(err)}`;
        } finally {
          client.close();
        }
      }
      const leaders = new Set(views.map((v) => v.leader));
      const runningCount = this.members.filter((m) => m.running).length;
      if (views.length === runningCount && views.length > 0 && leaders.size === 1) {
        const id = views[0]!.leader;
        const found = views.find((v) => v.self === id);
        if (id !== '0' && found) return found.member;
        last = `leader id ${id} is not a running member`;
      } else if (views.length > 0) {
        last = `members disagree on the leader: ${views.map((v) => `${v.member.name}→${v.leader}`).join(', ')}`;
      }
      await delay(100);
    }
    throw new Error(`no etcd leader within ${timeoutMs} ms (${last})`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.members.map((m) => m.stop()));
    rmSync(this.dir, { recursive: true, force: true });
    untrackDir(this.dir);
  }
}

/** Start an N-member etcd cluster on loopback and wait until it is healthy. */
export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const size = opts.size ?? 3;
  const host = opts.host ?? '127.0.0.1';
  const binary = findEtcdBinary(opts.autoInstall ?? true, opts.etcdBinary);
  const prefix = opts.namePrefix ?? 'etcd';
  const dir = mkdtempSync(join(tmpdir(), 'udpmesh-etcd-'));
  trackDir(dir);
  const cluster = new Cluster(dir);
  try {
    const ports = await freePorts(size * 2, host);
    const names = Array.from({ length: size }, (_, i) => `${prefix}${i}`);
    const peerUrls = names.map((_, i) => `http://${host}:${ports[2 * i + 1]}`);
    const initialCluster = names.map((n, i) => `${n}=${peerUrls[i]}`).join(',');
    const token = `udpmesh-${process.pid}-${Date.now().toString(36)}`;
    for (let i = 0; i < size; i++) {
      const name = names[i]!;
      const clientUrl = `http://${host}:${ports[2 * i]}`;
      const peerUrl = peerUrls[i]!;
      const dataDir = join(dir, `${name}.data`);
      const args = etcdMemberArgs({
        name,
        dataDir,
        clientUrl,
        peerUrl,
        initialCluster,
        token,
        heartbeatIntervalMs: opts.heartbeatIntervalMs,
        electionTimeoutMs: opts.electionTimeoutMs,
      });
      const m = new Member(
        name,
        clientUrl,
        peerUrl,
        dataDir,
        join(dir, `${name}.log`),
        binary,
        args,
        cluster,
      );
      cluster.members.push(m);
      m.spawn();
    }
    await cluster.waitHealthy(opts.startTimeoutMs ?? 30_000);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** Environment for an etcd member: etcd 3.4 refuses to start on non-amd64 architectures unless told otherwise. */
export function etcdEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (process.arch === 'arm64') env.ETCD_UNSUPPORTED_ARCH = 'arm64';
  else if (process.arch !== 'x64') env.ETCD_UNSUPPORTED_ARCH = process.arch;
  return env;
}

/** Command-line flags of one member of a new static etcd cluster (fast timers for loopback by default). */
export function etcdMemberArgs(m: {
  name: string;
  dataDir: string;
  clientUrl: string;
  peerUrl: string;
  initialCluster: string;
  token: string;
  heartbeatIntervalMs?: number;
  electionTimeoutMs?: number;
}): string[] {
  return [
    '--name',
    m.name,
    '--data-dir',
    m.dataDir,
    '--listen-client-urls',
    m.clientUrl,
    '--advertise-client-urls',
    m.clientUrl,
    '--listen-peer-urls',
    m.peerUrl,
    '--initial-advertise-peer-urls',
    m.peerUrl,
    '--initial-cluster',
    m.initialCluster,
    '--initial-cluster-state',
    'new',
    '--initial-cluster-token',
    m.token,
    '--heartbeat-interval',
    String(m.heartbeatIntervalMs ?? 50),
    '--election-timeout',
    String(m.electionTimeoutMs ?? 500),
    '--logger',
    'zap',
    '--log-outputs',
    'stderr',
  ];
}
