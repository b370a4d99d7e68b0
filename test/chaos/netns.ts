// The chaos topology: one network namespace per "cloud" (aws, gcp, azure) plus one for the load client,
// each joined by a veth pair to a bridge. The bridge lives in a hub namespace of its own (not in the root
// namespace): the root namespace gets no interface, no address and no route, so the host's firewall
// (e.g. Docker's FORWARD policy DROP with br_netfilter) cannot interfere, nothing can collide with the
// host's networks, and parallel runs cannot collide with each other (each run has its own hub and
// namespaces named um-<id>-*, where <id> is the owning process id in base 36).
//
// A partition is `ip link set <hub side of the cloud's veth> down`: the cloud loses every link
// (replication, etcd peers, clients), its processes keep running.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export const SUBNET_PREFIX = '10.77.0';

export interface NsHost {
  /** Short role name: aws, gcp, azure or client. */
  role: string;
  /** Namespace name. */
  ns: string;
  /** Address of the namespace's eth0 (/24 on the hub bridge). */
  address: string;
  /** Name of the veth end inside the hub namespace (set down to partition this host). */
  hubIf: string;
}

export interface Topology {
  id: string;
  hub: string;
  hosts: NsHost[];
}

const NS_RE = /^um-([0-9a-z]+)-(hub|aws|gcp|azure|client|probe)$/;

function ipBinary(): string {
  for (const p of ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']) if (existsSync(p)) return p;
  return 'ip';
}

export const IP = ipBinary();

/** Run `ip <args>`; throws with stderr on failure unless allowFail. */
export function ip(args: string[], allowFail = false): { ok: boolean; out: string; err: string } {
  const r = spawnSync(IP, args, { encoding: 'utf8', timeout: 15_000 });
  const ok = r.status === 0;
  if (!ok && !allowFail)
    throw new Error(
      `ip ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || String(r.error ?? '')).trim()}`,
    );
  return { ok, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** Why namespaces cannot be used here, or undefined when they can (root, iproute2, a probe namespace works). */
export function netnsUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    return 'network namespaces need root (run the chaos suite as root)';
  const v = spawnSync(IP, ['-V'], { encoding: 'utf8' });
  if (v.status !== 0) return `iproute2 ("ip") is not available: ${String(v.error ?? v.stderr)}`;
  const probe = `um-${process.pid.toString(36)}-probe`;
  const add = ip(['netns', 'add', probe], true);
  if (!add.ok) return `"ip netns add" failed: ${add.err.trim()}`;
  const veth = ip(['-n', probe, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1'], true);
  ip(['netns', 'del', probe], true);
  if (!veth.ok) return `creating a veth pair in a namespace failed: ${veth.err.trim()}`;
  return undefined;
}

function listNamespaces(): string[] {
  const r = ip(['netns', 'list'], true);
  if (!r.ok) return [];
  return r.out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Process ids whose network namespace is ns. */
export function pidsInNamespace(ns: string): number[] {
  const r = ip(['netns', 'pids', ns], true);
  if (!r.ok) return [];
  return r.out
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Kill (SIGKILL) every process left in a namespace, then delete it. Returns what was killed. */
export function destroyNamespace(ns: string): string[] {
  const killed: string[] = [];
  for (let round = 0; round < 3; round++) {
    const pids = pidsInNamespace(ns).filter((p) => p !== process.pid);
    if (pids.length === 0) break;
    for (const pid of pids) {
      const what = cmdline(pid);
      try {
        process.kill(pid, 'SIGKILL');
        if (round === 0) killed.push(`${pid} ${what.slice(0, 80)}`);
      } catch {
        /* already gone */
      }
    }
    spawnSync('sleep', ['0.2']);
  }
  ip(['netns', 'del', ns], true);
  return killed;
}

/**
 * Delete namespaces of earlier runs whose owning process is gone (a crashed or SIGKILLed run), with the
 * processes still inside them (those runs' etcd members, replicators and agents). Namespaces of a run
 * whose process is still alive (a parallel run) are left alone.
 */
export function cleanupStale(log: (s: string) => void = () => undefined): void {
  for (const ns of listNamespaces()) {
    const m = NS_RE.exec(ns);
    if (!m) continue;
    const owner = parseInt(m[1]!, 36);
    if (owner === process.pid || pidAlive(owner)) continue;
    const killed = destroyNamespace(ns);
    log(
      `removed stale namespace ${ns} of dead run ${owner}${killed.length ? ` (killed ${killed.join('; ')})` : ''}`,
    );
  }
}

/** Create the hub, the three clouds and the client namespace, wired to the hub's bridge. */
export function createTopology(roles: string[] = ['aws', 'gcp', 'azure', 'client']): Topology {
  const id = process.pid.toString(36);
  const hub = `um-${id}-hub`;
  const topo: Topology = { id, hub, hosts: [] };
  // Anything of ours from an earlier topology in this same process (should not happen) goes first.
  for (const ns of listNamespaces()) if (ns.startsWith(`um-${id}-`)) destroyNamespace(ns);
  try {
    ip(['netns', 'add', hub]);
    ip(['-n', hub, 'link', 'set', 'lo', 'up']);
    ip(['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', hub, 'link', 'set', 'br0', 'up']);
    roles.forEach((role, i) => {
      const ns = `um-${id}-${role}`;
      const hubIf = `h-${role}`;
      const address = role === 'client' ? `${SUBNET_PREFIX}.10` : `${SUBNET_PREFIX}.${i + 2}`;
      ip(['netns', 'add', ns]);
      topo.hosts.push({ role, ns, address, hubIf });
      ip(['-n', hub, 'link', 'add', hubIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ip(['-n', hub, 'link', 'set', hubIf, 'master', 'br0']);
      ip(['-n', hub, 'link', 'set', hubIf, 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    });
  } catch (err) {
    destroyTopology(topo);
    throw err;
  }
  return topo;
}

/** Kill whatever still runs inside the namespaces and delete them (idempotent, synchronous: usable in 'exit'). */
export function destroyTopology(topo: Topology): void {
  for (const h of topo.hosts) destroyNamespace(h.ns);
  destroyNamespace(topo.hub);
}

/** Partition (down) or heal (up) a host's only link. */
export function setLink(topo: Topology, role: string, up: boolean): void {
  const h = topo.hosts.find((x) => x.role === role);
  if (!h) throw new Error(`no host ${role}`);
  ip(['-n', topo.hub, 'link', 'set', h.hubIf, up ? 'up' : 'down']);
}
