// Shared by the local-target tests: a stack spec whose every listener is on a random 127.x.y.0/29
// address triple (nobody else on this machine binds those) and free ports, and a safety net that kills
// whatever a failed test left running under its state dir.
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseStackConfig, type StackConfig, type StackConfigInput } from '../../../infra/config/schema.ts';
import { isRunning, readPidFile, stopDetached } from '../../../replicator/local/detached.ts';
import { freePorts } from '../../harness/freePort.ts';

export interface LocalTestEnv {
  stateDir: string;
  addresses: { aws: string; gcp: string; azure: string };
  input: StackConfigInput;
  spec: StackConfig;
}

export async function localTestEnv(overrides: Partial<StackConfigInput> = {}): Promise<LocalTestEnv> {
  const a = 10 + Math.floor(Math.random() * 240);
  const b = Math.floor(Math.random() * 250);
  const c = 8 * Math.floor(Math.random() * 30);
  const addresses = {
    aws: `127.${a}.${b}.${c + 1}`,
    gcp: `127.${a}.${b}.${c + 2}`,
    azure: `127.${a}.${b}.${c + 3}`,
  };
  const [ingress, replication, metrics, client, peer, echo, prom] = await freePorts(7);
  const stateDir = mkdtempSync(join(tmpdir(), 'udpmesh-localtarget-'));
  const input: StackConfigInput = {
    clouds: ['local'],
    mesh: `t${a}x${b}`,
    replicator: {
      ingressPorts: [ingress!],
      replicationPort: replication!,
      metricsPort: metrics!,
      drainDeadlineMs: 1500,
    },
    etcd: { clientPort: client!, peerPort: peer! },
    local: {
      addresses,
      echoPort: echo!,
      prometheus: { address: addresses.aws, port: prom! },
      stateDir,
      readyTimeoutMs: 45_000,
    },
    ...overrides,
  };
  return { stateDir, addresses, input, spec: parseStackConfig(input) };
}

function pidFiles(dir: string): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (e.endsWith('.pid')) out.push(p);
    else if (!e.endsWith('.data') && e !== 'data' && statSync(p).isDirectory()) out.push(...pidFiles(p));
  }
  return out;
}

/** Every process recorded under dir that still runs (pid files). */
export function runningUnder(dir: string): string[] {
  return pidFiles(dir).filter((f) => isRunning(readPidFile(f)));
}

/** SIGKILLs everything recorded under dir and removes it. */
export async function killAllUnder(dir: string): Promise<void> {
  await Promise.all(pidFiles(dir).map((f) => stopDetached(readPidFile(f), 0, 'SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
}

/** Sends one datagram to address:port and resolves with the reply (or undefined after timeoutMs). */
export function roundTrip(
  address: string,
  port: number,
  payload: string,
  timeoutMs: number,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m.toString());
    });
    s.send(payload, port, address);
  });
}
