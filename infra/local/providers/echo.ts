// An echo backend for one simulated cloud (when the stack names no backend of yours for it): the same
// program local mode runs in-process (replicator/local/echoBackend.ts), here as a detached process.
// Ready means it really echoes: a probe datagram comes back.
import { createSocket } from 'node:dgram';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { echoBackendCommand } from '../../../replicator/local/echoBackend.ts';
import { stopPidFile } from '../../../replicator/local/detached.ts';
import { REPO_ROOT } from '../../../replicator/local/replicatorProcess.ts';
import {
  assertPortsFree,
  createFresh,
  pidFileRunning,
  processStateOf,
  removeProcess,
  spawnUntilReady,
  type DiffResult,
  type ProcessState,
} from './common.ts';

export interface EchoInputs {
  dir: string;
  cloud: string;
  address: string;
  port: number;
  readyTimeoutMs: number;
}

export interface EchoOutputs extends EchoInputs, ProcessState {
  endpoint: string;
}

const files = (dir: string) => ({ pid: join(dir, 'echo.pid'), log: join(dir, 'echo.log') });

function endpointOf(i: EchoInputs): string {
  return i.address.includes(':') ? `[${i.address}]:${i.port}` : `${i.address}:${i.port}`;
}

/** One datagram to the backend; true when it comes back within 500 ms. */
export function echoes(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    const probe = Buffer.from(`udpmesh-local-probe-${Date.now()}`);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    sock.on('error', () => done(false));
    sock.on('message', (msg) => {
      if (msg.equals(probe)) done(true);
    });
    sock.send(probe, port, address);
  });
}

async function start(i: EchoInputs): Promise<void> {
  const f = files(i.dir);
  await assertPortsFree([{ address: i.address, port: i.port, what: `${i.cloud} echo backend` }]);
  mkdirSync(i.dir, { recursive: true });
  const cmd = echoBackendCommand(i.address, i.port);
  await spawnUntilReady(
    { ...cmd, cwd: REPO_ROOT, logFile: f.log, pidFile: f.pid },
    () => echoes(i.address, i.port),
    { timeoutMs: i.readyTimeoutMs, what: `${i.cloud} echo backend`, graceMs: 2000 },
  );
}

function outputs(i: EchoInputs): EchoOutputs {
  return { ...i, ...processStateOf(files(i.dir).pid), endpoint: endpointOf(i) };
}

export async function create(i: EchoInputs): Promise<{ id: string; outs: EchoOutputs }> {
  await createFresh(i.dir, files(i.dir).pid, 2000, () => start(i));
  return { id: i.dir, outs: outputs(i) };
}

export function read(_id: string, props: EchoOutputs): EchoOutputs {
  return outputs(props);
}

export function diff(_id: string, olds: EchoOutputs, news: EchoInputs): DiffResult {
  const replaces = (['dir', 'cloud'] as const).filter((k) => olds[k] !== news[k]);
  const changes =
    replaces.length > 0 ||
    !olds.running ||
    olds.address !== news.address ||
    olds.port !== news.port ||
    olds.readyTimeoutMs !== news.readyTimeoutMs;
  return { changes, replaces, deleteBeforeReplace: true };
}

export async function update(
  _id: string,
  olds: EchoOutputs,
  news: EchoInputs,
): Promise<{ outs: EchoOutputs }> {
  const f = files(news.dir);
  const moved = olds.address !== news.address || olds.port !== news.port;
  if (moved || !pidFileRunning(f.pid)) {
    await stopPidFile(f.pid, 2000);
    await start(news);
  }
  return { outs: outputs(news) };
}

export async function remove(_id: string, props: EchoOutputs): Promise<void> {
  await removeProcess(props.dir, files(props.dir).pid, 2000);
}
