// The replication wire format (version 2, docs/protocol.md). Pure encode/decode; every malformed input is
// rejected with a reason, never thrown, so a hostile or corrupt datagram costs one counted drop.
//
// Header: magic u16 'UM' | version u8 | type u8 | flags u8 | senderLen u8 | sender | receiverLen u8 | receiver
//         | senderEpoch u32 | receiverEpoch u32 | packet u48
// DATA:   lowWater u48 | count u16 | count x (position u48 | session u32 | seq u64 | len u16 | payload)
// ACK:    largestPacket u48 | ackDelayUs u32 | base u48 | rangeCount u8 | rangeCount x (start u48 | end u48)
// PING:   timestamp f64 | lowWater u48          PONG: echoed timestamp f64
// Every frame names both ends and both incarnations, so it means something on one link only. Packet numbers
// count every frame a link direction sends and are never reused (QUIC): ACKs name the largest packet
// received, which gives an unambiguous RTT sample and loss detection that covers retransmissions.
// Integers are big-endian; u48 keeps positions and packet numbers exact in a JS number; seq is a u64 on the
// wire holding values up to 2^53-1, so no session ever reaches a boundary a comparison could get wrong.

export const MAGIC = 0x554d;
export const FRAME_VERSION = 2;

export const FrameType = { Data: 1, Ack: 2, Ping: 3, Pong: 4 } as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export const MAX_NAME_BYTES = 64;
/** @deprecated v1 name; sender and receiver names share the bound. */
export const MAX_SENDER_BYTES = MAX_NAME_BYTES;
export const RECORD_HEADER_BYTES = 20;
export const MAX_U48 = 2 ** 48 - 1;
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;
/** The largest header: two 64-byte names. */
export const MAX_HEADER_BYTES = 21 + 2 * MAX_NAME_BYTES;
export const MAX_DATA_HEADER_BYTES = MAX_HEADER_BYTES + 8;
/** The smallest header: two 1-byte names. */
export const MIN_HEADER_BYTES = 23;

export interface DataRecord {
  streamSeq: number;
  session: number;
  seq: number;
  payload: Buffer;
}

/** Who sends, to whom, which incarnations, which transmission. */
export interface FrameHeader {
  sender: string;
  receiver: string;
  senderEpoch: number;
  receiverEpoch: number;
  packet: number;
}

/**
 * Flags bit: what the receiver holds below the low-water mark was handed to another replica; discard it
 * instead of delivering it (docs/protocol.md, hand-over). Bit 0 is the authentication flag.
 */
export const DISCARD_FLAG = 0x02;

export interface DataFrame extends FrameHeader {
  type: typeof FrameType.Data;
  lowWater: number;
  /** DISCARD_FLAG: held datagrams below lowWater are discarded, not delivered. */
  discard?: boolean;
  records: DataRecord[];
}

export interface AckFrame extends FrameHeader {
  type: typeof FrameType.Ack;
  /** Largest packet number received on the acknowledged link, for the RTT sample and loss detection. */
  largestPacket: number;
  ackDelayUs: number;
  /** Every stream position below base was received (or settled). */
  base: number;
  /** Received positions above base, as inclusive [start, end] ranges, ascending. */
  ranges: Array<[number, number]>;
}

export interface PingFrame extends FrameHeader {
  type: typeof FrameType.Ping;
  timestamp: number;
  /** The sender's low-water mark: abandonment reaches an idle receiver too. */
  lowWater: number;
  discard?: boolean;
}

export interface PongFrame extends FrameHeader {
  type: typeof FrameType.Pong;
  timestamp: number;
}

export type Frame = DataFrame | AckFrame | PingFrame | PongFrame;

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; reason: DecodeErrorReason };

export type DecodeErrorReason =
  | 'truncated'
  | 'bad_magic'
  | 'bad_version'
  | 'bad_type'
  | 'bad_sender'
  | 'bad_length'
  | 'bad_range'
  | 'trailing_bytes';

// Member names repeat on every frame of a link: their UTF-8 bytes (encode) and their strings (decode) are
// cached (a replicator sees a few dozen at most) instead of being converted per frame (bounded: cleared
// when full).
const MAX_CACHED_NAMES = 256;
const nameBytes = new Map<string, Buffer>();
const decodedNames: Array<{ bytes: Buffer; name: string }> = [];

function utf8Of(name: string): Buffer {
  let b = nameBytes.get(name);
  if (b === undefined) {
    if (nameBytes.size >= MAX_CACHED_NAMES) nameBytes.clear();
    b = Buffer.from(name, 'utf8');
    nameBytes.set(name, b);
  }
  return b;
}

/** The name in buf[start, end): a cached string when those bytes were seen before. */
function nameAt(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  outer: for (let i = 0; i < decodedNames.length; i++) {
    const c = decodedNames[i];
    const b = c.bytes;
    if (b.length !== n) continue;
    for (let j = 0; j < n; j++) if (b[j] !== buf[start + j]) continue outer;
    return c.name;
  }
  const name = buf.toString('utf8', start, end);
  if (decodedNames.length >= 64) decodedNames.length = 0;
  // The key is the bytes as they were (a copy: buf is a socket buffer that may be reused).
  decodedNames.push({ bytes: Buffer.from(buf.subarray(start, end)), name });
  return name;
}

export function headerBytes(sender: string, receiver: string): number {
  return 21 + utf8Of(sender).length + utf8Of(receiver).length;
}

/** Bytes a DATA frame header takes before its records. */
export function dataHeaderBytes(sender: string, receiver: string): number {
  return headerBytes(sender, receiver) + 8;
}

function checkName(name: string, what: string): Buffer {
  const b = utf8Of(name);
  if (b.length === 0 || b.length > MAX_NAME_BYTES)
    throw new RangeError(`${what} name must be 1-${MAX_NAME_BYTES} bytes`);
  return b;
}

function checkU48(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > MAX_U48) throw new RangeError(`${what} ${v} is not a u48`);
}

function writeU48(buf: Buffer, v: number, o: number): void {
  buf.writeUInt16BE(Math.floor(v / 0x100000000), o);
  buf.writeUInt32BE(v >>> 0, o + 2);
}

function readU48(buf: Buffer, o: number): number {
  return buf.readUInt16BE(o) * 0x100000000 + buf.readUInt32BE(o + 2);
}

/** The name bytes checkHeader found, for the writeHeader that follows it in the same encoder. */
let senderBytes: Buffer = Buffer.alloc(0);
let receiverBytes: Buffer = Buffer.alloc(0);

function writeHeader(buf: Buffer, type: FrameTypeCode, h: FrameHeader, flags = 0): number {
  buf.writeUInt16BE(MAGIC, 0);
  buf.writeUInt8(FRAME_VERSION, 2);
  buf.writeUInt8(type, 3);
  buf.writeUInt8(flags, 4);
  const n = senderBytes.length;
  buf.set(senderBytes, 6); // TypedArray set: a plain copy, cheaper than Buffer#copy for a few bytes
  buf.writeUInt8(n, 5);
  let o = 6 + n;
  const m = receiverBytes.length;
  buf.set(receiverBytes, o + 1);
  buf.writeUInt8(m, o);
  o += 1 + m;
  buf.writeUInt32BE(h.senderEpoch >>> 0, o);
  buf.writeUInt32BE(h.receiverEpoch >>> 0, o + 4);
  writeU48(buf, h.packet, o + 8);
  return o + 14;
}

/** Checks the header fields and returns the header's size in bytes. */
function checkHeader(h: FrameHeader): number {
  senderBytes = checkName(h.sender, 'sender');
  receiverBytes = checkName(h.receiver, 'receiver');
  checkU48(h.packet, 'packet number');
  return 21 + senderBytes.length + receiverBytes.length;
}

/** Encodes a DATA frame; the caller keeps it under maxFrameBytes (see dataHeaderBytes, RECORD_HEADER_BYTES). */
export function encodeData(
  h: FrameHeader,
  lowWater: number,
  records: ReadonlyArray<{ streamSeq: number; session: number; seq: number; payload: Buffer }>,
  discard = false,
): Buffer {
  let size = checkHeader(h) + 8;
  checkU48(lowWater, 'low-water mark');
  for (const r of records) size += RECORD_HEADER_BYTES + r.payload.length;
  const buf = Buffer.allocUnsafe(size);
  let o = writeHeader(buf, FrameType.Data, h, discard ? DISCARD_FLAG : 0);
  writeU48(buf, lowWater, o);
  o += 6;
  buf.writeUInt16BE(records.length, o);
  o += 2;
  for (const r of records) {
    if (!(r.seq >= 0 && r.seq <= MAX_SEQ)) throw new RangeError(`seq ${r.seq} is outside 0..2^53-1`);
    writeU48(buf, r.streamSeq, o);
    buf.writeUInt32BE(r.session >>> 0, o + 6);
    buf.writeUInt32BE(Math.floor(r.seq / 0x100000000), o + 10);
    buf.writeUInt32BE(r.seq >>> 0, o + 14);
    buf.writeUInt16BE(r.payload.length, o + 18);
    o += RECORD_HEADER_BYTES;
    buf.set(r.payload, o);
    o += r.payload.length;
  }
  return buf;
}

export function encodeAck(
  h: FrameHeader,
  largestPacket: number,
  ackDelayUs: number,
  base: number,
  ranges: ReadonlyArray<readonly [number, number]>,
): Buffer {
  const size = checkHeader(h);
  if (ranges.length > 255) throw new RangeError('at most 255 ack ranges');
  const buf = Buffer.allocUnsafe(size + 6 + 4 + 6 + 1 + ranges.length * 12);
  let o = writeHeader(buf, FrameType.Ack, h);
  writeU48(buf, largestPacket, o);
  buf.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.round(ackDelayUs))), o + 6);
  writeU48(buf, base, o + 10);
  buf.writeUInt8(ranges.length, o + 16);
  o += 17;
  for (const [s, e] of ranges) {
    writeU48(buf, s, o);
    writeU48(buf, e, o + 6);
    o += 12;
  }
  return buf;
}

export function encodePing(h: FrameHeader, timestamp: number, lowWater: number, discard = false): Buffer {
  const buf = Buffer.allocUnsafe(checkHeader(h) + 14);
  const o = writeHeader(buf, FrameType.Ping, h, discard ? DISCARD_FLAG : 0);
  buf.writeDoubleBE(timestamp, o);
  writeU48(buf, lowWater, o + 8);
  return buf;
}

export function encodePong(h: FrameHeader, timestamp: number): Buffer {
  const buf = Buffer.allocUnsafe(checkHeader(h) + 8);
  const o = writeHeader(buf, FrameType.Pong, h);
  buf.writeDoubleBE(timestamp, o);
  return buf;
}

/** Parses the header only (the authentication layer derives the link key from it). */
export function peekHeader(buf: Buffer): (FrameHeader & { type: number; bodyAt: number }) | undefined {
  if (buf.length < 8 || buf.readUInt16BE(0) !== MAGIC || buf.readUInt8(2) !== FRAME_VERSION) return undefined;
  const senderLen = buf.readUInt8(5);
  if (senderLen === 0 || senderLen > MAX_NAME_BYTES || buf.length < 7 + senderLen) return undefined;
  const ro = 6 + senderLen;
  const receiverLen = buf.readUInt8(ro);
  if (receiverLen === 0 || receiverLen > MAX_NAME_BYTES) return undefined;
  const eo = ro + 1 + receiverLen;
  if (buf.length < eo + 14) return undefined;
  return {
    type: buf.readUInt8(3),
    sender: nameAt(buf, 6, ro),
    receiver: nameAt(buf, ro + 1, eo),
    senderEpoch: buf.readUInt32BE(eo),
    receiverEpoch: buf.readUInt32BE(eo + 4),
    packet: readU48(buf, eo + 8),
    bodyAt: eo + 14,
  };
}

/**
 * Decodes one datagram. Payloads are views into `buf` (no copy): keep `buf` alive while they are used.
 * `peeked` is peekHeader's result for the same header bytes when the caller has it already (the
 * replication core reads the header first to route the frame): it is not parsed twice.
 */
export function decodeFrame(buf: Buffer, peeked?: ReturnType<typeof peekHeader>): DecodeResult {
  if (buf.length < MIN_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  if (buf.readUInt16BE(0) !== MAGIC) return { ok: false, reason: 'bad_magic' };
  if (buf.readUInt8(2) !== FRAME_VERSION) return { ok: false, reason: 'bad_version' };
  const senderLen = buf.readUInt8(5);
  if (senderLen === 0 || senderLen > MAX_NAME_BYTES) return { ok: false, reason: 'bad_sender' };
  if (buf.length < 7 + senderLen) return { ok: false, reason: 'truncated' };
  const receiverLen = buf.readUInt8(6 + senderLen);
  if (receiverLen === 0 || receiverLen > MAX_NAME_BYTES) return { ok: false, reason: 'bad_sender' };
  const h = peeked ?? peekHeader(buf);
  if (!h || buf.length < h.bodyAt) return { ok: false, reason: 'truncated' };
  const { type, bodyAt, sender, receiver, senderEpoch, receiverEpoch, packet } = h;
  let o = bodyAt;
  const discard = (buf.readUInt8(4) & DISCARD_FLAG) !== 0;
  switch (type) {
    case FrameType.Data: {
      if (buf.length < o + 8) return { ok: false, reason: 'truncated' };
      const lowWater = readU48(buf, o);
      const count = buf.readUInt16BE(o + 6);
      o += 8;
      // Each record needs at least its header: reject impossible counts before allocating anything.
      if (count * RECORD_HEADER_BYTES > buf.length - o) return { ok: false, reason: 'bad_length' };
      const records: DataRecord[] = new Array(count);
      for (let i = 0; i < count; i++) {
        if (buf.length < o + RECORD_HEADER_BYTES) return { ok: false, reason: 'truncated' };
        const streamSeq = readU48(buf, o);
        const session = buf.readUInt32BE(o + 6);
        const hi = buf.readUInt32BE(o + 10);
        if (hi > 0x1fffff) return { ok: false, reason: 'bad_range' }; // above 2^53-1: not exact in JS
        const seq = hi * 0x100000000 + buf.readUInt32BE(o + 14);
        const len = buf.readUInt16BE(o + 18);
        o += RECORD_HEADER_BYTES;
        if (buf.length < o + len) return { ok: false, reason: 'bad_length' };
        records[i] = { streamSeq, session, seq, payload: buf.subarray(o, o + len) };
        o += len;
      }
      if (o !== buf.length) return { ok: false, reason: 'trailing_bytes' };
      const frame: DataFrame = {
        type: FrameType.Data,
        sender,
        receiver,
        senderEpoch,
        receiverEpoch,
        packet,
        lowWater,
        records,
      };
      if (discard) frame.discard = true;
      return { ok: true, frame };
    }
    case FrameType.Ack: {
      if (buf.length < o + 17) return { ok: false, reason: 'truncated' };
      const largestPacket = readU48(buf, o);
      const ackDelayUs = buf.readUInt32BE(o + 6);
      const base = readU48(buf, o + 10);
      const n = buf.readUInt8(o + 16);
      o += 17;
      if (buf.length !== o + n * 12)
        return { ok: false, reason: buf.length < o + n * 12 ? 'truncated' : 'trailing_bytes' };
      const ranges: Array<[number, number]> = new Array(n);
      let prevEnd = base; // base itself is missing by definition, so ranges start above it
      for (let i = 0; i < n; i++) {
        const s = readU48(buf, o);
        const e = readU48(buf, o + 6);
        // Ranges must be ascending, disjoint and above base: anything else is corrupt or hostile.
        if (s > e || s <= prevEnd) return { ok: false, reason: 'bad_range' };
        ranges[i] = [s, e];
        prevEnd = e;
        o += 12;
      }
      return {
        ok: true,
        frame: {
          type: FrameType.Ack,
          sender,
          receiver,
          senderEpoch,
          receiverEpoch,
          packet,
          largestPacket,
          ackDelayUs,
          base,
          ranges,
        },
      };
    }
    case FrameType.Ping: {
      if (buf.length !== o + 14)
        return { ok: false, reason: buf.length < o + 14 ? 'truncated' : 'trailing_bytes' };
      const timestamp = buf.readDoubleBE(o);
      if (!Number.isFinite(timestamp)) return { ok: false, reason: 'bad_length' };
      const frame: PingFrame = {
        type,
        sender,
        receiver,
        senderEpoch,
        receiverEpoch,
        packet,
        timestamp,
        lowWater: readU48(buf, o + 8),
      };
      if (discard) frame.discard = true;
      return { ok: true, frame };
    }
    case FrameType.Pong: {
      if (buf.length !== o + 8)
        return { ok: false, reason: buf.length < o + 8 ? 'truncated' : 'trailing_bytes' };
      const timestamp = buf.readDoubleBE(o);
      if (!Number.isFinite(timestamp)) return { ok: false, reason: 'bad_length' };
      return {
        ok: true,
        frame: { type, sender, receiver, senderEpoch, receiverEpoch, packet, timestamp },
      };
    }
    default:
      return { ok: false, reason: 'bad_type' };
  }
}
