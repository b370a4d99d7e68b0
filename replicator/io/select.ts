// Chooses the data plane's socket implementation from the `io` config key: `batched` insists on the addon
// (a clear error when it is missing), `dgram` never loads it, `auto` takes the addon when it loads and
// otherwise falls back to dgram, saying why (the reason goes to the log line and to /status).
import { createBatchedIo } from './batchedIo.ts';
import { createDgramIo } from './dgramIo.ts';
import type { IoMode, UdpIo } from './udpIo.ts';

export function selectIo(mode: IoMode): UdpIo {
  if (mode === 'dgram') return createDgramIo('io: dgram configured');
  const batched = createBatchedIo();
  if ('kind' in batched) return batched;
  if (mode === 'batched') throw new Error(`io: batched is configured but unavailable: ${batched.reason}`);
  return createDgramIo(`io: auto fell back to dgram: ${batched.reason}`);
}
