// The replication wire format (version 1). Pure encode/decode; every malformed input is rejected with a
// reason, never thrown, so a hostile or corrupt datagram costs one counted drop.
//
// Common header:  magic u16 'UM' | version u8 | type u8 | flags u8 | senderLen u8 | sender utf8 | epoch u32
// DATA:   lowWater u48 | count u16 | count x (streamSeq u48 | session u32 | seq u32 | len u16 | payload)
// ACK:    base u48 | largest u48 | ackDelayUs u32 | rangeCount u8 | rangeCount x (start u48 | end u48)
// PING:   timestamp f64           PONG: echoed timestamp f64
// For DATA and PING the epoch is the sender's; for ACK and PONG it is the epoch of the stream answered.
// Integers are big-endian; u48 keeps stream positions exact in a JS number.

export const MAGIC = 0x554d;
export const FRAME_VERSION = 1;

export const FrameType = { Data: 1, Ack: 2, Ping: 3, Pong: 4 } as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export const MAX_SENDER_BYTES = 64;
export const RECORD_HEADER_BYTES = 16;
export const MAX_U48 = 2 ** 48 - 1;

export interface DataRecord {
  streamSeq: number;
  session: number;
  seq: number;
  payload: Buffer;
}

export interface DataFrame {
  type: typeof FrameType.Data;
  sender: string;
  epoch: number;
  lowWater: number;
  records: DataRecord[];
}

export interface AckFrame {
  type: typeof FrameType.Ack;
  sender: string;
  epoch: number;
  /** Every stream position below base was received (or settled). */
  base: number;
  /** Largest position received, for the RTT sample. */
  largest: number;
  ackDelayUs: number;
  /** Received positions above base, as inclusive [start, end] ranges, ascending. */
  ranges: Array<[number, number]>;
}

export interface PingFrame {
  type: typeof FrameType.Ping | typeof FrameType.Pong;
  sender: string;
  epoch: number;
  timestamp: number;
}

export type Frame = DataFrame | AckFrame | PingFrame;

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

export function headerBytes(sender: string): number {
  return 2 + 1 + 1 + 1 + 1 + Buffer.byteLength(sender) + 4;
}

function writeHeader(buf: Buffer, type: FrameTypeCode, sender: string, epoch: number): number {
  buf.writeUInt16BE(MAGIC, 0);
  buf.writeUInt8(FRAME_VERSION, 2);
  buf.writeUInt8(type, 3);
  buf.writeUInt8(0, 4);
  const n = buf.write(sender, 6, 'utf8');
  buf.writeUInt8(n, 5);
  buf.writeUInt32BE(epoch >>> 0, 6 + n);
  return 10 + n;
}

function checkSender(sender: string): void {
  const n = Buffer.byteLength(sender);
  if (n === 0 || n > MAX_SENDER_BYTES)
    throw new RangeError(`sender name must be 1-${MAX_SENDER_BYTES} bytes`);
}

/** Bytes a DATA frame header takes before its records. */
export function dataHeaderBytes(sender: string): number {
  return headerBytes(sender) + 6 + 2;
}

/** Encodes a DATA frame; the caller keeps it under maxFrameBytes (see dataHeaderBytes, RECORD_HEADER_BYTES). */
export function encodeData(
  sender: string,
  epoch: number,
  lowWater: number,
  records: ReadonlyArray<{ streamSeq: number; session: number; seq: number; payload: Buffer }>,
): Buffer {
  checkSender(sender);
  let size = dataHeaderBytes(sender);
  for (const r of records) size += RECORD_HEADER_BYTES + r.payload.length;
  const buf = Buffer.allocUnsafe(size);
  let o = writeHeader(buf, FrameType.Data, sender, epoch);
  buf.writeUIntBE(lowWater, o, 6);
  o += 6;
  buf.writeUInt16BE(records.length, o);
  o += 2;
  for (const r of records) {
    buf.writeUIntBE(r.streamSeq, o, 6);
    buf.writeUInt32BE(r.session >>> 0, o + 6);
    buf.writeUInt32BE(r.seq >>> 0, o + 10);
    buf.writeUInt16BE(r.payload.length, o + 14);
    o += RECORD_HEADER_BYTES;
    r.payload.copy(buf, o);
    o += r.payload.length;
  }
  return buf;
}

export function encodeAck(
  sender: string,
  epoch: number,
  base: number,
  largest: number,
  ackDelayUs: number,
  ranges: ReadonlyArray<readonly [number, number]>,
): Buffer {
  checkSender(sender);
  if (ranges.length > 255) throw new RangeError('at most 255 ack ranges');
  const buf = Buffer.allocUnsafe(headerBytes(sender) + 6 + 6 + 4 + 1 + ranges.length * 12);
  let o = writeHeader(buf, FrameType.Ack, sender, epoch);
  buf.writeUIntBE(base, o, 6);
  buf.writeUIntBE(largest, o + 6, 6);
  buf.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.round(ackDelayUs))), o + 12);
  buf.writeUInt8(ranges.length, o + 16);
  o += 17;
  for (const [s, e] of ranges) {
    buf.writeUIntBE(s, o, 6);
    buf.writeUIntBE(e, o + 6, 6);
    o += 12;
  }
  return buf;
}

export function encodePing(
  type: typeof FrameType.Ping | typeof FrameType.Pong,
  sender: string,
  epoch: number,
  timestamp: number,
): Buffer {
  checkSender(sender);
  const buf = Buffer.allocUnsafe(headerBytes(sender) + 8);
  const o = writeHeader(buf, type, sender, epoch);
  buf.writeDoubleBE(timestamp, o);
  return buf;
}

/** Decodes one datagram. Payloads are views into `buf` (no copy): keep `buf` alive while they are used. */
export function decodeFrame(buf: Buffer): DecodeResult {
  if (buf.length < 10) return { ok: false, reason: 'truncated' };
  if (buf.readUInt16BE(0) !== MAGIC) return { ok: false, reason: 'bad_magic' };
  if (buf.readUInt8(2) !== FRAME_VERSION) return { ok: false, reason: 'bad_version' };
  const type = buf.readUInt8(3);
  const senderLen = buf.readUInt8(5);
  if (senderLen === 0 || senderLen > MAX_SENDER_BYTES) return { ok: false, reason: 'bad_sender' };
  if (buf.length < 10 + senderLen) return { ok: false, reason: 'truncated' };
  const sender = buf.toString('utf8', 6, 6 + senderLen);
  const epoch = buf.readUInt32BE(6 + senderLen);
  let o = 10 + senderLen;
  switch (type) {
    case FrameType.Data: {
      if (buf.length < o + 8) return { ok: false, reason: 'truncated' };
      const lowWater = buf.readUIntBE(o, 6);
      const count = buf.readUInt16BE(o + 6);
      o += 8;
      // Each record needs at least its header: reject impossible counts before allocating anything.
      if (count * RECORD_HEADER_BYTES > buf.length - o) return { ok: false, reason: 'bad_length' };
      const records: DataRecord[] = new Array(count);
      for (let i = 0; i < count; i++) {
        if (buf.length < o + RECORD_HEADER_BYTES) return { ok: false, reason: 'truncated' };
        const streamSeq = buf.readUIntBE(o, 6);
        const session = buf.readUInt32BE(o + 6);
        const seq = buf.readUInt32BE(o + 10);
        const len = buf.readUInt16BE(o + 14);
        o += RECORD_HEADER_BYTES;
        if (buf.length < o + len) return { ok: false, reason: 'bad_length' };
        records[i] = { streamSeq, session, seq, payload: buf.subarray(o, o + len) };
        o += len;
      }
      if (o !== buf.length) return { ok: false, reason: 'trailing_bytes' };
      return { ok: true, frame: { type: FrameType.Data, sender, epoch, lowWater, records } };
    }
    case FrameType.Ack: {
      if (buf.length < o + 17) return { ok: false, reason: 'truncated' };
      const base = buf.readUIntBE(o, 6);
      const largest = buf.readUIntBE(o + 6, 6);
      const ackDelayUs = buf.readUInt32BE(o + 12);
      const n = buf.readUInt8(o + 16);
      o += 17;
      if (buf.length !== o + n * 12)
        return { ok: false, reason: buf.length < o + n * 12 ? 'truncated' : 'trailing_bytes' };
      const ranges: Array<[number, number]> = new Array(n);
      let prevEnd = base; // base itself is missing by definition, so ranges start above it
      for (let i = 0; i < n; i++) {
        const s = buf.readUIntBE(o, 6);
        const e = buf.readUIntBE(o + 6, 6);
        // Ranges must be ascending, disjoint and above base: anything else is corrupt or hostile.
        if (s > e || s <= prevEnd || e > largest) return { ok: false, reason: 'bad_range' };
        ranges[i] = [s, e];
        prevEnd = e;
        o += 12;
      }
      return { ok: true, frame: { type: FrameType.Ack, sender, epoch, base, largest, ackDelayUs, ranges } };
    }
    case FrameType.Ping:
    case FrameType.Pong: {
      if (buf.length !== o + 8)
        return { ok: false, reason: buf.length < o + 8 ? 'truncated' : 'trailing_bytes' };
      const timestamp = buf.readDoubleBE(o);
      if (!Number.isFinite(timestamp)) return { ok: false, reason: 'bad_length' };
      return { ok: true, frame: { type, sender, epoch, timestamp } };
    }
    default:
      return { ok: false, reason: 'bad_type' };
  }
}
