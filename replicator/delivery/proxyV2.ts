// The PROXY protocol version 2 header in its DGRAM form (HAProxy's proxy-protocol.txt, section 2.2), as
// `delivery.sessionIdentity: proxy-v2` puts it in front of every datagram delivered to a backend, at the
// origin and in every other cluster alike: the backend (dnsdist, unbound, HAProxy, ...) then sees the real
// client address and port everywhere, plus two TLVs from the spec's custom range 0xE0-0xEF:
//   0xE0  origin cluster (UTF-8), the cloud whose ingress the client talked to
//   0xE1  session (12 bytes): hash32(origin member) | epoch u32 | session u32, equal in every cluster
// Pure encode/decode, no I/O. The decoder exists for tests and for applications written in TypeScript.
import { isIPv4, isIPv6 } from 'node:net';

export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** Version 2 (high nibble) and command: PROXY = 1 (the addresses are real), LOCAL = 0 (health checks). */
const VER_CMD_PROXY = 0x21;
const VER_CMD_LOCAL = 0x20;
/** Address family (high nibble) and transport (low nibble): UNSPEC, INET, INET6 with DGRAM = 2. */
const FAM_UNSPEC = 0x00;
const FAM_INET_DGRAM = 0x12;
const FAM_INET6_DGRAM = 0x22;
export const PROXY_V2_FIXED_BYTES = 16;
export const PROXY_V2_ADDR_BYTES = { 0: 0, 4: 12, 6: 36 } as const;
export const TLV_HEADER_BYTES = 3;
export const TLV_ORIGIN_CLUSTER = 0xe0;
export const TLV_SESSION = 0xe1;
export const SESSION_TLV_BYTES = 12;

export interface Endpoint {
  address: string;
  port: number;
}

export interface ProxyV2Header {
  command: 'proxy' | 'local';
  family: 0 | 4 | 6;
  source: Endpoint | undefined;
  destination: Endpoint | undefined;
  tlvs: Map<number, Buffer>;
}

export type ProxyV2Decode =
  | { ok: true; header: ProxyV2Header; payload: Buffer }
  | { ok: false; reason: 'truncated' | 'bad_signature' | 'bad_version' | 'bad_family' | 'bad_tlv' };

/** `::ffff:a.b.c.d` (an IPv4 client on a dual-stack socket) is written as the IPv4 address it is. */
export function unmapAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

function ipv4Bytes(a: string, out: Buffer, o: number): void {
  const parts = a.split('.');
  for (let i = 0; i < 4; i++) out[o + i] = Number(parts[i]);
}

/** RFC 4291 text form (with `::` and an embedded dotted quad) to 16 bytes; no zone ids. */
export function ipv6Bytes(a: string, out: Buffer = Buffer.alloc(16), o = 0): Buffer {
  let s = a;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const words: number[] = [];
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const ws: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const q = g.split('.').map(Number);
        ws.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!);
      } else ws.push(parseInt(g, 16));
    }
    return ws;
  };
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    const head = parse(s.slice(0, dbl));
    const tail = parse(s.slice(dbl + 2));
    words.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  } else words.push(...parse(s));
  if (words.length !== 8 || words.some((w) => !(w >= 0 && w <= 0xffff)))
    throw new RangeError(`not an IPv6 address: ${a}`);
  for (let i = 0; i < 8; i++) out.writeUInt16BE(words[i]!, o + 2 * i);
  return out;
}

function ipv6Text(buf: Buffer, o: number): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(buf.readUInt16BE(o + 2 * i));
  // Compress the longest run of zero words (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = w.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function familyOf(address: string): 0 | 4 | 6 {
  return isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0;
}

/** Bytes of a header with the given address family and TLV value sizes. */
export function proxyV2HeaderBytes(family: 0 | 4 | 6, tlvValueBytes: readonly number[]): number {
  let n = PROXY_V2_FIXED_BYTES + PROXY_V2_ADDR_BYTES[family];
  for (const v of tlvValueBytes) n += TLV_HEADER_BYTES + v;
  return n;
}

/**
 * A PROXY-command header. Source and destination must be of one family
 * (an IPv4-mapped address counts as IPv4); when they are not, or the source is unknown, the family is
 * UNSPEC: the spec tells the receiver to use the real endpoints then, and the TLVs still carry the session.
 */
export function encodeProxyV2(
  source: Endpoint | undefined,
  destination: Endpoint | undefined,
  tlvs: ReadonlyArray<readonly [number, Buffer]>,
): Buffer {
  const src = source && { address: unmapAddress(source.address), port: source.port };
  let dst = destination && { address: unmapAddress(destination.address), port: destination.port };
  const fs = src ? familyOf(src.address) : 0;
  // An unspecific listener address (0.0.0.0 / ::) of the other family is written as the family's own.
  if (src && dst && familyOf(dst.address) !== fs && /^(0\.0\.0\.0|::)$/.test(dst.address))
    dst = { address: fs === 6 ? '::' : '0.0.0.0', port: dst.port };
  const family: 0 | 4 | 6 = src && dst && fs !== 0 && familyOf(dst.address) === fs ? fs : 0;
  const size = proxyV2HeaderBytes(
    family,
    tlvs.map(([, v]) => v.length),
  );
  const buf = Buffer.alloc(size);
  PROXY_V2_SIGNATURE.copy(buf, 0);
  buf[12] = VER_CMD_PROXY;
  buf[13] = family === 4 ? FAM_INET_DGRAM : family === 6 ? FAM_INET6_DGRAM : FAM_UNSPEC;
  buf.writeUInt16BE(size - PROXY_V2_FIXED_BYTES, 14);
  let o = PROXY_V2_FIXED_BYTES;
  if (family === 4) {
    ipv4Bytes(src!.address, buf, o);
    ipv4Bytes(dst!.address, buf, o + 4);
    buf.writeUInt16BE(src!.port, o + 8);
    buf.writeUInt16BE(dst!.port, o + 10);
    o += 12;
  } else if (family === 6) {
    ipv6Bytes(src!.address, buf, o);
    ipv6Bytes(dst!.address, buf, o + 16);
    buf.writeUInt16BE(src!.port, o + 32);
    buf.writeUInt16BE(dst!.port, o + 34);
    o += 36;
  }
  for (const [type, value] of tlvs) {
    if (!(type >= 0 && type <= 0xff) || value.length > 0xffff) throw new RangeError('bad TLV');
    buf[o] = type;
    buf.writeUInt16BE(value.length, o + 1);
    value.copy(buf, o + 3);
    o += TLV_HEADER_BYTES + value.length;
  }
  return buf;
}

/** The session TLV's value: the same 12 bytes in every cluster for one client session. */
export function sessionTlv(originMemberHash: number, epoch: number, session: number): Buffer {
  const v = Buffer.allocUnsafe(SESSION_TLV_BYTES);
  v.writeUInt32BE(originMemberHash >>> 0, 0);
  v.writeUInt32BE(epoch >>> 0, 4);
  v.writeUInt32BE(session >>> 0, 8);
  return v;
}

/** Splits a datagram into its PROXY v2 header and the payload after it (a view, no copy). */
export function decodeProxyV2(buf: Buffer): ProxyV2Decode {
  if (buf.length < PROXY_V2_FIXED_BYTES) return { ok: false, reason: 'truncated' };
  if (!buf.subarray(0, 12).equals(PROXY_V2_SIGNATURE)) return { ok: false, reason: 'bad_signature' };
  const verCmd = buf[12]!;
  if (verCmd !== VER_CMD_PROXY && verCmd !== VER_CMD_LOCAL) return { ok: false, reason: 'bad_version' };
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  const end = PROXY_V2_FIXED_BYTES + len;
  if (buf.length < end) return { ok: false, reason: 'truncated' };
  const family: 0 | 4 | 6 =
    fam === FAM_INET_DGRAM ? 4 : fam === FAM_INET6_DGRAM ? 6 : fam === FAM_UNSPEC ? 0 : (-1 as 0);
  if ((family as number) === -1) return { ok: false, reason: 'bad_family' };
  const addrBytes = PROXY_V2_ADDR_BYTES[family];
  if (len < addrBytes) return { ok: false, reason: 'truncated' };
  let o = PROXY_V2_FIXED_BYTES;
  let source: Endpoint | undefined;
  let destination: Endpoint | undefined;
  if (family === 4) {
    const ip = (p: number): string => `${buf[p]}.${buf[p + 1]}.${buf[p + 2]}.${buf[p + 3]}`;
    source = { address: ip(o), port: buf.readUInt16BE(o + 8) };
    destination = { address: ip(o + 4), port: buf.readUInt16BE(o + 10) };
  } else if (family === 6) {
    source = { address: ipv6Text(buf, o), port: buf.readUInt16BE(o + 32) };
    destination = { address: ipv6Text(buf, o + 16), port: buf.readUInt16BE(o + 34) };
  }
  o += addrBytes;
  const tlvs = new Map<number, Buffer>();
  while (o < end) {
    if (o + TLV_HEADER_BYTES > end) return { ok: false, reason: 'bad_tlv' };
    const n = buf.readUInt16BE(o + 1);
    if (o + TLV_HEADER_BYTES + n > end) return { ok: false, reason: 'bad_tlv' };
    tlvs.set(buf[o]!, buf.subarray(o + TLV_HEADER_BYTES, o + TLV_HEADER_BYTES + n));
    o += TLV_HEADER_BYTES + n;
  }
  return {
    ok: true,
    header: { command: verCmd === VER_CMD_PROXY ? 'proxy' : 'local', family, source, destination, tlvs },
    payload: buf.subarray(end),
  };
}
