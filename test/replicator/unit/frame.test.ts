// Wire codec: round trips for every frame type, rejection (never a throw) of every truncation, random and
// mutated bytes, impossible counts, bad header fields, bad ACK ranges and trailing bytes.
//
// Longer on-demand fuzz (no script needed):  FUZZ_RUNS=100000 npx mocha test/replicator/unit/frame.test.ts
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
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
  headerBytes,
  type AckFrame,
  type DataFrame,
  type DecodeResult,
  type Frame,
  type PingFrame,
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

const record = fc.record({
  streamSeq: position,
  session: u32,
  seq: u32,
  payload: fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)),
});

const dataFrame: fc.Arbitrary<DataFrame> = fc.record({
  type: fc.constant(FrameType.Data),
  sender,
  epoch: u32,
  lowWater: position,
  records: fc.array(record, { maxLength: 12 }),
});

/** ACK fields satisfying the wire rules: ranges ascending, disjoint, above base and not above largest. */
const ackFrame: fc.Arbitrary<AckFrame> = fc
  .record({
    sender,
    epoch: u32,
    base: fc.oneof(
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.bigInt({ min: 0n, max: BigInt(MAX_U48 - 10_000_000) }).map(Number),
    ),
    steps: fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 1000 })), {
      maxLength: 40,
    }),
    extra: fc.integer({ min: 0, max: 1000 }),
    ackDelayUs: u32,
  })
  .map(({ sender, epoch, base, steps, extra, ackDelayUs }) => {
    const ranges: Array<[number, number]> = [];
    let p = base;
    for (const [gap, len] of steps) {
      const s = p + gap;
      ranges.push([s, s + len]);
      p = s + len;
    }
    const largest = Math.max(p, base) + extra;
    return { type: FrameType.Ack, sender, epoch, base, largest, ackDelayUs, ranges };
  });

const pingFrame: fc.Arbitrary<PingFrame> = fc.record({
  type: fc.constantFrom(FrameType.Ping, FrameType.Pong),
  sender,
  epoch: u32,
  timestamp: fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  ),
});

const anyFrame: fc.Arbitrary<Frame> = fc.oneof(dataFrame, ackFrame, pingFrame);

function encode(f: Frame): Buffer {
  switch (f.type) {
    case FrameType.Data:
      return encodeData(f.sender, f.epoch, f.lowWater, f.records);
    case FrameType.Ack:
      return encodeAck(f.sender, f.epoch, f.base, f.largest, f.ackDelayUs, f.ranges);
    default:
      return encodePing(f.type, f.sender, f.epoch, f.timestamp);
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
  const b = Buffer.alloc(10 + s.length);
  b.writeUInt16BE(MAGIC, 0);
  b.writeUInt8(FRAME_VERSION, 2);
  b.writeUInt8(type, 3);
  b.writeUInt8(0, 4);
  b.writeUInt8(s.length, 5);
  s.copy(b, 6);
  b.writeUInt32BE(epoch, 6 + s.length);
  return b;
}

function u48be(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

/** An ACK frame written by hand, so ranges the encoder would happily write (bad ones) can be tested. */
function rawAck(
  base: number,
  largest: number,
  ranges: Array<[number, number]>,
  count = ranges.length,
): Buffer {
  const fixed = Buffer.alloc(5);
  fixed.writeUInt32BE(0, 0);
  fixed.writeUInt8(count, 4);
  return Buffer.concat([
    header(FrameType.Ack),
    u48be(base),
    u48be(largest),
    fixed,
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
          const buf = encodeData(f.sender, f.epoch, f.lowWater, f.records);
          assert.equal(
            buf.length,
            dataHeaderBytes(f.sender) +
              f.records.reduce((n, r) => n + RECORD_HEADER_BYTES + r.payload.length, 0),
          );
          const r = decodeFrame(buf);
          assert.ok(r.ok, r.ok ? '' : r.reason);
          assert.deepEqual(plain(r.frame), plain(f));
        }),
        fuzz(300),
      );
    });

    it('ACK: random bases, ascending disjoint ranges, largest and ack delay', () => {
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
          assert.equal(buf.length, headerBytes(f.sender) + 8);
          const r = decodeFrame(buf);
          assert.ok(r.ok, r.ok ? '' : r.reason);
          assert.deepEqual(plain(r.frame), plain(f));
        }),
        fuzz(300),
      );
    });

    it('edge values: empty DATA, empty payloads, max u48, max u32, 64-byte sender, 255 ack ranges', () => {
      const s64 = 'z'.repeat(MAX_SENDER_BYTES);
      const d = decodeFrame(encodeData(s64, 0xffffffff, MAX_U48, []));
      assert.ok(d.ok);
      assert.deepEqual(d.frame, {
        type: FrameType.Data,
        sender: s64,
        epoch: 0xffffffff,
        lowWater: MAX_U48,
        records: [],
      });

      const recs = [
        { streamSeq: MAX_U48, session: 0xffffffff, seq: 0xffffffff, payload: Buffer.alloc(0) },
        { streamSeq: 2 ** 32 + 5, session: 0, seq: 0, payload: Buffer.alloc(65535, 7) },
      ];
      const d2 = decodeFrame(encodeData('a', 1, 3, recs));
      assert.ok(d2.ok && d2.frame.type === FrameType.Data);
      assert.deepEqual(
        plain(d2.frame),
        plain({ type: FrameType.Data, sender: 'a', epoch: 1, lowWater: 3, records: recs }),
      );

      const ranges: Array<[number, number]> = Array.from({ length: 255 }, (_, i) => [10 + 2 * i, 10 + 2 * i]);
      const a = decodeFrame(encodeAck('a', 1, 9, 10 + 2 * 254, 0, ranges));
      assert.ok(a.ok && a.frame.type === FrameType.Ack);
      assert.equal(a.frame.ranges.length, 255);
    });

    it('ack delay is rounded and clamped to u32 on encode', () => {
      const dec = (us: number): number => {
        const r = decodeFrame(encodeAck('a', 1, 0, 0, us, []));
        assert.ok(r.ok && r.frame.type === FrameType.Ack);
        return r.frame.ackDelayUs;
      };
      assert.equal(dec(-5), 0);
      assert.equal(dec(1.6), 2);
      assert.equal(dec(2 ** 40), 0xffffffff);
    });

    it('DATA payloads are views into the datagram (no copy)', () => {
      const buf = encodeData('a', 1, 0, [
        { streamSeq: 0, session: 1, seq: 0, payload: Buffer.from('hello') },
      ]);
      const r = decodeFrame(buf);
      assert.ok(r.ok && r.frame.type === FrameType.Data);
      assert.equal(r.frame.records[0].payload.buffer, buf.buffer);
    });
  });

  describe('encoder preconditions', () => {
    it('rejects empty and oversized sender names and more than 255 ack ranges', () => {
      assert.throws(() => encodeData('', 1, 0, []), RangeError);
      assert.throws(() => encodePing(FrameType.Ping, 'x'.repeat(MAX_SENDER_BYTES + 1), 1, 0), RangeError);
      assert.throws(() => encodeAck('é'.repeat(33), 1, 0, 0, 0, []), RangeError); // 66 bytes
      const many: Array<[number, number]> = Array.from({ length: 256 }, (_, i) => [2 * i + 1, 2 * i + 1]);
      assert.throws(() => encodeAck('a', 1, 0, 600, 0, many), RangeError);
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
            // Canonical form: the flags byte is ignored and a sender that is not valid UTF-8 decodes lossily;
            // apart from those, a frame that decodes is exactly what the encoder writes for it.
            if (
              Buffer.byteLength(r.frame.sender) !== buf.readUInt8(5) ||
              !Buffer.from(r.frame.sender).equals(buf.subarray(6, 6 + buf.readUInt8(5)))
            )
              return;
            const again = encode(r.frame);
            const expected = Buffer.from(buf);
            expected[4] = 0;
            assert.ok(again.equals(expected), `${again.toString('hex')} != ${expected.toString('hex')}`);
          },
        ),
        fuzz(1000),
      );
    });

    it('bad magic, version, type and sender length', () => {
      const good = encodePing(FrameType.Ping, 'abc', 1, 42);
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
      // A sender length pointing past the end of the datagram.
      assert.equal(rejected(patch(5, 60)), 'truncated');
      assert.equal(rejected(Buffer.alloc(0)), 'truncated');
      assert.equal(rejected(Buffer.alloc(9)), 'truncated');
      // Non-finite timestamps are not valid probes.
      for (const t of [NaN, Infinity, -Infinity])
        assert.equal(rejected(encodePing(FrameType.Pong, 'a', 1, t)), 'bad_length');
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
      rec.writeUInt16BE(4, 14);
      assert.equal(rejected(withCount(1, rec)), 'bad_length');
      // The count is checked against what is left, so a hostile frame costs O(1) whatever it claims.
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 10_000; i++) decodeFrame(withCount(65535, Buffer.alloc(16)));
      assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 2000);
    });

    it('ACK range count inconsistent with the datagram length', () => {
      assert.equal(rejected(rawAck(0, 10, [[2, 3]], 2)), 'truncated');
      assert.equal(rejected(rawAck(0, 10, [[2, 3]], 255)), 'truncated');
      assert.equal(
        rejected(
          rawAck(
            0,
            10,
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
          rawAck(0, 10, [
            [2, 3],
            [5, 6],
          ]),
        ).ok,
      );
    });

    it('ACK ranges out of order, overlapping, inverted, at or below base, or above largest are rejected', () => {
      const cases: Array<[string, number, number, Array<[number, number]>]> = [
        ['start equal to base (base is missing by definition)', 5, 20, [[5, 6]]],
        ['start below base', 5, 20, [[3, 8]]],
        ['inverted range', 5, 20, [[9, 7]]],
        [
          'descending ranges',
          5,
          20,
          [
            [12, 13],
            [8, 9],
          ],
        ],
        [
          'overlapping ranges',
          5,
          20,
          [
            [8, 10],
            [10, 12],
          ],
        ],
        ['end above largest', 5, 20, [[8, 21]]],
        [
          'second range above largest',
          5,
          20,
          [
            [8, 9],
            [15, 25],
          ],
        ],
        ['huge positions beyond largest', 0, 100, [[MAX_U48 - 1, MAX_U48]]],
      ];
      for (const [what, base, largest, ranges] of cases)
        assert.equal(rejected(rawAck(base, largest, ranges)), 'bad_range', what);
      // Adjacent but disjoint ranges are valid, as is a range ending exactly at largest.
      assert.ok(
        decodeFrame(
          rawAck(5, 20, [
            [6, 7],
            [8, 20],
          ]),
        ).ok,
      );
    });

    it('any random ACK range list decodes only if ascending, disjoint, above base and within largest', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 50 }),
          fc.integer({ min: 0, max: 80 }),
          fc.array(fc.tuple(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 80 })), {
            maxLength: 6,
          }),
          (base, largest, ranges) => {
            const r = decodeNoThrow(rawAck(base, largest, ranges));
            let prev = base;
            let valid = true;
            for (const [s, e] of ranges) {
              if (s > e || s <= prev || e > largest) valid = false;
              prev = e;
            }
            assert.equal(r.ok, valid, JSON.stringify({ base, largest, ranges }));
            if (!r.ok) assert.equal(r.reason, 'bad_range');
          },
        ),
        fuzz(1000),
      );
    });
  });
});
