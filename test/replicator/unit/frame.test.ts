// Wire codec (protocol v2): round trips for every frame type, rejection (never a throw) of every truncation,
// random and mutated bytes, impossible counts, bad header fields, bad ACK ranges and trailing bytes.
//
// Longer on-demand fuzz (no script needed):  FUZZ_RUNS=100000 npx mocha test/replicator/unit/frame.test.ts
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DISCARD_FLAG,
  FRAME_VERSION,
  FrameType,
  MAGIC,
  MAX_SENDER_BYTES,
  MAX_U48,
  RECORD_HEADER_BYTES,
  dataHeaderBytes,
  decodeFrame,
  encodeAck,
  encodeData,
  encodePing,
  encodePong,
  headerBytes,
  MAX_SEQ,
  peekHeader,
  type AckFrame,
  type DataFrame,
  type DecodeResult,
  type Frame,
  type FrameHeader,
  type PingFrame,
  type PongFrame,
} from '../../../replicator/protocol/frame.ts';
import { fuzz, fuzzTimeout } from './fuzzRuns.ts';

// ---- arbitraries -------------------------------------------------------------------------------------

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u48 = fc.bigInt({ min: 0n, max: BigInt(MAX_U48) }).map(Number);
/** Small positions mostly, sometimes the full u48 range (exactness above 2^32 matters). */
const position = fc.oneof(fc.integer({ min: 0, max: 100_000 }), u48);
/** Well-formed Unicode sender names of 1..64 UTF-8 bytes (multi-byte characters included). */
const sender = fc
  .oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 }),
    fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: MAX_SENDER_BYTES }),
    fc.constantFrom('aws/replicator-0', 'gcp/r-1', 'x', 'é', '☃'.repeat(21), 'a'.repeat(MAX_SENDER_BYTES)),
  )
  .filter((s) => {
    const n = Buffer.byteLength(s);
    return n >= 1 && n <= MAX_SENDER_BYTES;
  });

const packet = fc.oneof(fc.integer({ min: 0, max: 100_000 }), u48);
const headerFields = fc.record({
  sender,
  receiver: sender,
  senderEpoch: u32,
  receiverEpoch: u32,
  packet,
});

const record = fc.record({
  streamSeq: position,
  session: u32,
  /** Per-session sequence: a u64 on the wire, exact up to 2^53-1 (crossing 2^32 matters, issue 10 D1). */
  seq: fc.oneof(u32, fc.integer({ min: 0, max: MAX_SEQ })),
  payload: fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)),
});

const dataFrame: fc.Arbitrary<DataFrame> = fc
  .record({ h: headerFields, lowWater: position, records: fc.array(record, { maxLength: 12 }) })
  .map(({ h, lowWater, records }) => ({ type: FrameType.Data, ...h, lowWater, records }));

/** ACK fields satisfying the wire rules: ranges ascending, disjoint, above base. */
const ackFrame: fc.Arbitrary<AckFrame> = fc
  .record({
    h: headerFields,
    largestPacket: packet,
    base: fc.oneof(
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.bigInt({ min: 0n, max: BigInt(MAX_U48 - 10_000_000) }).map(Number),
    ),
    steps: fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 1000 })), {
      maxLength: 40,
    }),
    ackDelayUs: u32,
  })
  .map(({ h, largestPacket, base, steps, ackDelayUs }) => {
    const ranges: Array<[number, number]> = [];
    let p = base;
    for (const [gap, len] of steps) {
      const s = p + gap;
      ranges.push([s, s + len]);
      p = s + len;
    }
    return { type: FrameType.Ack, ...h, largestPacket, ackDelayUs, base, ranges };
  });

const timestamp = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: 0, max: 2 ** 31 - 1 }),
);
const pingFrame: fc.Arbitrary<PingFrame | PongFrame> = fc.oneof(
  fc
    .record({ h: headerFields, timestamp, lowWater: position })
    .map(({ h, timestamp, lowWater }): PingFrame => ({ type: FrameType.Ping, ...h, timestamp, lowWater })),
  fc
    .record({ h: headerFields, timestamp })
    .map(({ h, timestamp }): PongFrame => ({ type: FrameType.Pong, ...h, timestamp })),
);

const anyFrame: fc.Arbitrary<Frame> = fc.oneof(dataFrame, ackFrame, pingFrame);

const hdr = (f: FrameHeader): FrameHeader => ({
  sender: f.sender,
  receiver: f.receiver,
  senderEpoch: f.senderEpoch,
  receiverEpoch: f.receiverEpoch,
  packet: f.packet,
});
/** A header for hand-written frames. */
const H = (sender = 'a', packet = 0): FrameHeader => ({
  sender,
  receiver: 'b',
  senderEpoch: 1,
  receiverEpoch: 2,
  packet,
});

function encode(f: Frame): Buffer {
  switch (f.type) {
    case FrameType.Data:
      return encodeData(hdr(f), f.lowWater, f.records, f.discard);
    case FrameType.Ack:
      return encodeAck(hdr(f), f.largestPacket, f.ackDelayUs, f.base, f.ranges);
    case FrameType.Ping:
      return encodePing(hdr(f), f.timestamp, f.lowWater, f.discard);
    default:
      return encodePong(hdr(f), f.timestamp);
  }
}

/** Frames compared as plain values (payload views become byte arrays). */
function plain(f: Frame): unknown {
  if (f.type !== FrameType.Data) return { ...f };
  return { ...f, records: f.records.map((r) => ({ ...r, payload: [...r.payload] })) };
}

function decodeNoThrow(buf: Buffer): DecodeResult {
  try {
    return decodeFrame(buf);
  } catch (err) {
    assert.fail(`decodeFrame threw on ${buf.toString('hex')}: ${(err as Error).stack}`);
  }
}

function rejected(buf: Buffer): string {
  const r = decodeNoThrow(buf);
  assert.equal(r.ok, false, `expected rejection of ${buf.toString('hex')}`);
  return r.ok ? '' : r.reason;
}

function header(type: number, senderName = 'a', epoch = 7): Buffer {
  const s = Buffer.from(senderName);
  const r = Buffer.from('b');
  const b = Buffer.alloc(21 + s.length + r.length);
  b.writeUInt16BE(MAGIC, 0);
  b.writeUInt8(FRAME_VERSION, 2);
  b.writeUInt8(type, 3);
  b.writeUInt8(0, 4);
  b.writeUInt8(s.length, 5);
  s.copy(b, 6);
  b.writeUInt8(r.length, 6 + s.length);
  r.copy(b, 7 + s.length);
  const o = 7 + s.length + r.length;
  b.writeUInt32BE(epoch, o);
  b.writeUInt32BE(2, o + 4);
  b.writeUIntBE(0, o + 8, 6);
  return b;
}

function u48be(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

/** An ACK frame written by hand, so ranges the encoder would happily write (bad ones) can be tested. */
function rawAck(base: number, ranges: Array<[number, number]>, count = ranges.length): Buffer {
  const delay = Buffer.alloc(4);
  return Buffer.concat([
    header(FrameType.Ack),
    u48be(9), // largest packet
    delay,
    u48be(base),
    Buffer.from([count]),
    ...ranges.flatMap(([s, e]) => [u48be(s), u48be(e)]),
  ]);
}

// ---- tests -------------------------------------------------------------------------------------------

describe('protocol/frame codec', function () {
  this.timeout(fuzzTimeout(60_000));

  describe('round trips', () => {
    it('DATA: random records, payloads, positions up to 2^48-1 and sender names', () => {
      fc.assert(
        fc.property(dataFrame, (f) => {
          const buf = encodeData(hdr(f), f.lowWater, f.records);
          assert.equal(
            buf.length,
            dataHeaderBytes(f.sender, f.receiver) +
              f.records.reduce((n, r) => n + RECORD_HEADER_BYTES + r.payload.length, 0),
          );
          const r = decodeFrame(buf);
          assert.ok(r.ok, r.ok ? '' : r.reason);
          assert.deepEqual(plain(r.frame), plain(f));
        }),
        fuzz(300),
      );
    });

    it('ACK: random bases, ascending disjoint ranges, largest packet and ack delay', () => {
      fc.assert(
        fc.property(ackFrame, (f) => {
          const r = decodeFrame(encode(f));
          assert.ok(r.ok, r.ok ? '' : r.reason);
          assert.deepEqual(plain(r.frame), plain(f));
        }),
        fuzz(300),
      );
    });

    it('PING and PONG: any finite timestamp, any epoch', () => {
      fc.assert(
        fc.property(pingFrame, (f) => {
          const buf = encode(f);
          assert.equal(buf.length, headerBytes(f.sender, f.receiver) + (f.type === FrameType.Ping ? 14 : 8));
          const r = decodeFrame(buf);
          assert.ok(r.ok, r.ok ? '' : r.reason);
          assert.deepEqual(plain(r.frame), plain(f));
        }),
        fuzz(300),
      );
    });

    it('edge values: empty DATA, empty payloads, max u48, max u32, 64-byte sender, 255 ack ranges', () => {
      const s64 = 'z'.repeat(MAX_SENDER_BYTES);
      const big: FrameHeader = {
        sender: s64,
        receiver: s64,
        senderEpoch: 0xffffffff,
        receiverEpoch: 0xffffffff,
        packet: MAX_U48,
      };
      const d = decodeFrame(encodeData(big, MAX_U48, []));
      assert.ok(d.ok);
      assert.deepEqual(d.frame, { type: FrameType.Data, ...big, lowWater: MAX_U48, records: [] });

      const recs = [
        { streamSeq: MAX_U48, session: 0xffffffff, seq: MAX_SEQ, payload: Buffer.alloc(0) },
        { streamSeq: 2 ** 32 + 5, session: 0, seq: 2 ** 32, payload: Buffer.alloc(65535, 7) },
        { streamSeq: 1, session: 0, seq: 0xffffffff, payload: Buffer.alloc(1) },
      ];
      const d2 = decodeFrame(encodeData(H(), 3, recs));
      assert.ok(d2.ok && d2.frame.type === FrameType.Data);
      assert.deepEqual(plain(d2.frame), plain({ type: FrameType.Data, ...H(), lowWater: 3, records: recs }));
      assert.throws(() => encodeData(H(), 0, [{ ...recs[0], seq: MAX_SEQ + 1 }]), RangeError);

      const ranges: Array<[number, number]> = Array.from({ length: 255 }, (_, i) => [10 + 2 * i, 10 + 2 * i]);
      const a = decodeFrame(encodeAck(H(), 0, 0, 9, ranges));
      assert.ok(a.ok && a.frame.type === FrameType.Ack);
      assert.equal(a.frame.ranges.length, 255);
    });

    it('ack delay is rounded and clamped to u32 on encode', () => {
      const dec = (us: number): number => {
        const r = decodeFrame(encodeAck(H(), 0, us, 0, []));
        assert.ok(r.ok && r.frame.type === FrameType.Ack);
        return r.frame.ackDelayUs;
      };
      assert.equal(dec(-5), 0);
      assert.equal(dec(1.6), 2);
      assert.equal(dec(2 ** 40), 0xffffffff);
    });

    it('names come from the bytes of each datagram, also when a receive buffer is reused (name caches)', () => {
      const buf = encodePong({ ...H(), sender: 'aws/one', receiver: 'gcp/two' }, 1);
      const first = decodeFrame(buf);
      assert.ok(first.ok);
      assert.equal(first.frame.sender, 'aws/one');
      // The same buffer, overwritten in place with names of the same length (a socket's reused ring).
      encodePong({ ...H(), sender: 'azr/one', receiver: 'gcp/owt' }, 1).copy(buf, 0);
      const again = decodeFrame(buf);
      assert.ok(again.ok);
      assert.equal(again.frame.sender, 'azr/one');
      assert.equal(again.frame.receiver, 'gcp/owt');
      const third = decodeFrame(encodePong({ ...H(), sender: 'aws/one', receiver: 'gcp/two' }, 1));
      assert.ok(third.ok && third.frame.sender === 'aws/one' && third.frame.receiver === 'gcp/two');
    });

    it('a header peeked on a longer datagram than the frame left (a stripped trailer) is a rejection', () => {
      const buf = encodePong(H(), 1);
      const h = peekHeader(buf);
      assert.ok(h);
      const short = buf.subarray(0, h.bodyAt - 1);
      assert.deepEqual(decodeFrame(short, h), { ok: false, reason: 'truncated' });
      const r = decodeFrame(buf, h);
      assert.ok(r.ok);
      assert.deepEqual(r, decodeFrame(buf));
    });

    it('DATA payloads are views into the datagram (no copy)', () => {
      const buf = encodeData(H(), 0, [{ streamSeq: 0, session: 1, seq: 0, payload: Buffer.from('hello') }]);
      const r = decodeFrame(buf);
      assert.ok(r.ok && r.frame.type === FrameType.Data);
      assert.equal(r.frame.records[0].payload.buffer, buf.buffer);
    });
  });

  describe('encoder preconditions', () => {
    it('rejects empty and oversized names, packet numbers beyond u48 and more than 255 ack ranges', () => {
      assert.throws(() => encodeData(H(''), 0, []), RangeError);
      assert.throws(() => encodePing(H('x'.repeat(MAX_SENDER_BYTES + 1)), 0, 0), RangeError);
      assert.throws(() => encodeAck(H('é'.repeat(33)), 0, 0, 0, []), RangeError); // 66 bytes
      assert.throws(() => encodePong({ ...H(), receiver: '' }, 0), RangeError);
      assert.throws(() => encodePong(H('a', MAX_U48 + 1), 0), RangeError);
      const many: Array<[number, number]> = Array.from({ length: 256 }, (_, i) => [2 * i + 1, 2 * i + 1]);
      assert.throws(() => encodeAck(H(), 0, 0, 0, many), RangeError);
    });
  });

  describe('malformed input is rejected, never thrown', () => {
    it('EVERY truncation of a valid frame of every type is rejected', () => {
      fc.assert(
        fc.property(anyFrame, (f) => {
          const buf = encode(f);
          for (let len = 0; len < buf.length; len++) {
            const reason = rejected(buf.subarray(0, len));
            assert.ok(['truncated', 'bad_length'].includes(reason), `prefix ${len}/${buf.length}: ${reason}`);
          }
        }),
        fuzz(150),
      );
    });

    it('a valid frame with any trailing bytes is rejected as trailing_bytes', () => {
      fc.assert(
        fc.property(anyFrame, fc.uint8Array({ minLength: 1, maxLength: 40 }), (f, tail) => {
          const buf = Buffer.concat([encode(f), tail]);
          const reason = rejected(buf);
          // A DATA tail long enough for a record header is still trailing, as the count says how many records.
          assert.equal(reason, 'trailing_bytes');
        }),
        fuzz(300),
      );
    });

    it('random bytes never throw', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
          decodeNoThrow(Buffer.from(bytes));
        }),
        fuzz(1000),
      );
    });

    it('random bodies behind a valid header of every type (and unknown types) never throw', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 255 }),
          sender,
          fc.uint8Array({ maxLength: 200 }),
          (type, s, body) => {
            const r = decodeNoThrow(Buffer.concat([header(type, s), body]));
            if (type < 1 || type > 4) assert.deepEqual(r, { ok: false, reason: 'bad_type' });
          },
        ),
        fuzz(1000),
      );
    });

    it('mutated valid frames never throw, and whatever still decodes re-encodes to the same bytes', () => {
      fc.assert(
        fc.property(
          anyFrame,
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
          (f, flips) => {
            const buf = Buffer.from(encode(f));
            for (const [at, v] of flips) buf[at % buf.length] = v;
            const r = decodeNoThrow(buf);
            if (!r.ok) return;
            // Canonical form: the flags byte is ignored and a name that is not valid UTF-8 decodes lossily;
            // apart from those, a frame that decodes is exactly what the encoder writes for it.
            const sl = buf.readUInt8(5);
            const rl = buf.readUInt8(6 + sl);
            if (
              Buffer.byteLength(r.frame.sender) !== sl ||
              !Buffer.from(r.frame.sender).equals(buf.subarray(6, 6 + sl)) ||
              Buffer.byteLength(r.frame.receiver) !== rl ||
              !Buffer.from(r.frame.receiver).equals(buf.subarray(7 + sl, 7 + sl + rl))
            )
              return;
            const again = encode(r.frame);
            const expected = Buffer.from(buf);
            // Only the discard flag means something to the codec (and only on DATA and PING).
            const t = buf.readUInt8(3);
            expected[4] = t === FrameType.Data || t === FrameType.Ping ? buf[4] & DISCARD_FLAG : 0;
            assert.ok(again.equals(expected), `${again.toString('hex')} != ${expected.toString('hex')}`);
          },
        ),
        fuzz(1000),
      );
    });

    it('bad magic, version, type and sender length', () => {
      const good = encodePing(H('abc'), 42, 0);
      assert.ok(decodeFrame(good).ok);
      const patch = (at: number, v: number): Buffer => {
        const b = Buffer.from(good);
        b[at] = v;
        return b;
      };
      assert.equal(rejected(patch(0, 0x00)), 'bad_magic');
      assert.equal(rejected(patch(1, 0x00)), 'bad_magic');
      assert.equal(rejected(patch(2, 0)), 'bad_version');
      assert.equal(rejected(patch(2, FRAME_VERSION + 1)), 'bad_version');
      assert.equal(rejected(patch(3, 0)), 'bad_type');
      assert.equal(rejected(patch(3, 5)), 'bad_type');
      assert.equal(rejected(patch(3, 255)), 'bad_type');
      assert.equal(rejected(patch(5, 0)), 'bad_sender');
      assert.equal(rejected(patch(5, MAX_SENDER_BYTES + 1)), 'bad_sender');
      assert.equal(rejected(patch(5, 255)), 'bad_sender');
      // The receiver name length (after the 3-byte sender) is checked the same way.
      assert.equal(rejected(patch(9, 0)), 'bad_sender');
      assert.equal(rejected(patch(9, MAX_SENDER_BYTES + 1)), 'bad_sender');
      // A name length pointing past the end of the datagram.
      assert.equal(rejected(patch(5, 60)), 'truncated');
      assert.equal(rejected(patch(9, 60)), 'truncated');
      assert.equal(rejected(Buffer.alloc(0)), 'truncated');
      assert.equal(rejected(Buffer.alloc(9)), 'truncated');
      // Non-finite timestamps are not valid probes.
      for (const t of [NaN, Infinity, -Infinity]) {
        assert.equal(rejected(encodePong(H(), t)), 'bad_length');
        assert.equal(rejected(encodePing(H(), t, 0)), 'bad_length');
      }
    });

    it('impossible DATA record counts are rejected before allocating (count up to 65535 in a tiny datagram)', () => {
      const withCount = (count: number, body: Buffer): Buffer => {
        const c = Buffer.alloc(8);
        c.writeUIntBE(0, 0, 6);
        c.writeUInt16BE(count, 6);
        return Buffer.concat([header(FrameType.Data), c, body]);
      };
      assert.equal(rejected(withCount(65535, Buffer.alloc(0))), 'bad_length');
      assert.equal(rejected(withCount(65535, Buffer.alloc(1000))), 'bad_length');
      assert.equal(rejected(withCount(2, Buffer.alloc(RECORD_HEADER_BYTES * 2 - 1))), 'bad_length');
      // Two zero-length records fit exactly.
      assert.ok(decodeFrame(withCount(2, Buffer.alloc(RECORD_HEADER_BYTES * 2))).ok);
      // A record whose declared payload length runs past the datagram.
      const rec = Buffer.alloc(RECORD_HEADER_BYTES + 3);
      rec.writeUInt16BE(4, 18);
      assert.equal(rejected(withCount(1, rec)), 'bad_length');
      // A sequence above 2^53-1 is not exact in a JS number: refused, not rounded.
      const seqHigh = Buffer.alloc(RECORD_HEADER_BYTES);
      seqHigh.writeUInt32BE(0x200000, 10);
      assert.equal(rejected(withCount(1, seqHigh)), 'bad_range');
      // The count is checked against what is left, so a hostile frame costs O(1) whatever it claims.
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 10_000; i++) decodeFrame(withCount(65535, Buffer.alloc(16)));
      assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 2000);
    });

    it('ACK range count inconsistent with the datagram length', () => {
      assert.equal(rejected(rawAck(0, [[2, 3]], 2)), 'truncated');
      assert.equal(rejected(rawAck(0, [[2, 3]], 255)), 'truncated');
      assert.equal(
        rejected(
          rawAck(
            0,
            [
              [2, 3],
              [5, 6],
            ],
            1,
          ),
        ),
        'trailing_bytes',
      );
      assert.ok(
        decodeFrame(
          rawAck(0, [
            [2, 3],
            [5, 6],
          ]),
        ).ok,
      );
    });

    it('ACK ranges out of order, overlapping, inverted, or at or below base are rejected', () => {
      const cases: Array<[string, number, Array<[number, number]>]> = [
        ['start equal to base (base is missing by definition)', 5, [[5, 6]]],
        ['start below base', 5, [[3, 8]]],
        ['inverted range', 5, [[9, 7]]],
        [
          'descending ranges',
          5,
          [
            [12, 13],
            [8, 9],
          ],
        ],
        [
          'overlapping ranges',
          5,
          [
            [8, 10],
            [10, 12],
          ],
        ],
      ];
      for (const [what, base, ranges] of cases)
        assert.equal(rejected(rawAck(base, ranges)), 'bad_range', what);
      // Adjacent but disjoint ranges are valid, up to the largest u48.
      assert.ok(decodeFrame(rawAck(0, [[MAX_U48 - 1, MAX_U48]])).ok);
      assert.ok(
        decodeFrame(
          rawAck(5, [
            [6, 7],
            [8, 20],
          ]),
        ).ok,
      );
    });

    it('any random ACK range list decodes only if ascending, disjoint and above base', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 50 }),
          fc.array(fc.tuple(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 80 })), {
            maxLength: 6,
          }),
          (base, ranges) => {
            const r = decodeNoThrow(rawAck(base, ranges));
            let prev = base;
            let valid = true;
            for (const [s, e] of ranges) {
              if (s > e || s <= prev) valid = false;
              prev = e;
            }
            assert.equal(r.ok, valid, JSON.stringify({ base, ranges }));
            if (!r.ok) assert.equal(r.reason, 'bad_range');
          },
        ),
        fuzz(1000),
      );
    });
  });
});
