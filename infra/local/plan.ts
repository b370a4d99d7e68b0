// What a `clouds: [local]` stack runs on this machine, as plain data computed from the stack config:
// directories, etcd members, one replicator and (unless the stack names your backend) one echo backend
// per simulated cloud, Prometheus. The component (localMesh.ts) and the preflight checks
// (preflight.ts) both read it, so they agree on every address:port and pid file.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { CLOUDS, etcdTimeouts, type Cloud, type StackConfig } from '../config/schema.ts';

export interface PlannedProcess {
  /** e.g. "aws replicator" */
  what: string;
  pidFile: string;
  listeners: { address: string; port: number; what: string }[];
}

export interface LocalPlan {
  stateDir: string;
  etcd: {
    dir: string;
    token: string;
    members: { name: string; cloud: Cloud; address: string; clientPort: number; peerPort: number }[];
    heartbeatMs: number;
    electionMs: number;
  };
  clouds: {
    cloud: Cloud;
    address: string;
    replicatorDir: string;
    /** Your backend, or undefined: an echo backend runs at echo. */
    userBackend: string | undefined;
    echo: { dir: string; port: number } | undefined;
  }[];
  prometheus: { dir: string; address: string; port: number } | undefined;
  processes: PlannedProcess[];
}

/** $XDG_STATE_HOME/udpmesh/<project>/<stack> unless local.stateDir says otherwise (relative to cwd). */
export function localStateDir(spec: StackConfig, project: string, stack: string): string {
  if (spec.local.stateDir)
    return isAbsolute(spec.local.stateDir) ? spec.local.stateDir : resolve(spec.local.stateDir);
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'udpmesh', project, stack);
}

export function localPlan(spec: StackConfig, project: string, stack: string): LocalPlan {
  const stateDir = localStateDir(spec, project, stack);
  const l = spec.local;
  const r = spec.replicator;
  const t = etcdTimeouts(spec.etcd.interCloudRttMs);
  const etcdDir = join(stateDir, 'etcd');
  const members = CLOUDS.map((cloud, i) => ({
    name: `etcd${i}`,
    cloud,
    address: l.addresses[cloud],
    clientPort: spec.etcd.clientPort,
    peerPort: spec.etcd.peerPort,
  }));
  const clouds = CLOUDS.map((cloud) => ({
    cloud,
    address: l.addresses[cloud],
    replicatorDir: join(stateDir, `replicator-${cloud}`),
    userBackend: l.backends[cloud],
    echo: l.backends[cloud] ? undefined : { dir: join(stateDir, `echo-${cloud}`), port: l.echoPort },
  }));
  const prometheus = spec.monitoring.enabled
    ? { dir: join(stateDir, 'prometheus'), address: l.prometheus.address, port: l.prometheus.port }
    : undefined;
  const processes: PlannedProcess[] = [
    ...members.map((m) => ({
      what: `etcd member ${m.name}`,
      pidFile: join(etcdDir, `${m.name}.pid`),
      listeners: [
        { address: m.address, port: m.clientPort, what: `etcd member ${m.name} client (etcd.clientPort)` },
        { address: m.address, port: m.peerPort, what: `etcd member ${m.name} peer (etcd.peerPort)` },
      ],
    })),
    ...clouds.flatMap((c) => [
      ...(c.echo
        ? [
            {
              what: `${c.cloud} echo backend`,
              pidFile: join(c.echo.dir, 'echo.pid'),
              listeners: [
                { address: c.address, port: c.echo.port, what: `${c.cloud} echo backend (local.echoPort)` },
              ],
            },
          ]
        : []),
      {
        what: `${c.cloud} replicator`,
        pidFile: join(c.replicatorDir, 'replicator.pid'),
        listeners: [
          ...r.ingressPorts.map((port, i) => ({
            address: c.address,
            port,
            what: `${c.cloud} replicator ingress (replicator.ingressPorts[${i}])`,
          })),
          {
            address: c.address,
            port: r.replicationPort,
            what: `${c.cloud} replicator replication (replicator.replicationPort)`,
          },
          {
            address: c.address,
            port: r.metricsPort,
            what: `${c.cloud} replicator metrics (replicator.metricsPort)`,
          },
        ],
      },
    ]),
    ...(prometheus
      ? [
          {
            what: 'prometheus',
            pidFile: join(prometheus.dir, 'prometheus.pid'),
            listeners: [
              {
                address: prometheus.address,
                port: prometheus.port,
                what: 'prometheus (local.prometheus.port)',
              },
            ],
          },
        ]
      : []),
  ];
  return {
    stateDir,
    etcd: {
      dir: etcdDir,
      token: `udpmesh-${project}-${stack}`,
      members,
      heartbeatMs: t.heartbeatMs,
      electionMs: t.electionMs,
    },
    clouds,
    prometheus,
    processes,
  };
}
