// Where the inter-cluster keys come from: key files (a mounted Kubernetes Secret, re-read so a rotation
// needs no restart) and the environment. The first key signs; every key verifies. Default secure: a
// replicator whose replication socket is reachable from other hosts refuses to run without a key.
import { readFileSync } from 'node:fs';
import { makeKeyRing, type KeyRing } from '../protocol/frameAuth.ts';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** Throws unless there is a key, the replication address is loopback (local mode), or insecure is set. */
export function requireKey(
  ring: KeyRing,
  replication: { address: string; auth: { insecure?: boolean } },
): void {
  if (ring.current !== undefined || replication.auth.insecure || LOOPBACK.test(replication.address)) return;
  throw new Error(
    `replication.auth: a cluster key is required on ${replication.address} (set UDPMESH_CLUSTER_KEY or ` +
      'replication.auth.keyFiles; replication.auth.insecure: true runs unauthenticated, for tests only)',
  );
}

export function loadKeyRing(
  auth: { keyFiles: string[]; allowUnsigned: boolean },
  env: NodeJS.ProcessEnv = process.env,
): KeyRing {
  const keys: Buffer[] = [];
  for (const file of auth.keyFiles) {
    const text = readFileSync(file, 'utf8').trim();
    if (text) keys.push(Buffer.from(text, 'utf8'));
  }
  for (const name of ['UDPMESH_CLUSTER_KEY', 'UDPMESH_CLUSTER_KEY_PREVIOUS']) {
    const v = env[name]?.trim();
    if (v) keys.push(Buffer.from(v, 'utf8'));
  }
  const uniq = [...new Map(keys.map((k) => [k.toString('hex'), k])).values()];
  return makeKeyRing(uniq, auth.allowUnsigned);
}
