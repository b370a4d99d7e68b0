// The local target's etcd cluster: one dynamic resource for the 3 members (a static cluster is
// bootstrapped by all its members together), one member per simulated cloud on that cloud's address.
// Members run Debian's etcd with the same flags as local mode and the tests (etcdMemberArgs), detached,
// data under <stateDir>/etcd. refresh reports dead members; up restarts them on their data dirs.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { etcdEnv, etcdMemberArgs, memberHealthy } from '../../../replicator/local/etcdCluster.ts';
import { spawnDetached, stopPidFile } from '../../../replicator/local/detached.ts';
import {
  assertPortsFree,
  delay,
  hostUrl,
  pidFileRunning,
  processStateOf,
  requireBinary,
  stopOrphan,
  waitUntil,
  type DiffResult,
  type ProcessState,
} from './common.ts';

export interface EtcdMemberSpec {
  name: string;
  address: string;
  clientPort: number;
  peerPort: number;
}

export interface EtcdInputs {
  /** This resource's directory (pid files, logs, data). */
  dir: string;
  /** --initial-cluster-token: unique per stack. */
  token: string;
  members: EtcdMemberSpec[];
  heartbeatMs: number;
  electionMs: number;
  readyTimeoutMs: number;
}

export interface EtcdOutputs extends EtcdInputs {
  endpoints: string[];
  memberStates: ProcessState[];
  running: boolean;
}

const files = (dir: string, name: string) => ({
  pid: join(dir, `${name}.pid`),
  log: join(dir, `${name}.log`),
  data: join(dir, `${name}.data`),
});

function endpoints(i: EtcdInputs): string[] {
  return i.members.map((m) => hostUrl(m.address, m.clientPort));
}

function startMember(i: EtcdInputs, m: EtcdMemberSpec, binary: string): void {
  const f = files(i.dir, m.name);
  const initialCluster = i.members.map((x) => `${x.name}=${hostUrl(x.address, x.peerPort)}`).join(',');
  const args = etcdMemberArgs({
    name: m.name,
    dataDir: f.data,
    clientUrl: hostUrl(m.address, m.clientPort),
    peerUrl: hostUrl(m.address, m.peerPort),
    initialCluster,
    token: i.token,
    heartbeatIntervalMs: i.heartbeatMs,
    electionTimeoutMs: i.electionMs,
  });
  spawnDetached({ command: binary, args, env: etcdEnv(), logFile: f.log, pidFile: f.pid });
}

async function waitHealthy(i: EtcdInputs): Promise<void> {
  const deadline = Date.now() + i.readyTimeoutMs;
  for (const m of i.members) {
    const f = files(i.dir, m.name);
    await waitUntil(() => memberHealthy(hostUrl(m.address, m.clientPort)), {
      timeoutMs: Math.max(1000, deadline - Date.now()),
      alive: () => pidFileRunning(f.pid),
      what: `etcd member ${m.name}`,
      logFile: f.log,
    });
  }
  // Healthy members and a write through the cluster: quorum is really there.
  const client = new Etcd3({ hosts: endpoints(i), dialTimeout: 2000 });
  try {
    for (;;) {
      try {
        await client.put('/udpmesh-local/healthcheck').value(new Date().toISOString());
        return;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`etcd did not accept a write: ${String(err)}`, { cause: err });
        await delay(100);
      }
    }
  } finally {
    client.close();
  }
}

function outputs(i: EtcdInputs): EtcdOutputs {
  const memberStates = i.members.map((m) => processStateOf(files(i.dir, m.name).pid));
  return { ...i, endpoints: endpoints(i), memberStates, running: memberStates.every((s) => s.running) };
}

async function stopAll(i: EtcdInputs): Promise<void> {
  // SIGTERM lets a member finish its raft step; the data is deleted right after anyway.
  await Promise.all(i.members.map((m) => stopPidFile(files(i.dir, m.name).pid, 5000)));
}

export async function create(i: EtcdInputs): Promise<{ id: string; outs: EtcdOutputs }> {
  const binary = requireBinary('etcd', 'etcd-server', 'ETCD_BIN');
  for (const m of i.members) await stopOrphan(files(i.dir, m.name).pid, 5000);
  await assertPortsFree(
    i.members.flatMap((m) => [
      { address: m.address, port: m.clientPort, what: `etcd member ${m.name} client` },
      { address: m.address, port: m.peerPort, what: `etcd member ${m.name} peer` },
    ]),
  );
  rmSync(i.dir, { recursive: true, force: true });
  mkdirSync(i.dir, { recursive: true });
  try {
    for (const m of i.members) startMember(i, m, binary);
    await waitHealthy(i);
  } catch (err) {
    await stopAll(i);
    rmSync(i.dir, { recursive: true, force: true });
    throw err;
  }
  return { id: i.dir, outs: outputs(i) };
}

export function read(_id: string, props: EtcdOutputs): EtcdOutputs {
  return outputs(props);
}

/** Members that must be rebuilt from scratch (a new cluster): names, addresses, ports, token. */
function layoutChanged(olds: EtcdInputs, news: EtcdInputs): boolean {
  return (
    olds.dir !== news.dir ||
    olds.token !== news.token ||
    JSON.stringify(olds.members) !== JSON.stringify(news.members)
  );
}

export function diff(_id: string, olds: EtcdOutputs, news: EtcdInputs): DiffResult {
  const replaces = layoutChanged(olds, news) ? ['members'] : [];
  const changes =
    replaces.length > 0 ||
    olds.running === false ||
    olds.heartbeatMs !== news.heartbeatMs ||
    olds.electionMs !== news.electionMs ||
    olds.readyTimeoutMs !== news.readyTimeoutMs;
  return { changes, replaces, deleteBeforeReplace: true };
}

/** Restarts dead members (same data dir); new timers restart every member one at a time. */
export async function update(
  _id: string,
  olds: EtcdOutputs,
  news: EtcdInputs,
): Promise<{ outs: EtcdOutputs }> {
  const binary = requireBinary('etcd', 'etcd-server', 'ETCD_BIN');
  const timersChanged = olds.heartbeatMs !== news.heartbeatMs || olds.electionMs !== news.electionMs;
  for (const m of news.members) {
    const f = files(news.dir, m.name);
    const alive = pidFileRunning(f.pid);
    if (alive && !timersChanged) continue;
    if (alive) await stopPidFile(f.pid, 5000);
    startMember(news, m, binary);
    await waitHealthy(news);
  }
  return { outs: outputs(news) };
}

export async function remove(_id: string, props: EtcdOutputs): Promise<void> {
  await stopAll(props);
  rmSync(props.dir, { recursive: true, force: true });
}
