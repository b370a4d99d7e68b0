// The chaos mesh: the namespaces (netns.ts), in each cloud namespace an etcd member, a replicator, a
// recording backend and an impairment proxy in front of the replicator's replication port (the replicator
// advertises the proxy's port), and the load client in its own namespace. Everything the runner asks
// of the network (metrics, /readyz, etcd health) goes through the client namespace's agent.
// A scenario can add a second replica to a cloud (addReplica: same namespace, same backend, its own ports,
// no proxy) for as long as it needs one, so the other scenarios keep their one replica per cloud and the
// mesh starts as fast as before.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReplicatorConfigInput } from '../../replicator/config/schema.ts';
import { etcdMemberArgs, findEtcdBinary } from '../../replicator/local/etcdCluster.ts';
import { formatSamples, parsePrometheusText, select, sumOf, type Sample } from '../harness/metrics.ts';
import { waitFor } from '../harness/wait.ts';
import type { Impairment } from '../harness/impairmentProxy.ts';
import { Agent } from './agentClient.ts';
import type { AnalyzeResult, CloudStats, SessionGroup } from './agent.ts';
import type { LoadGenOptions, LoadStatus } from './loadGen.ts';
import {
  cleanupStale,
  createTopology,
  destroyTopology,
  setLink,
  type NsHost,
  type Topology,
} from './netns.ts';
import { NsProcess } from './nsProcess.ts';

export const CLOUDS = ['aws', 'gcp', 'azure'] as const;
export type Cloud = (typeof CLOUDS)[number];

export const PORTS = {
  ingress: 7001,
  replication: 7946,
  proxy: 7947,
  metrics: 9100,
  backend: 9001,
  etcdClient: 2379,
  etcdPeer: 2380,
};

export interface CloudNode {
  cloud: Cloud;
  host: NsHost;
  /** Runs the recording backend. */
  agent: Agent;
  /** Runs the impairment proxy in front of the replication port. */
  proxyAgent: Agent;
  etcd: NsProcess;
  replicator: NsProcess;
  etcdUrl: string;
  metricsBase: string;
}

/** A replicator added to a cloud beside its first one (a second replica of that cluster). */
export interface ReplicaNode {
  cloud: Cloud;
  instance: string;
  /** Member id, as peers label it (cluster/instance). */
  member: string;
  replicator: NsProcess;
  metricsBase: string;
}

export interface ChaosMeshOptions {
  log?: (line: string) => void;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  leaseTtlSeconds?: number;
  gapTimeoutMs?: number;
  keepLogs?: boolean;
}

export class ChaosMesh {
  topo: Topology | undefined;
  readonly dir: string;
  readonly nodes: CloudNode[] = [];
  client: Agent | undefined;
  clientHost: NsHost | undefined;
  private stopped = false;
  private readonly exitHook = (): void => {
    if (this.topo) destroyTopology(this.topo);
  };
  readonly log: (line: string) => void;
  /** Links currently down (partitioned clouds). */
  readonly partitioned = new Set<Cloud>();
  /** Replicas added by addReplica and not removed yet. */
  readonly extras: ReplicaNode[] = [];

  constructor(readonly opts: ChaosMeshOptions = {}) {
    this.log = opts.log ?? ((l) => process.stdout.write(`${l}\n`));
    this.dir = mkdtempSync(join(tmpdir(), `udpmesh-chaos-${process.pid.toString(36)}-`));
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  node(cloud: Cloud): CloudNode {
    const n = this.nodes.find((x) => x.cloud === cloud);
    if (!n) throw new Error(`no cloud ${cloud}`);
    return n;
  }

  async build(): Promise<this> {
    const etcdBinary = findEtcdBinary(true);
    cleanupStale(this.log);
    removeStaleEtcdData();
    process.on('exit', this.exitHook);
    const topo = createTopology([...CLOUDS, 'client']);
    this.topo = topo;
    this.log(
      `topology um-${topo.id}-{hub,${CLOUDS.join(',')},client} on ${topo.hosts.map((h) => `${h.role}=${h.address}`).join(' ')}; logs in ${this.dir}`,
    );
    const clientHost = topo.hosts.find((h) => h.role === 'client')!;
    this.clientHost = clientHost;
    this.client = await new Agent('client', clientHost.ns, join(this.dir, 'client-agent.log')).start();
    const cloudHosts = CLOUDS.map((c) => topo.hosts.find((h) => h.role === c)!);
    const initialCluster = cloudHosts
      .map((h) => `etcd-${h.role}=http://${h.address}:${PORTS.etcdPeer}`)
      .join(',');
    const etcdEnv: NodeJS.ProcessEnv = { ...process.env };
    if (process.arch === 'arm64') etcdEnv.ETCD_UNSUPPORTED_ARCH = 'arm64';
    const token = `udpmesh-chaos-${topo.id}-${Date.now().toString(36)}`;
    for (const [i, h] of cloudHosts.entries()) {
      const cloud = CLOUDS[i]!;
      const agent = await new Agent(
        `${cloud}-backend`,
        h.ns,
        join(this.dir, `${cloud}-backend-agent.log`),
      ).start();
      await agent.call('backend', { host: '127.0.0.1', port: PORTS.backend, reply: true });
      const proxyAgent = await new Agent(
        `${cloud}-proxy`,
        h.ns,
        join(this.dir, `${cloud}-proxy-agent.log`),
      ).start();
      await proxyAgent.call('proxy', {
        listenHost: h.address,
        listenPort: PORTS.proxy,
        targetHost: h.address,
        targetPort: PORTS.replication,
        seed: 1000 + i,
      });
      const etcdUrl = `http://${h.address}:${PORTS.etcdClient}`;
      const peerUrl = `http://${h.address}:${PORTS.etcdPeer}`;
      const etcd = new NsProcess({
        name: `etcd-${cloud}`,
        ns: h.ns,
        command: etcdBinary,
        // etcd-server 3.4 as in local mode: fast timers, data kept across restarts.
        args: etcdMemberArgs({
          name: `etcd-${cloud}`,
          dataDir: join(this.dir, `etcd-${cloud}.data`),
          clientUrl: etcdUrl,
          peerUrl,
          initialCluster,
          token,
        }),
        logFile: join(this.dir, `etcd-${cloud}.log`),
        env: etcdEnv,
      });
      const cfgFile = join(this.dir, `${cloud}.config.json`);
      const replicator = new NsProcess({
        name: `replicator-${cloud}`,
        ns: h.ns,
        command: process.execPath,
        // Spelled replicator/./main.ts on purpose: on a shared machine another run's broad
        // `pkill -f replicator/main.ts` must not hit the chaos mesh (it did, while this suite was written).
        args: ['--import', 'tsx', 'replicator/./main.ts', '--config', cfgFile],
        logFile: join(this.dir, `replicator-${cloud}.log`),
      });
      this.nodes.push({
        cloud,
        host: h,
        agent,
        proxyAgent,
        etcd,
        replicator,
        etcdUrl,
        metricsBase: `http://${h.address}:${PORTS.metrics}`,
      });
    }
    for (const n of this.nodes)
      this.writeConfig(n.cloud, n.cloud, {
        ingress: PORTS.ingress,
        replication: PORTS.replication,
        advertise: PORTS.proxy,
        metrics: PORTS.metrics,
      });
    for (const n of this.nodes) n.etcd.start();
    await this.waitEtcdHealthy(30_000);
    for (const n of this.nodes) n.replicator.start();
    await Promise.all(this.nodes.map((n) => this.waitReady(n.cloud, 60_000)));
    await this.waitConnected(30_000);
    return this;
  }

  private writeConfig(
    cloud: Cloud,
    instance: string,
    ports: { ingress: number; replication: number; advertise: number; metrics: number },
  ): string {
    const a = this.node(cloud).host.address;
    const config: ReplicatorConfigInput = {
      cluster: cloud,
      instance,
      mesh: 'chaos',
      ingress: { ports: [ports.ingress], addresses: [a], mode: 'reply' },
      replication: {
        address: a,
        port: ports.replication,
        advertiseAddress: a,
        advertisePort: ports.advertise,
        // Namespace addresses are not loopback: the chaos mesh runs unkeyed on purpose (a test network).
        auth: { insecure: true },
      },
      delivery: { backends: [`127.0.0.1:${PORTS.backend}`], gapTimeoutMs: this.opts.gapTimeoutMs ?? 2000 },
      etcd: { endpoints: this.nodes.map((n) => n.etcdUrl), leaseTtlSeconds: this.opts.leaseTtlSeconds ?? 3 },
      metrics: { address: a, port: ports.metrics },
      log: { level: this.opts.logLevel ?? 'info' },
      drain: { deadlineMs: 1000 },
    };
    const file = join(this.dir, `${instance}.config.json`);
    writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
    return file;
  }

  /**
   * Start another replica of a cloud's cluster in its namespace (instance <cloud>-<k>): its own ingress,
   * replication and metrics ports, the cloud's backend, no impairment proxy. Resolves once it is ready and
   * every replicator sees every other one up.
   */
  async addReplica(cloud: Cloud): Promise<ReplicaNode> {
    const n = this.node(cloud);
    // The lowest free number, as a StatefulSet names its pods: a replica removed and added again comes
    // back under its old name with a new epoch.
    let k = 1;
    while (this.extras.some((r) => r.cloud === cloud && r.instance === `${cloud}-${k + 1}`)) k++;
    const instance = `${cloud}-${k + 1}`;
    const off = 10 * k;
    const cfgFile = this.writeConfig(cloud, instance, {
      ingress: PORTS.ingress + off,
      replication: PORTS.replication + off,
      advertise: PORTS.replication + off,
      metrics: PORTS.metrics + off,
    });
    const r: ReplicaNode = {
      cloud,
      instance,
      member: `${cloud}/${instance}`,
      replicator: new NsProcess({
        name: `replicator-${instance}`,
        ns: n.host.ns,
        command: process.execPath,
        args: ['--import', 'tsx', 'replicator/./main.ts', '--config', cfgFile],
        logFile: join(this.dir, `replicator-${instance}.log`),
      }),
      metricsBase: `http://${n.host.address}:${PORTS.metrics + off}`,
    };
    this.extras.push(r);
    r.replicator.start();
    await this.waitReplicaReady(r, 60_000);
    await this.waitConnected(30_000);
    return r;
  }

  async waitReplicaReady(r: ReplicaNode, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      async () => {
        if (!r.replicator.running)
          throw new Error(
            `replicator ${r.member} exited before it was ready; log:\n${r.replicator.logTail(40)}`,
          );
        return (await this.http(`${r.metricsBase}/readyz`, 1000)).status === 200;
      },
      {
        timeoutMs,
        intervalMs: 100,
        what: `replicator ${r.member} is ready (/readyz 200)`,
        detail: () => r.replicator.logTail(40),
      },
    );
  }

  /** Stop an added replica (SIGTERM: drain and leave; SIGKILL: crash) and forget it. */
  async removeReplica(r: ReplicaNode, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    if (signal === 'SIGTERM') await r.replicator.stop(10_000);
    else await r.replicator.kill('SIGKILL');
    const i = this.extras.indexOf(r);
    if (i >= 0) this.extras.splice(i, 1);
  }

  async scrapeReplica(r: ReplicaNode): Promise<Sample[] | undefined> {
    if (!r.replicator.running) return undefined;
    const res = await this.http(`${r.metricsBase}/metrics`);
    return res.status === 200 ? parsePrometheusText(res.body) : undefined;
  }

  /** GET through the client namespace; status 0 when nothing answered. */
  async http(url: string, timeoutMs = 1500): Promise<{ status: number; body: string; error?: string }> {
    return this.client!.call('fetch', { url, timeoutMs }, timeoutMs + 5000);
  }

  async scrape(cloud: Cloud): Promise<Sample[] | undefined> {
    const n = this.node(cloud);
    if (!n.replicator.running) return undefined;
    const r = await this.http(`${n.metricsBase}/metrics`);
    return r.status === 200 ? parsePrometheusText(r.body) : undefined;
  }

  async etcdHealthy(cloud: Cloud): Promise<boolean> {
    const r = await this.http(`${this.node(cloud).etcdUrl}/health`, 1000);
    if (r.status !== 200) return false;
    try {
      return (JSON.parse(r.body) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  async waitEtcdHealthy(
    timeoutMs: number,
    clouds: Cloud[] = this.nodes.filter((n) => n.etcd.running).map((n) => n.cloud),
  ): Promise<void> {
    await waitFor(async () => (await Promise.all(clouds.map((c) => this.etcdHealthy(c)))).every(Boolean), {
      timeoutMs,
      intervalMs: 200,
      what: `etcd members ${clouds.join(',')} report healthy`,
      detail: () => clouds.map((c) => `---- etcd-${c} ----\n${this.node(c).etcd.logTail(15)}`).join('\n'),
    });
  }

  /** The cloud whose etcd member is the leader (etcd_server_is_leader 1), or undefined. */
  async etcdLeader(): Promise<Cloud | undefined> {
    for (const n of this.nodes) {
      if (!n.etcd.running) continue;
      const r = await this.http(`${n.etcdUrl}/metrics`, 1000);
      if (r.status === 200 && /^etcd_server_is_leader 1$/m.test(r.body)) return n.cloud;
    }
    return undefined;
  }

  async waitReady(cloud: Cloud, timeoutMs = 30_000): Promise<void> {
    const n = this.node(cloud);
    await waitFor(
      async () => {
        if (!n.replicator.running)
          throw new Error(
            `replicator ${cloud} exited before it was ready; log:\n${n.replicator.logTail(40)}`,
          );
        return (await this.http(`${n.metricsBase}/readyz`, 1000)).status === 200;
      },
      {
        timeoutMs,
        intervalMs: 100,
        what: `replicator ${cloud} is ready (/readyz 200)`,
        detail: () => n.replicator.logTail(40),
      },
    );
  }

  /** Every running, reachable replicator (added replicas included) sees every such replicator of the other clusters up. */
  async waitConnected(timeoutMs: number): Promise<void> {
    const live = [
      ...this.nodes
        .filter((n) => n.replicator.running && !this.partitioned.has(n.cloud))
        .map((n) => ({
          cloud: n.cloud,
          member: `${n.cloud}/${n.cloud}`,
          scrape: () => this.scrape(n.cloud),
        })),
      ...this.extras
        .filter((r) => r.replicator.running && !this.partitioned.has(r.cloud))
        .map((r) => ({ cloud: r.cloud, member: r.member, scrape: () => this.scrapeReplica(r) })),
    ];
    await waitFor(
      async () => {
        for (const n of live) {
          const s = await n.scrape();
          if (!s) return false;
          const up = new Set(
            select(s, 'udpmesh_peer_up')
              .filter((x) => x.value === 1)
              .map((x) => x.labels.peer ?? ''),
          );
          // Replicas of one cluster do not replicate to each other: only other clusters' members count.
          for (const o of live) if (o.cloud !== n.cloud && !up.has(o.member)) return false;
        }
        return true;
      },
      {
        timeoutMs,
        intervalMs: 200,
        what: `replicators ${live.map((n) => n.member).join(',')} see each other up (udpmesh_peer_up)`,
        detail: () => this.diagnostics(),
      },
    );
  }

  partition(cloud: Cloud): void {
    setLink(this.topo!, cloud, false);
    this.partitioned.add(cloud);
  }

  heal(cloud: Cloud): void {
    setLink(this.topo!, cloud, true);
    this.partitioned.delete(cloud);
  }

  async impairAll(imp: Partial<Impairment>): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.proxyAgent.call('impair', { impairment: imp })));
  }

  async startLoad(id: string, options: LoadGenOptions): Promise<void> {
    await this.client!.call('load', { id, options });
  }

  loadStatus(id: string): Promise<LoadStatus> {
    return this.client!.call('loadStatus', { id });
  }

  stopLoad(id: string): Promise<LoadStatus> {
    return this.client!.call('loadStop', { id }, 60_000);
  }

  async closeLoad(id: string): Promise<void> {
    await this.client!.call('loadClose', { id });
  }

  async distinct(cloud: Cloud, ranges: [number, number][]): Promise<number> {
    return (await this.arrivals(cloud, ranges)).distinct;
  }

  /** Distinct datagrams and all arrivals (duplicates included) of these sessions at a cloud's backend. */
  arrivals(cloud: Cloud, ranges: [number, number][]): Promise<{ distinct: number; received: number }> {
    return this.node(cloud).agent.call('distinct', { ranges });
  }

  /** Impair the link into one cloud's replicator (its proxy); with sources, only what those addresses send. */
  async impair(cloud: Cloud, imp: Partial<Impairment>, sources?: string[]): Promise<void> {
    await this.node(cloud).proxyAgent.call('impair', { impairment: imp, sources });
  }

  mark(cloud: Cloud): Promise<number> {
    return this.node(cloud)
      .agent.call<{ index: number }>('mark')
      .then((r) => r.index);
  }

  analyze(cloud: Cloud, groups: SessionGroup[], marks: number[]): Promise<AnalyzeResult> {
    return this.node(cloud).agent.call('analyze', { groups, marks }, 120_000);
  }

  /** Write a cloud's arrivals of these sessions (index,session,seq) to a CSV file in the logs dir. */
  async dumpArrivals(cloud: Cloud, groups: SessionGroup[], name: string): Promise<string> {
    const file = join(this.dir, `${name.replace(/[^a-z0-9]+/gi, '-')}-${cloud}-arrivals.csv`);
    await this.node(cloud).agent.call('dump', { groups, file }, 60_000);
    return file;
  }

  async stats(cloud: Cloud): Promise<CloudStats> {
    const n = this.node(cloud);
    const [b, p] = await Promise.all([
      n.agent.call<CloudStats>('stats', {
        ports: [PORTS.ingress, PORTS.replication, PORTS.proxy, PORTS.backend],
      }),
      n.proxyAgent.call<CloudStats>('stats'),
    ]);
    return { ...b, proxy: p.proxy, proxyQueued: p.proxyQueued };
  }

  /** Sum of a metric over the running replicators (undefined entries are skipped). */
  async metricSum(
    name: string,
    clouds: readonly Cloud[] = CLOUDS,
  ): Promise<Record<string, number | undefined>> {
    const out: Record<string, number | undefined> = {};
    for (const c of clouds) {
      const s = await this.scrape(c);
      out[c] = s ? sumOf(s, name) : undefined;
    }
    return out;
  }

  private readonly exitsReported = new Set<string>();

  /** Processes that died without being told to (a crash is always a finding). */
  unexpectedExits(): string[] {
    return [
      ...this.nodes.flatMap((n) => [...n.replicator.unexpectedExits, ...n.etcd.unexpectedExits]),
      ...this.extras.flatMap((r) => r.replicator.unexpectedExits),
    ];
  }

  /** Unexpected exits not returned by an earlier call. */
  takeUnexpectedExits(): string[] {
    const fresh = this.unexpectedExits().filter((e) => !this.exitsReported.has(e));
    for (const e of fresh) this.exitsReported.add(e);
    return fresh;
  }

  async diagnostics(logLines = 25): Promise<string> {
    const out: string[] = [];
    for (const n of this.nodes) {
      const st = await this.stats(n.cloud).catch((e: Error) => e.message);
      out.push(
        `${n.cloud}: replicator pid ${n.replicator.pid ?? 'down'} (starts ${n.replicator.startCount}), etcd pid ${n.etcd.pid ?? 'down'}` +
          `${this.partitioned.has(n.cloud) ? ', PARTITIONED' : ''}; backend/proxy ${JSON.stringify(st)}`,
      );
    }
    for (const n of this.nodes)
      out.push(`---- ${n.cloud} metrics ----\n${formatSamples(await this.scrape(n.cloud))}`);
    for (const n of this.nodes)
      out.push(`---- replicator-${n.cloud} log ----\n${n.replicator.logTail(logLines)}`);
    for (const r of this.extras)
      out.push(
        `---- replicator-${r.instance} (pid ${r.replicator.pid ?? 'down'}, starts ${r.replicator.startCount}) metrics ----\n` +
          `${formatSamples(await this.scrapeReplica(r))}\n---- replicator-${r.instance} log ----\n${r.replicator.logTail(logLines)}`,
      );
    return out.join('\n');
  }

  /** Stop everything, delete the namespaces; keep the logs dir when asked (or on failure). */
  private stopping: Promise<void> | undefined;

  stop(keepLogs = this.opts.keepLogs ?? false): Promise<void> {
    this.stopping ??= this.doStop(keepLogs);
    return this.stopping;
  }

  private async doStop(keepLogs: boolean): Promise<void> {
    this.stopped = true;
    await Promise.all(
      [...this.nodes, ...this.extras].map((n) => n.replicator.kill('SIGKILL').catch(() => undefined)),
    );
    await Promise.all(this.nodes.map((n) => n.etcd.kill('SIGKILL').catch(() => undefined)));
    await Promise.all(
      [...this.nodes.flatMap((n) => [n.agent.stop(), n.proxyAgent.stop()]), this.client?.stop()].map((p) =>
        p?.catch(() => undefined),
      ),
    );
    if (this.topo) destroyTopology(this.topo);
    this.topo = undefined;
    process.off('exit', this.exitHook);
    if (!keepLogs) rmSync(this.dir, { recursive: true, force: true });
    else removeEtcdData(this.dir);
  }
}

/** etcd data dirs (preallocated WAL files, ~120 MB each) are of no use once the run is over; logs are kept. */
function removeEtcdData(dir: string): void {
  try {
    for (const e of readdirSync(dir))
      if (e.endsWith('.data')) rmSync(join(dir, e), { recursive: true, force: true });
  } catch {
    /* gone */
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs that died without cleaning up (SIGKILL) leave their etcd data behind: remove it, keep their logs. */
function removeStaleEtcdData(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const e of entries) {
    const m = /^udpmesh-chaos-([0-9a-z]+)-/.exec(e);
    if (m && !pidAlive(parseInt(m[1]!, 36))) removeEtcdData(join(tmpdir(), e));
  }
}

/** Build a mesh, cleaning up everything if that fails. */
export async function startChaosMesh(opts: ChaosMeshOptions = {}): Promise<ChaosMesh> {
  const mesh = new ChaosMesh(opts);
  mkdirSync(mesh.dir, { recursive: true });
  try {
    return await mesh.build();
  } catch (err) {
    const diag = await mesh.diagnostics().catch(() => '');
    await mesh.stop(true);
    throw new Error(`${(err as Error).message}\n${diag}\n(logs kept in ${mesh.dir})`, { cause: err });
  }
}
