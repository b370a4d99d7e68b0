// Authentication of frames between replicators: HMAC-SHA256 (truncated to 128 bits) under a per-link key,
// appended as a trailer [keyId u8 | mac 16] with the header's auth flag set. The link key is derived with
// HKDF over both ends' names and epochs (read from the frame's own header), so a MAC is valid on one link
// between two incarnations only: not at another receiver, not in a later incarnation, not under another
// sender name. Its input is the cluster key together with the link's X25519 secret (memberKeys.ts), so it
// takes the cluster key (outsiders) and one end's private key (other members): one member cannot speak as
// another. Without a secret (a static peer with no member record) it is the cluster key alone (v2).
// Two cluster keys are accepted during a rollover (current signs, previous still verifies). Replays on the
// same link are stopped by the receiver's packet-number window.
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { peekHeader } from './frame.ts';

export const FLAGS_OFFSET = 4;
export const AUTH_FLAG = 0x01;
export const MAC_BYTES = 16;
export const TRAILER_BYTES = 1 + MAC_BYTES;
export const MIN_KEY_BYTES = 16;

export interface FrameKey {
  id: number;
  key: Buffer;
}

export interface KeyRing {
  /** Signs outgoing frames; undefined = authentication off. */
  current: FrameKey | undefined;
  /** Keys accepted on incoming frames (current first). */
  accepted: FrameKey[];
  /** Accept frames without a MAC (only for a rollout that turns authentication on). */
  allowUnsigned: boolean;
}

export function frameKey(key: Buffer): FrameKey {
  if (key.length < MIN_KEY_BYTES) throw new RangeError(`a cluster key needs at least ${MIN_KEY_BYTES} bytes`);
  return { id: createHash('sha256').update(key).digest()[0], key };
}

export function makeKeyRing(keys: Buffer[], allowUnsigned = false): KeyRing {
  const fk = keys.map(frameKey);
  return { current: fk[0], accepted: fk, allowUnsigned: fk.length === 0 || allowUnsigned };
}

const SALT = Buffer.from('udpmesh/v2');
const SALT_V3 = Buffer.from('udpmesh/v3');
/** Derived link keys, per cluster key; bounded (cleared when full: deriving again is cheap). */
const linkKeys = new WeakMap<Buffer, Map<string, Buffer>>();
/** The same per link secret (one per peer incarnation, so they go with it), then per cluster key. */
const secretLinkKeys = new WeakMap<Buffer, WeakMap<Buffer, Map<string, Buffer>>>();
const MAX_CACHED_LINKS = 4096;

/**
 * With the link's X25519 secret: HKDF-SHA256(ikm secret || clusterKey, salt "udpmesh/v3", info sender 0
 * senderEpoch 0 receiver 0 receiverEpoch). Without (a static peer): HKDF-SHA256(clusterKey, "udpmesh/v2",
 * the same info), as protocol v2 did.
 */
export function linkKey(
  clusterKey: Buffer,
  sender: string,
  senderEpoch: number,
  receiver: string,
  receiverEpoch: number,
  secret?: Buffer,
): Buffer {
  const info = `${sender}\0${senderEpoch}\0${receiver}\0${receiverEpoch}`;
  let cache: Map<string, Buffer> | undefined;
  if (secret === undefined) {
    cache = linkKeys.get(clusterKey);
    if (!cache) linkKeys.set(clusterKey, (cache = new Map()));
  } else {
    let byKey = secretLinkKeys.get(secret);
    if (!byKey) secretLinkKeys.set(secret, (byKey = new WeakMap()));
    cache = byKey.get(clusterKey);
    if (!cache) byKey.set(clusterKey, (cache = new Map()));
  }
  let k = cache.get(info);
  if (!k) {
    if (cache.size >= MAX_CACHED_LINKS) cache.clear();
    k =
      secret === undefined
        ? Buffer.from(hkdfSync('sha256', clusterKey, SALT, Buffer.from(info), 32))
        : Buffer.from(
            hkdfSync('sha256', Buffer.concat([secret, clusterKey]), SALT_V3, Buffer.from(info), 32),
          );
    cache.set(info, k);
  }
  return k;
}

function mac(key: Buffer, data: Buffer, secret: Buffer | undefined): Buffer {
  const h = peekHeader(data);
  // Without a parsable header there is no link to bind to: such a MAC never verifies (the decoder rejects it).
  const k = h ? linkKey(key, h.sender, h.senderEpoch, h.receiver, h.receiverEpoch, secret) : key;
  return createHmac('sha256', k).update(data).digest().subarray(0, MAC_BYTES);
}

/**
 * Returns the frame with the auth flag set and the trailer appended (a new buffer). `key` (one of the
 * ring's accepted keys) signs instead of the current one: during a rollover a frame to a peer that has
 * not learnt the new key yet is signed with the key that peer signs with (see the replicator's sendFrame).
 * `secret` is the link's X25519 secret (memberKeys.ts linkSecret); without it the v2 derivation is used.
 */
export function signFrame(frame: Buffer, ring: KeyRing, key?: FrameKey, secret?: Buffer): Buffer {
  const k = ring.current === undefined ? undefined : (key ?? ring.current);
  if (!k) return frame;
  const out = Buffer.allocUnsafe(frame.length + TRAILER_BYTES);
  frame.copy(out, 0);
  out[FLAGS_OFFSET] |= AUTH_FLAG;
  out[frame.length] = k.id;
  mac(k.key, out.subarray(0, frame.length + 1), secret).copy(out, frame.length + 1);
  return out;
}

/** On success, `key` is the accepted key that verified the frame (undefined for an unsigned frame). */
export type VerifyResult =
  { ok: true; frame: Buffer; key?: FrameKey } | { ok: false; reason: 'unauthenticated' | 'bad_mac' };

/** Verifies (under the link `secret` when given) and strips the trailer; the frame is a view of `buf`. */
export function verifyFrame(buf: Buffer, ring: KeyRing, secret?: Buffer): VerifyResult {
  if (buf.length <= FLAGS_OFFSET) return { ok: true, frame: buf }; // too short to matter: the decoder rejects it
  const signed = (buf[FLAGS_OFFSET] & AUTH_FLAG) !== 0;
  if (!signed)
    return ring.allowUnsigned ? { ok: true, frame: buf } : { ok: false, reason: 'unauthenticated' };
  if (buf.length < FLAGS_OFFSET + 1 + TRAILER_BYTES) return { ok: false, reason: 'bad_mac' };
  const body = buf.length - MAC_BYTES;
  const keyId = buf[body - 1];
  if (ring.accepted.length === 0) return { ok: true, frame: buf.subarray(0, body - 1) };
  const got = buf.subarray(body);
  for (const k of ring.accepted) {
    if (k.id !== keyId) continue;
    if (timingSafeEqual(mac(k.key, buf.subarray(0, body), secret), got))
      return { ok: true, frame: buf.subarray(0, body - 1), key: k };
  }
  return { ok: false, reason: 'bad_mac' };
}
