// The two systems under test on loopback, sharing one set of sink backends and one load generator:
//   udpmesh: etcd + three replicators (aws = ingress, gcp, azure), each delivering to its cluster's sink;
//   baseline: plain Node forwarders in the same shape (baseline.ts).
// Everything binds 127.0.0.1; every process is tracked and killed on exit.
import { join } from 'node:path';
import { startEtcdCluster, type EtcdCluster } from '../../replicator/local/etcdCluster.ts';
import { freePorts } from '../../replicator/local/freePort.ts';
import { scrapeMetrics, sumOf } from '../../replicator/local/promText.ts';
import { ReplicatorProcess } from '../../replicator/local/replicatorProcess.ts';
import type { ReplicatorConfigInput } from '../../replicator/config/schema.ts';
import { adaptConfig, type BaselineTree } from './baselineRef.ts';
import { scrapeCounters, type ProcRef, type ReplicatorCounters } from './measure.ts';
import { freePortRun } from './ports.ts';
import { benchFile, NodeChild, REPO_ROOT, until } from './procs.ts';

export const CLUSTERS = ['aws', 'gcp', 'azure'] as const;
export type Cluster = (typeof CLUSTERS)[number];
export type Mode = 'oneway' | 'reply';
/** udpmesh, the plain Node fan-out forwarders (baseline.ts), and the reply relays of the peers part. */
export type SystemKind = 'udpmesh' | 'baseline' | 'node-relay' | 'nginx' | 'socat';

const HOST = '127.0.0.1';

// Spelled replicator/./main.ts on purpose: on a shared machine another run's broad
// `pkill -f replicator/main.ts` must not hit the bench (it did: replicators got SIGTERM mid-run).
const REPLICATOR_MAIN_SPELLED = `${REPO_ROOT.replace(/\/$/, '')}/replicator/./main.ts`;

export interface Sink {
  cluster: Cluster;
  port: number;
  proc: NodeChild;
}

/** Processes that live for the whole bench: sinks, the load generator, etcd. */
export class Shared {
  private constructor(
    readonly dir: string,
    readonly sinks: Sink[],
    readonly loadgen: NodeChild,
    readonly etcd: EtcdCluster,
  ) {}

  static async start(dir: string): Promise<Shared> {
    const sinkPorts = await freePorts(CLUSTERS.length, HOST);
    const sinks: Sink[] = CLUSTERS.map((cluster, i) => ({
      cluster,
      port: sinkPorts[i]!,
      proc: new NodeChild(
        `sink-${cluster}`,
        benchFile('sink.ts'),
        ['--port', String(sinkPorts[i]), '--host', HOST],
        {
          ipc: true,
          logFile: join(dir, `sink-${cluster}.log`),
        },
      ),
    }));
    const loadgen = new NodeChild('loadgen', benchFile('loadgen.ts'), [], {
      ipc: true,
      logFile: join(dir, 'loadgen.log'),
    });
    // One etcd member: the bench measures the data plane; etcd is off the per-datagram path.
    const etcdPromise = startEtcdCluster({ size: 1, host: HOST, autoInstall: false });
    const shared = await Promise.all([...sinks.map((s) => s.proc.waitReady()), loadgen.waitReady()]).then(
      async () => new Shared(dir, sinks, loadgen, await etcdPromise),
      async (err: unknown) => {
        await etcdPromise.then((e) => e.stop()).catch(() => {});
        throw err;
      },
    );
    return shared;
  }

  sink(cluster: Cluster): Sink {
    return this.sinks.find((s) => s.cluster === cluster)!;
  }

  async setEcho(echo: boolean): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.proc.request({ cmd: 'config', echo })));
  }

  procRefs(): ProcRef[] {
    const out: ProcRef[] = this.sinks.map((s) => ({ name: `sink-${s.cluster}`, pid: s.proc.pid }));
    out.push({ name: 'loadgen', pid: this.loadgen.pid });
    return out;
  }

  etcdRef(): ProcRef[] {
    return this.etcd.members.filter((m) => m.pid !== undefined).map((m) => ({ name: 'etcd', pid: m.pid! }));
  }

  async stop(): Promise<void> {
    await Promise.allSettled([
      ...this.sinks.map((s) => s.proc.stop()),
      this.loadgen.stop(),
      this.etcd.stop(),
    ]);
  }
}

export interface SystemUnderTest {
  kind: SystemKind;
  mode: Mode;
  /** Where clients send: the aws ingress. */
  ingress: { host: string; port: number };
  /** The system's own processes (replicators or forwarders), named by cluster. */
  procs: ProcRef[];
  /** Replicator counters summed over the three, or undefined for the baseline. */
  counters(): Promise<ReplicatorCounters[] | undefined>;
  /** Datagrams accepted but not yet acknowledged by every peer (0 for the baseline). */
  lag(): Promise<number>;
  /** Undefined while every process runs; else which one ended and how. */
  dead(): string | undefined;
  /** udpmesh with workers > 1 at the ingress: datagrams each ingress worker accepted so far (its /status). */
  workerIngress?(): Promise<number[] | undefined>;
  /** udpmesh: each replicator's /metrics, aws (the ingress) first: GC, heap and I/O syscalls per step. */
  metricsUrls?: string[];
  stop(): Promise<void>;
}

export interface UdpmeshOptions {
  mode: Mode;
  /** etcd mesh namespace: a fresh one per topology so stale members of an earlier one never mix in. */
  mesh: string;
  maxSessions?: number;
  sessionIdleTimeoutMs?: number;
  /** Extra environment for the replicators (e.g. NODE_OPTIONS=--cpu-prof). */
  env?: Record<string, string>;
  /** `workers` per replicator (default 1): worker i of a cluster binds replication port base + i. */
  workers?: Partial<Record<Cluster, number>>;
  /** Socket I/O of every replicator (config `io`); default the config's (auto). */
  io?: 'batched' | 'dgram';
  /** Run the replicators of this earlier tree (--baseline-ref) instead of the current one. */
  tree?: BaselineTree;
}

export async function startUdpmesh(shared: Shared, o: UdpmeshOptions): Promise<SystemUnderTest> {
  const workersOf = (c: Cluster): number => o.workers?.[c] ?? 1;
  const ports = await freePorts(CLUSTERS.length * 2, HOST);
  const replicationPorts: number[] = [];
  for (const c of CLUSTERS) replicationPorts.push(await freePortRun(workersOf(c), HOST));
  const configs = CLUSTERS.map((cluster, i) => {
    const config: ReplicatorConfigInput = {
      cluster,
      instance: cluster,
      mesh: o.mesh,
      ...(workersOf(cluster) > 1 ? { workers: workersOf(cluster) } : {}),
      ...(o.io ? { io: o.io } : {}),
      ingress: {
        ports: [ports[2 * i]!],
        addresses: [HOST],
        mode: o.mode,
        ...(o.maxSessions !== undefined ? { maxSessions: o.maxSessions } : {}),
        ...(o.sessionIdleTimeoutMs !== undefined ? { sessionIdleTimeoutMs: o.sessionIdleTimeoutMs } : {}),
      },
      replication: { address: HOST, port: replicationPorts[i]! },
      delivery: { backends: [`${HOST}:${shared.sink(cluster).port}`] },
      etcd: { endpoints: shared.etcd.endpoints, leaseTtlSeconds: 5 },
      metrics: { address: HOST, port: ports[2 * i + 1]! },
      log: { level: 'warn' },
      drain: { deadlineMs: 2000 },
    };
    return config;
  });
  // An older tree's schema may not know every key set above: drop those (baselineRef.ts).
  const tree = o.tree;
  const adapted = tree ? await Promise.all(configs.map((c) => adaptConfig(tree, c))) : configs;
  const reps = CLUSTERS.map(
    (cluster, i) =>
      new ReplicatorProcess({
        name: `${o.mesh}-${cluster}`,
        config: adapted[i]!,
        dir: shared.dir,
        env: o.env,
        mainPath: tree ? tree.mainPath : REPLICATOR_MAIN_SPELLED,
        ...(tree ? { cwd: tree.root } : {}),
      }),
  );
  let stopping = false;
  const exits = new Map<string, string>();
  for (const r of reps) {
    r.onExit((info) => {
      if (!stopping)
        exits.set(
          r.name,
          `replicator ${r.name} exited unexpectedly (code ${info.code}, signal ${info.signal}); log ${r.logFile}`,
        );
    });
  }
  const stop = async (): Promise<void> => {
    stopping = true;
    await Promise.allSettled(reps.map((r) => r.stop(5000)));
  };
  try {
    for (const r of reps) r.start();
    await Promise.all(reps.map((r) => r.waitReady(60_000)));
    // Ready is per replicator; wait until every one has a live link to every member (worker) of the other
    // two clusters: a replicator with w workers, each linked to every remote worker, sums its
    // udpmesh_peer_up (aggregated over its workers by the primary) to w x (remote workers).
    const total = CLUSTERS.reduce((a, c) => a + workersOf(c), 0);
    await until(
      async () => {
        const up = await Promise.all(
          reps.map((r) =>
            scrapeMetrics(r.metricsUrl, 2000).then(
              (x) => sumOf(x, 'udpmesh_peer_up'),
              () => -1,
            ),
          ),
        );
        return CLUSTERS.every((c, i) => up[i] === workersOf(c) * (total - workersOf(c)));
      },
      30_000,
      'every replicator (every worker) to see every member of the other clusters',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    kind: 'udpmesh',
    mode: o.mode,
    ingress: { host: HOST, port: ports[0]! },
    procs: reps.map((r, i) => ({ name: CLUSTERS[i]!, pid: r.pid ?? -1 })),
    metricsUrls: reps.map((r) => r.metricsUrl),
    counters: () => Promise.all(reps.map((r) => scrapeCounters(r.metricsUrl))),
    lag: async () =>
      (await Promise.all(reps.map((r) => scrapeCounters(r.metricsUrl)))).reduce((a, c) => a + c.lag, 0),
    dead: () => [...exits.values()][0],
    workerIngress: async () => {
      const st = (await fetch(`${reps[0]!.httpBase}/status`).then((x) => x.json())) as {
        workers?: Array<{ index: number; ingressDatagrams?: number }>;
      };
      return st.workers
        ?.slice()
        .sort((a, b) => a.index - b.index)
        .map((w) => w.ingressDatagrams ?? 0);
    },
    stop,
  };
}

export async function startBaseline(shared: Shared, mode: Mode): Promise<SystemUnderTest> {
  const ports = await freePorts(CLUSTERS.length, HOST);
  const fwd = CLUSTERS.map((cluster, i) => {
    const args = [
      '--port',
      String(ports[i]),
      '--host',
      HOST,
      '--sink',
      `${HOST}:${shared.sink(cluster).port}`,
      '--mode',
      mode,
    ];
    if (i === 0) args.push('--role', 'fanout', '--peers', `${HOST}:${ports[1]},${HOST}:${ports[2]}`);
    else args.push('--role', 'leaf');
    return new NodeChild(`baseline-${cluster}`, benchFile('baseline.ts'), args, {
      ipc: false,
      logFile: join(shared.dir, `baseline-${mode}-${cluster}.log`),
    });
  });
  let stopping = false;
  const exits = new Map<string, string>();
  for (const f of fwd) {
    f.child.once('exit', (code, signal) => {
      if (!stopping) exits.set(f.name, `${f.name} exited unexpectedly (code ${code}, signal ${signal})`);
    });
  }
  const stop = async (): Promise<void> => {
    stopping = true;
    await Promise.allSettled(fwd.map((f) => f.stop()));
  };
  // Up once each has printed its banner (it binds before printing).
  const { readFileSync } = await import('node:fs');
  try {
    await until(
      () =>
        CLUSTERS.every((c) => {
          try {
            return readFileSync(join(shared.dir, `baseline-${mode}-${c}.log`), 'utf8').includes('baseline ');
          } catch {
            return false;
          }
        }),
      30_000,
      'the baseline forwarders to bind',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    kind: 'baseline',
    mode,
    ingress: { host: HOST, port: ports[0]! },
    procs: fwd.map((f, i) => ({ name: CLUSTERS[i]!, pid: f.pid })),
    counters: async () => undefined,
    lag: async () => 0,
    dead: () => [...exits.values()][0],
    stop,
  };
}
