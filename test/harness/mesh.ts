// A whole test mesh on loopback: per cloud a recording backend, a replicator process and, when
// impairment is asked for, an impairment proxy in front of the replicator's replication port
// (the replicator advertises the proxy's port, so all replication frames and acks INTO it are impaired).
// Client<->ingress and replicator<->backend stay plain loopback.
import type { ReplicatorConfigInput } from '../../replicator/config/schema.ts';
import type { EtcdCluster } from '../../replicator/local/etcdCluster.ts';
import { freePorts } from './freePort.ts';
import { startImpairmentProxy, type Impairment, type ImpairmentProxy } from './impairmentProxy.ts';
import { formatSamples, scrapeMetrics, select, tryScrape, type Sample } from './metrics.ts';
import { RemoteRecordingBackend } from './remoteRecordingBackend.ts';
import { ReplicatorLauncher, type ReplicatorProcess } from './replicatorLauncher.ts';
import { dropsOnPorts, hostUdpCounters } from './udpDrops.ts';
import { waitFor } from './wait.ts';

export interface MeshOptions {
  etcd: EtcdCluster;
  clouds?: string[];
  /** Impair every link into every replicator's replication port. */
  impairment?: Partial<Impairment>;
  /** PRNG seed for the proxies (proxy i uses seed + i). */
  seed?: number;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Extra config merged over each replicator's (shallow per section). */
  configOverrides?: Partial<ReplicatorConfigInput>;
  readyTimeoutMs?: number;
}

export interface MeshNode {
  cloud: string;
  ingressPort: number;
  replicationPort: number;
  metricsPort: number;
  backend: RemoteRecordingBackend;
  proxy: ImpairmentProxy | undefined;
  proc: ReplicatorProcess;
}

let meshCounter = 0;

function describeExit(e: ReplicatorProcess['lastExit']): string {
  if (!e) return 'never started';
  return `${e.expected ? 'stopped by the test' : 'EXITED UNEXPECTEDLY'}: ${e.signal ? `signal ${e.signal}` : `exit code ${e.code}`} at ${e.at.toISOString()}`;
}

export class Mesh {
  readonly nodes: MeshNode[] = [];
  readonly launcher = new ReplicatorLauncher();
  readonly name: string;
  private readonly udpAtStart = hostUdpCounters();

  constructor(readonly opts: MeshOptions) {
    this.name = `t${process.pid.toString(36)}-${(meshCounter++).toString(36)}`;
  }

  node(cloud: string): MeshNode {
    const n = this.nodes.find((x) => x.cloud === cloud);
    if (!n) throw new Error(`no mesh node ${cloud}`);
    return n;
  }

  async build(): Promise<this> {
    const clouds = this.opts.clouds ?? ['aws', 'gcp', 'azure'];
    const { etcd } = this.opts;
    for (const [i, cloud] of clouds.entries()) {
      const [ingressPort, replicationPort, metricsPort] = await freePorts(3);
      const backend = await new RemoteRecordingBackend(`${cloud}-backend`).start();
      const proxy = this.opts.impairment
        ? await startImpairmentProxy({
            target: { host: '127.0.0.1', port: replicationPort! },
            listenPort: (await freePorts(1))[0],
            impairment: this.opts.impairment,
            seed: (this.opts.seed ?? 1) + i,
          })
        : undefined;
      const o = this.opts.configOverrides ?? {};
      const config: ReplicatorConfigInput = {
        ...o,
        cluster: cloud,
        instance: `${cloud}-0`,
        mesh: this.name,
        ingress: { ...o.ingress, ports: [ingressPort!], addresses: ['127.0.0.1'] },
        replication: {
          ...o.replication,
          address: '127.0.0.1',
          port: replicationPort!,
          advertiseAddress: '127.0.0.1',
          ...(proxy ? { advertisePort: proxy.port } : {}),
        },
        delivery: { ...o.delivery, backends: [backend.endpoint] },
        etcd: { ...o.etcd, endpoints: etcd.endpoints },
        metrics: { address: '127.0.0.1', port: metricsPort! },
        log: { level: this.opts.logLevel ?? 'info' },
        drain: { deadlineMs: 2000, ...o.drain },
      };
      const proc = this.launcher.create(cloud, config);
      this.nodes.push({
        cloud,
        ingressPort: ingressPort!,
        replicationPort: replicationPort!,
        metricsPort: metricsPort!,
        backend,
        proxy,
        proc,
      });
    }
    for (const n of this.nodes) n.proc.start();
    await Promise.all(this.nodes.map((n) => n.proc.waitReady(this.opts.readyTimeoutMs ?? 30_000)));
    await this.waitConnected();
    return this;
  }

  /** Wait until every running replicator reports udpmesh_peer_up == 1 for (at least) every other running one. */
  async waitConnected(timeoutMs = 20_000): Promise<void> {
    const running = this.nodes.filter((n) => n.proc.running);
    await waitFor(
      async () => {
        for (const n of running) {
          const s = await tryScrape(n.proc.metricsUrl);
          if (!s) return false;
          if (select(s, 'udpmesh_peer_up').filter((x) => x.value === 1).length < running.length - 1)
            return false;
        }
        return true;
      },
      {
        timeoutMs,
        what: `every replicator sees its ${running.length - 1} peers up (udpmesh_peer_up)`,
        detail: () => this.diagnostics(),
      },
    );
  }

  async scrape(cloud: string): Promise<Sample[] | undefined> {
    return tryScrape(this.node(cloud).proc.metricsUrl);
  }

  /** Backend counts, proxy counters, kernel UDP drops, metrics and log tails: for failure messages. */
  async diagnostics(logLines = 25): Promise<string> {
    const out: string[] = [];
    out.push(
      `mesh ${this.name}, etcd ${this.opts.etcd.endpoints.join(',')} (members running: ${this.opts.etcd.members
        .filter((m) => m.running)
        .map((m) => m.name)
        .join(',')})`,
    );
    const ports = this.nodes.flatMap((n) => [
      n.ingressPort,
      n.replicationPort,
      n.backend.port,
      ...(n.proxy ? [n.proxy.port] : []),
    ]);
    const drops = dropsOnPorts(ports);
    for (const n of this.nodes) {
      const b = await n.backend.stats().catch(() => n.backend.last);
      out.push(
        `${n.cloud}: ${n.proc.running ? `pid ${n.proc.pid}` : `down (${describeExit(n.proc.lastExit)})`} starts ${n.proc.startCount}; backend received ${b.count} (${b.distinct} distinct, invalid ${b.invalid}, kernel drops ${drops[n.backend.port]}); ` +
          `kernel drops ingress ${drops[n.ingressPort]} replication ${drops[n.replicationPort]}` +
          (n.proxy
            ? `; proxy ${JSON.stringify(n.proxy.counters)} queued ${n.proxy.queued} (kernel drops ${drops[n.proxy.port]})`
            : ''),
      );
    }
    const udpNow = hostUdpCounters();
    const delta = Object.fromEntries(
      Object.entries(udpNow)
        .map(([k, v]) => [k, v - (this.udpAtStart[k] ?? 0)])
        .filter(([, v]) => v !== 0),
    );
    out.push(`host UDP counter deltas since mesh start: ${JSON.stringify(delta)}`);
    for (const n of this.nodes) {
      let text: string;
      try {
        text = formatSamples(await scrapeMetrics(n.proc.metricsUrl, 1500));
      } catch (err) {
        text = `(scrape failed: ${(err as Error).message})`;
      }
      out.push(`---- ${n.cloud} metrics ----\n${text}`);
    }
    if (logLines > 0) out.push(this.launcher.logs(logLines));
    return out.join('\n');
  }

  /**
   * Stop replicators, proxies and backends; remove the temp dir (configs and logs) unless keepLogs,
   * e.g. after a failure: then the complete logs (flushed by the graceful stop) stay for reading.
   */
  async stop(keepLogs = false): Promise<void> {
    await this.launcher.stopAll(8000, keepLogs);
    await Promise.all(
      this.nodes.map(async (n) => {
        await n.proxy?.close();
        await n.backend.close();
      }),
    );
  }
}

export async function startMesh(opts: MeshOptions): Promise<Mesh> {
  const mesh = new Mesh(opts);
  try {
    return await mesh.build();
  } catch (err) {
    const diag = await mesh.diagnostics().catch(() => '');
    await mesh.stop();
    throw new Error(`${(err as Error).message}\n${diag}`, { cause: err });
  }
}
