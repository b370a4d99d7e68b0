// Free loopback ports for tests (outside the ephemeral range, never handed out twice): see replicator/local/freePort.ts.
import { isPortFree } from '../../replicator/local/freePort.ts';
export { freePort, freePorts, isPortFree } from '../../replicator/local/freePort.ts';

/** Offsets from `npm run local -- --base-port B` that local mode binds (ingress, replication, metrics, backends). */
const LOCAL_MODE_OFFSETS = [1, 2, 3, 946, 947, 948, 2101, 2102, 2103, 201, 202, 203];

/**
 * A `--base-port` for local mode whose every port is free and below the kernel's ephemeral range (32768+):
 * a port there can be taken by any outbound connection between our check and local mode's bind.
 */
export async function freeLocalModeBase(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + Math.floor(Math.random() * 1000) * 10; // base + 2103 stays below 32768
    const free = await Promise.all(LOCAL_MODE_OFFSETS.map((o) => isPortFree(base + o)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free base port for local mode below the ephemeral range');
}
