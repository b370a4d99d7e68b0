// The `local` target's root component: the whole mesh as processes on this machine, from the same
// stack config as the cloud stacks and with the same outputs contract. Only ComponentResources and
// dynamic resources (resources.ts) are created — no provider plugin is needed (none of aws, gcp,
// azure, random, tls or kubernetes), so `pulumi up` works with nothing but the engine.
import * as pulumi from '@pulumi/pulumi';
import { CLOUDS, type StackConfig } from '../config/schema.ts';
import { alertRuleGroups } from '../monitoring/alertRules.ts';
import { CONTRACT_VERSION, perCloudOutput, type UdpmeshProgramOutputs } from '../outputs.ts';
import { localReplicatorConfig } from '../../replicator/local/localNode.ts';
import type { LocalPlan } from './plan.ts';
import {
  LocalClusterKey,
  LocalEchoBackend,
  LocalEtcdCluster,
  LocalPrometheus,
  LocalReplicator,
} from './resources.ts';

const hostPort = (address: string, port: number): string =>
  address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;

export class LocalMesh extends pulumi.ComponentResource {
  readonly outputs: UdpmeshProgramOutputs;
  readonly replicators: Record<string, LocalReplicator> = {};

  constructor(
    name: string,
    args: { spec: StackConfig; plan: LocalPlan },
    opts?: pulumi.ComponentResourceOptions,
  ) {
    super('udpmesh:local:Mesh', name, {}, opts);
    const { spec, plan } = args;
    const p = { parent: this };
    const readyTimeoutMs = spec.local.readyTimeoutMs;

    const key = new LocalClusterKey('cluster-key', { generation: 1 }, p);
    const etcd = new LocalEtcdCluster(
      'etcd',
      {
        dir: plan.etcd.dir,
        token: plan.etcd.token,
        members: plan.etcd.members.map(({ name: n, address, clientPort, peerPort }) => ({
          name: n,
          address,
          clientPort,
          peerPort,
        })),
        heartbeatMs: plan.etcd.heartbeatMs,
        electionMs: plan.etcd.electionMs,
        readyTimeoutMs,
      },
      p,
    );

    const r = spec.replicator;
    const replicators: LocalReplicator[] = [];
    for (const c of plan.clouds) {
      const backend: pulumi.Input<string> = c.echo
        ? new LocalEchoBackend(
            `${c.cloud}-echo`,
            { dir: c.echo.dir, cloud: c.cloud, address: c.address, port: c.echo.port, readyTimeoutMs },
            p,
          ).endpoint
        : c.userBackend!;
      const config = pulumi.all([backend, etcd.endpoints]).apply(([b, endpoints]) =>
        localReplicatorConfig({
          cloud: c.cloud,
          mesh: spec.mesh,
          address: c.address,
          ingressPorts: r.ingressPorts,
          replicationPort: r.replicationPort,
          metricsPort: r.metricsPort,
          backend: b,
          etcdEndpoints: endpoints,
          logLevel: r.logLevel,
          drainDeadlineMs: r.drainDeadlineMs,
          workers: r.workers,
          allowCidrs: r.allowedSourceRanges,
        }),
      );
      const rep = new LocalReplicator(
        `${c.cloud}-replicator`,
        { dir: c.replicatorDir, cloud: c.cloud, config, clusterKey: key.key, readyTimeoutMs },
        p,
      );
      this.replicators[c.cloud] = rep;
      replicators.push(rep);
    }

    let prometheusUrl: pulumi.Output<string> | undefined;
    if (plan.prometheus) {
      const prom = new LocalPrometheus(
        'prometheus',
        {
          dir: plan.prometheus.dir,
          address: plan.prometheus.address,
          port: plan.prometheus.port,
          scrapeIntervalSeconds: 5,
          targets: [
            ...plan.clouds.map((c) => ({
              job: 'udpmesh-replicator',
              target: hostPort(c.address, r.metricsPort),
              labels: { namespace: spec.mesh, cloud: c.cloud, cluster: c.cloud },
            })),
            ...plan.etcd.members.map((m) => ({
              job: 'etcd',
              target: hostPort(m.address, m.clientPort),
              labels: { namespace: spec.mesh, cloud: m.cloud, member: m.name },
            })),
          ],
          ruleGroups: alertRuleGroups(spec.etcd.interCloudRttMs),
          readyTimeoutMs,
        },
        // Created after the replicators it scrapes, removed before them.
        { parent: this, dependsOn: replicators },
      );
      prometheusUrl = prom.url;
    }

    const out: Record<string, unknown> = {
      contractVersion: CONTRACT_VERSION,
      target: 'local',
      mesh: spec.mesh,
      clouds: [...CLOUDS],
      udpPorts: r.ingressPorts,
      etcdClientEndpoints: etcd.endpoints,
      localStateDir: plan.stateDir,
    };
    if (prometheusUrl) out.prometheusUrl = prometheusUrl;
    for (const c of plan.clouds) {
      out[perCloudOutput(c.cloud, 'ClusterName')] = c.cloud;
      out[perCloudOutput(c.cloud, 'UdpEndpoint')] = c.address;
      out[perCloudOutput(c.cloud, 'MetricsUrl')] = this.replicators[c.cloud]!.metricsUrl;
    }
    this.outputs = out as UdpmeshProgramOutputs;
    this.registerOutputs(this.outputs);
  }
}
