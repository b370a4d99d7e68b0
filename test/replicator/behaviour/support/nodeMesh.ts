// A Mesh (test/harness/mesh.ts) whose replicators differ per node: each node may add config
// (merged per section over the mesh-wide overrides) and environment variables (e.g. UDPMESH_CLUSTER_KEY),
// and may be left unstarted. Everything else — diagnostics, stop, waitConnected, the scenario helpers —
// is the harness's own.
import type { ReplicatorConfigInput } from '../../../../replicator/config/schema.ts';
import { freePorts, isPortFree } from '../../../harness/freePort.ts';
import { select, tryScrape } from '../../../harness/metrics.ts';
import { waitFor } from '../../../harness/wait.ts';
import { Mesh, type MeshOptions } from '../../../harness/mesh.ts';
import { RemoteRecordingBackend } from '../../../harness/remoteRecordingBackend.ts';

export interface NodeSpec {
  cloud: string;
  /** Per-node config, merged one level deep (per section) over the mesh's configOverrides. */
  config?: Partial<ReplicatorConfigInput>;
  env?: Record<string, string>;
  /** Start it with the others (default true). */
  start?: boolean;
}

/** A free port p such that p .. p+n-1 are all free (workers bind replication port + index). */
async function freePortRun(n: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const [p] = await freePorts(1);
    let ok = true;
    for (let i = 1; i < n && ok; i++) ok = await isPortFree(p! + i);
    if (ok) return p!;
  }
  throw new Error(`no run of ${n} free ports found`);
}

type Section = Record<string, unknown>;

function mergeSections(
  a: Partial<ReplicatorConfigInput>,
  b: Partial<ReplicatorConfigInput>,
): Partial<ReplicatorConfigInput> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      prev &&
      typeof prev === 'object' &&
      !Array.isArray(prev)
        ? { ...(prev as Section), ...(v as Section) }
        : v;
  }
  return out as Partial<ReplicatorConfigInput>;
}

export interface NodeMeshOptions extends MeshOptions {
  /** Wait until every replicator sees its peers up (default true; false when some cannot, e.g. a wrong key). */
  connect?: boolean;
}

export class NodeMesh extends Mesh {
  constructor(
    opts: NodeMeshOptions,
    private readonly specs: NodeSpec[],
  ) {
    super({ ...opts, clouds: specs.map((s) => s.cloud) });
  }

  override async build(): Promise<this> {
    const { etcd } = this.opts;
    for (const spec of this.specs) {
      const workers = spec.config?.workers ?? this.opts.configOverrides?.workers ?? 1;
      const [ingressPort, metricsPort] = await freePorts(2);
      const replicationPort = workers > 1 ? await freePortRun(workers) : (await freePorts(1))[0];
      const backend = await new RemoteRecordingBackend(`${spec.cloud}-backend`).start();
      const o = mergeSections(this.opts.configOverrides ?? {}, spec.config ?? {});
      const config: ReplicatorConfigInput = {
        ...o,
        cluster: spec.cloud,
        instance: `${spec.cloud}-0`,
        mesh: this.name,
        ingress: { ...o.ingress, ports: [ingressPort!], addresses: ['127.0.0.1'] },
        replication: {
          ...o.replication,
          address: '127.0.0.1',
          port: replicationPort!,
          advertiseAddress: '127.0.0.1',
        },
        delivery: { ...o.delivery, backends: [backend.endpoint] },
        etcd: { ...o.etcd, endpoints: etcd.endpoints },
        metrics: { address: '127.0.0.1', port: metricsPort! },
        log: { level: this.opts.logLevel ?? 'info' },
        drain: { deadlineMs: 2000, ...o.drain },
      };
      const proc = this.launcher.create(spec.cloud, config, spec.env);
      this.nodes.push({
        cloud: spec.cloud,
        ingressPort: ingressPort!,
        replicationPort: replicationPort!,
        metricsPort: metricsPort!,
        backend,
        proxy: undefined,
        proc,
      });
    }
    const started = this.nodes.filter((_, i) => this.specs[i]!.start !== false);
    for (const n of started) n.proc.start();
    await Promise.all(started.map((n) => n.proc.waitReady(this.opts.readyTimeoutMs ?? 30_000)));
    if ((this.opts as NodeMeshOptions).connect !== false) await this.waitConnected();
    return this;
  }

  private workersOf(cloud: string): number {
    const spec = this.specs.find((s) => s.cloud === cloud);
    return spec?.config?.workers ?? this.opts.configOverrides?.workers ?? 1;
  }

  /**
   * Like the harness's, but a replicator with N workers is N members, and its primary's udpmesh_peer_up
   * is the sum over its workers (N when every worker sees that peer up).
   */
  override async waitConnected(timeoutMs = 20_000): Promise<void> {
    const running = this.nodes.filter((n) => n.proc.running);
    await waitFor(
      async () => {
        for (const n of running) {
          const s = await tryScrape(n.proc.metricsUrl);
          if (!s) return false;
          const mine = this.workersOf(n.cloud);
          const expected = running.filter((o) => o !== n).reduce((a, o) => a + this.workersOf(o.cloud), 0);
          if (select(s, 'udpmesh_peer_up').filter((x) => x.value === mine).length < expected) return false;
        }
        return true;
      },
      {
        timeoutMs,
        what: 'every replicator (every worker) sees all its peers up (udpmesh_peer_up)',
        detail: () => this.diagnostics(),
      },
    );
  }
}

/** Build a NodeMesh; on failure stop what started and throw with the diagnostics. */
export async function startNodeMesh(opts: NodeMeshOptions, specs: NodeSpec[]): Promise<NodeMesh> {
  const mesh = new NodeMesh(opts, specs);
  try {
    return await mesh.build();
  } catch (err) {
    const diag = await mesh.diagnostics().catch(() => '');
    await mesh.stop();
    throw new Error(`${(err as Error).message}\n${diag}`, { cause: err });
  }
}
