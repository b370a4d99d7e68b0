// The load payload: a fixed 16-byte header (magic "UDM1", session, sequence, total length, all
// big-endian u32) followed by padding derived from (session, seq), so a receiver can check that
// the datagram arrived whole and unchanged.

export const HEADER_BYTES = 16;
export const MAGIC = 0x55444d31; // "UDM1"

function padByte(session: number, seq: number, i: number): number {
  return (session * 31 + seq * 7 + i) & 0xff;
}

export function encodePayload(session: number, seq: number, totalBytes: number): Buffer {
  if (totalBytes < HEADER_BYTES) throw new Error(`payload must be at least ${HEADER_BYTES} bytes`);
  const buf = Buffer.allocUnsafe(totalBytes);
  buf.writeUInt32BE(MAGIC, 0);
  buf.writeUInt32BE(session >>> 0, 4);
  buf.writeUInt32BE(seq >>> 0, 8);
  buf.writeUInt32BE(totalBytes, 12);
  for (let i = HEADER_BYTES; i < totalBytes; i++) buf[i] = padByte(session, seq, i);
  return buf;
}

export type Decoded = { ok: true; session: number; seq: number } | { ok: false; reason: string };

export function decodePayload(buf: Buffer): Decoded {
  if (buf.length < HEADER_BYTES) return { ok: false, reason: `short datagram (${buf.length} bytes)` };
  if (buf.readUInt32BE(0) !== MAGIC) return { ok: false, reason: 'bad magic' };
  const session = buf.readUInt32BE(4);
  const seq = buf.readUInt32BE(8);
  const len = buf.readUInt32BE(12);
  if (len !== buf.length) return { ok: false, reason: `length ${buf.length} != encoded ${len}` };
  for (let i = HEADER_BYTES; i < buf.length; i++) {
    if (buf[i] !== padByte(session, seq, i)) return { ok: false, reason: `padding differs at byte ${i}` };
  }
  return { ok: true, session, seq };
}
