// Loads the udp_batch addon (replicator/io/native/udp_batch.c), built at install by scripts/build-native.mjs.
// Not finding or not loading it is a normal outcome (no compiler, not Linux): the caller gets the reason.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface UdpBatchAddon {
  /** ring, slot size, 15 typed arrays (see batchedIo.ts setup), then the per-turn dispatch function. */
  setup(...args: [Uint8Array, number, ...Array<ArrayBufferView | ((count: number) => void)>]): void;
  open(
    family: 4 | 6,
    address: string | undefined,
    port: number,
    reusePort: boolean,
    ipv6Only: boolean,
    rcvbuf: number,
    sndbuf: number,
    gro: boolean,
    /** Unused: a turn's datagrams reach JS through setup's dispatch function. */
    onBatch: (count: number) => void,
    onError: (errno: number, syscall: string) => void,
  ): number;
  info(id: number): [string, number, 4 | 6, number, number, boolean];
  connect(id: number, family: 4 | 6, address: string, port: number): void;
  flush(count: number): number;
  close(id: number): void;
  ref(id: number, on: boolean): void;
  pton6(address: string, out: Uint8Array, at: number): boolean;
  ntop6(bytes: Uint8Array, at: number): string;
  sockets(): number;
  counterSlots: number;
  /** UDP_BATCH_ABI of the source the binary was built from. */
  abi?: number;
}

/**
 * The addon interface this JS expects (UDP_BATCH_ABI in udp_batch.c). A binary built from older source
 * (a checkout updated without `npm ci` / `npm run build:native`) is refused with the reason, so `auto`
 * falls back to dgram and `batched` stops, instead of a data plane that silently receives nothing.
 */
export const ADDON_ABI = 2;

/** Counter slots of the addon's Float64Array (the enum in udp_batch.c). */
export const C = {
  recvCalls: 0,
  recvDatagrams: 1,
  groSplits: 2,
  recvErrors: 3,
  recvTruncated: 4,
  sendCalls: 5,
  sendDatagrams: 6,
  gsoMessages: 7,
  sendErrors: 8,
  sendWouldBlock: 9,
  gsoDisabled: 10,
  callbacks: 11,
} as const;

/** Where the addon may be: next to this file (dist/ copies it there) or in the source tree's build dir. */
function candidates(): string[] {
  const out: string[] = [];
  if (process.env.UDPMESH_ADDON) out.push(process.env.UDPMESH_ADDON);
  for (const rel of [
    './native/build/Release/udp_batch.node',
    '../../../replicator/io/native/build/Release/udp_batch.node',
  ])
    out.push(fileURLToPath(new URL(rel, import.meta.url)));
  return out;
}

export function loadAddon(): { addon: UdpBatchAddon; path: string } | { addon: undefined; reason: string } {
  if (process.platform !== 'linux')
    return { addon: undefined, reason: `batched I/O needs Linux, not ${process.platform}` };
  const path = candidates().find((p) => existsSync(p));
  if (!path) return { addon: undefined, reason: 'the udp_batch addon is not built (npm run build:native)' };
  try {
    const addon = createRequire(import.meta.url)(path) as UdpBatchAddon;
    if (addon.abi !== ADDON_ABI)
      return {
        addon: undefined,
        reason: `the udp_batch addon at ${path} was built from other source (abi ${String(addon.abi)}, this code needs ${ADDON_ABI}): rebuild it with npm run build:native`,
      };
    return { addon, path };
  } catch (err) {
    return {
      addon: undefined,
      reason: `the udp_batch addon at ${path} does not load: ${(err as Error).message}`,
    };
  }
}
