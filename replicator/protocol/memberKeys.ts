// Per-incarnation X25519 key pairs: what stops one member from speaking as another (issue 10, D7).
// With only the shared cluster key, every key holder could derive every link key. Each replicator process
// now generates a key pair at start (never written anywhere), publishes the public half in its etcd member
// record, and keys the link to a peer with X25519(own private, peer public) together with the cluster key
// (frameAuth.ts linkKey). A third member knows neither private key, so it cannot produce or check the
// MACs of a link it is not an end of. The Diffie-Hellman runs once per peer incarnation, never per frame.
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';

export interface MemberKeyPair {
  /** The raw 32-byte public key, base64url (as a JWK's `x`): what the member record carries. */
  publicKey: string;
  privateKey: KeyObject;
}

/** A member record's `publicKey`: 32 bytes, base64url without padding. */
export const PUBLIC_KEY_PATTERN = /^[A-Za-z0-9_-]{43}$/;

function fromPrivate(privateKey: KeyObject): MemberKeyPair {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  return { publicKey: jwk.x!, privateKey };
}

/** A fresh key pair for this process (this incarnation). */
export function generateMemberKeyPair(): MemberKeyPair {
  return fromPrivate(generateKeyPairSync('x25519').privateKey);
}

/** PKCS#8 DER prefix of an X25519 private key (RFC 8410): the 32 raw bytes follow. */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** A key pair from 32 given bytes: deterministic, for the simulator and tests only (a replay is exact). */
export function memberKeyPairFromSeed(seed: Buffer): MemberKeyPair {
  if (seed.length !== 32) throw new RangeError('an X25519 private key is 32 bytes');
  return fromPrivate(
    createPrivateKey({ key: Buffer.concat([PKCS8_X25519, seed]), format: 'der', type: 'pkcs8' }),
  );
}

/**
 * X25519(own private, peer public): the same 32 bytes at both ends of a link. Undefined for a key that
 * cannot be used (malformed, or a low-order point whose shared secret would be all zeros).
 */
export function linkSecret(own: MemberKeyPair, peerPublicKey: string): Buffer | undefined {
  if (!PUBLIC_KEY_PATTERN.test(peerPublicKey)) return undefined;
  try {
    const publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: peerPublicKey },
      format: 'jwk',
    });
    const s = diffieHellman({ privateKey: own.privateKey, publicKey });
    return s.every((b) => b === 0) ? undefined : s;
  } catch {
    return undefined;
  }
}
