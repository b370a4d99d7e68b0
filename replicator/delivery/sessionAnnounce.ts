// Session announcements: how a remote cluster learns a session's client address and port, which the
// DATA records (session u32, seq u32, payload) do not carry. They travel in the replication stream itself
// as records of the reserved session 0 (the ingress numbers sessions from 1), so they are acknowledged,
// retransmitted, deduplicated and ordered by the machinery every datagram already goes through, and the
// frame format is unchanged. A receiver never delivers session 0 to a backend.
//
//   payload: kind u8 (1 = endpoint) | session u32 | srcFamily u8 (4|6) | srcAddr 4|16 | srcPort u16
//            | dstFamily u8 (0|4|6) | dstAddr 0|4|16 | dstPort u16
//
// The origin sends one before a session's first replicated datagram, again when the session's replica
// targets change, and again every ANNOUNCE_REFRESH_MS while the session is active, so a receiver that
// restarted (and lost what it learnt) recovers the address within that time. Pure: no I/O.
import { isIPv4 } from 'node:net';
import { ipv6Bytes, unmapAddress, familyOf, type Endpoint } from './proxyV2.ts';

/** The session number announcements travel under; real sessions start at 1. */
export const CONTROL_SESSION = 0;
export const ANNOUNCE_KIND_ENDPOINT = 1;
export const ANNOUNCE_REFRESH_MS = 10_000;

export interface SessionEndpoint {
  session: number;
  source: Endpoint;
  destination: Endpoint | undefined;
}

export type AnnounceDecode =
  | { ok: true; announce: SessionEndpoint }
  | { ok: false; reason: 'unknown_kind' | 'truncated' | 'bad_family' | 'trailing_bytes' };

function addrLen(f: number): number {
  return f === 4 ? 4 : f === 6 ? 16 : 0;
}

export function encodeAnnounce(a: SessionEndpoint): Buffer {
  const src = unmapAddress(a.source.address);
  const dst = a.destination ? unmapAddress(a.destination.address) : undefined;
  const sf = familyOf(src);
  if (sf === 0) throw new RangeError(`not an IP address: ${a.source.address}`);
  const df = dst === undefined ? 0 : familyOf(dst);
  const buf = Buffer.alloc(1 + 4 + 1 + addrLen(sf) + 2 + 1 + addrLen(df) + 2);
  let o = 0;
  buf[o++] = ANNOUNCE_KIND_ENDPOINT;
  buf.writeUInt32BE(a.session >>> 0, o);
  o += 4;
  const put = (f: number, address: string | undefined, port: number): void => {
    buf[o++] = f;
    if (f === 4) for (const part of address!.split('.')) buf[o++] = Number(part);
    else if (f === 6) {
      ipv6Bytes(address!, buf, o);
      o += 16;
    }
    buf.writeUInt16BE(port, o);
    o += 2;
  };
  put(sf, src, a.source.port);
  put(df, dst, a.destination?.port ?? 0);
  return buf;
}

export function decodeAnnounce(buf: Buffer): AnnounceDecode {
  if (buf.length < 1) return { ok: false, reason: 'truncated' };
  if (buf[0] !== ANNOUNCE_KIND_ENDPOINT) return { ok: false, reason: 'unknown_kind' };
  let o = 1;
  if (buf.length < o + 4) return { ok: false, reason: 'truncated' };
  const session = buf.readUInt32BE(o);
  o += 4;
  const get = (): Endpoint | undefined | 'bad' | 'short' => {
    if (buf.length < o + 1) return 'short';
    const f = buf[o++]!;
    if (f !== 0 && f !== 4 && f !== 6) return 'bad';
    const n = addrLen(f);
    if (buf.length < o + n + 2) return 'short';
    let address = '';
    if (f === 4) address = `${buf[o]}.${buf[o + 1]}.${buf[o + 2]}.${buf[o + 3]}`;
    else if (f === 6) {
      const w: string[] = [];
      for (let i = 0; i < 8; i++) w.push(buf.readUInt16BE(o + 2 * i).toString(16));
      address = w.join(':');
    }
    o += n;
    const port = buf.readUInt16BE(o);
    o += 2;
    return f === 0 ? undefined : { address, port };
  };
  const source = get();
  if (source === 'bad' || source === undefined) return { ok: false, reason: 'bad_family' };
  if (source === 'short') return { ok: false, reason: 'truncated' };
  const destination = get();
  if (destination === 'bad') return { ok: false, reason: 'bad_family' };
  if (destination === 'short') return { ok: false, reason: 'truncated' };
  if (o !== buf.length) return { ok: false, reason: 'trailing_bytes' };
  return { ok: true, announce: { session, source, destination } };
}

/** The session an announcement is about (undefined for a payload that is not one), without decoding it all. */
export function announcedSession(payload: Buffer): number | undefined {
  return payload.length >= 5 && payload[0] === ANNOUNCE_KIND_ENDPOINT ? payload.readUInt32BE(1) : undefined;
}

/** True for an address the announcement can carry (an IP literal, as a socket reports it). */
export function announceable(address: string): boolean {
  const a = unmapAddress(address);
  return isIPv4(a) || familyOf(a) === 6;
}
