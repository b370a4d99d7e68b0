// The replicator config of one simulated cloud on this machine: one recipe for `npm run local` and the
// `local` Pulumi target (infra/local), so both run the same mesh.
import type { ReplicatorConfigInput } from '../config/schema.ts';

export interface LocalNodeSpec {
  cloud: string;
  mesh: string;
  /** Address every listener of this cloud binds (and advertises). */
  address: string;
  ingressPorts: number[];
  replicationPort: number;
  metricsPort: number;
  /** host:port deliveries go to. */
  backend: string;
  etcdEndpoints: string[];
  sessionIdentity?: NonNullable<ReplicatorConfigInput['delivery']>['sessionIdentity'];
  logLevel?: NonNullable<ReplicatorConfigInput['log']>['level'];
  drainDeadlineMs?: number;
  workers?: number;
  allowCidrs?: string[];
}

export function localReplicatorConfig(n: LocalNodeSpec): ReplicatorConfigInput {
  return {
    cluster: n.cloud,
    instance: `${n.cloud}-local`,
    mesh: n.mesh,
    ingress: {
      ports: n.ingressPorts,
      addresses: [n.address],
      ...(n.allowCidrs ? { allowCidrs: n.allowCidrs } : {}),
    },
    replication: { address: n.address, port: n.replicationPort, advertiseAddress: n.address },
    delivery: { backends: [n.backend], ...(n.sessionIdentity ? { sessionIdentity: n.sessionIdentity } : {}) },
    ...(n.workers ? { workers: n.workers } : {}),
    etcd: { endpoints: n.etcdEndpoints },
    metrics: { address: n.address, port: n.metricsPort },
    log: { level: n.logLevel ?? 'info' },
    drain: { deadlineMs: n.drainDeadlineMs ?? 3000 },
  };
}
