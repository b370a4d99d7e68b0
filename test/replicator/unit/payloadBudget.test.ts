// The payload budget against real encoders: a frame holding one record of the largest safe payload,
// signed, plus IP/UDP headers, fills the narrowest cloud pair's tunnel exactly; one byte more does not
// fit. The old default (1,400 bytes, and 1,472-byte frames) did not fit any pair.
import assert from 'node:assert/strict';
import { encodeData, MAX_SENDER_BYTES } from '../../../replicator/protocol/frame.ts';
import { makeKeyRing, signFrame } from '../../../replicator/protocol/frameAuth.ts';
import { replicatorConfigSchema } from '../../../replicator/config/schema.ts';
import {
  allPairs,
  budgetTable,
  CLOUD_NETWORKS,
  maxProxyHeaderBytes,
  pairBudget,
  safeMaxFrameBytes,
  safeMaxPayloadBytes,
} from '../../../replicator/delivery/payloadBudget.ts';
import { encodeProxyV2, sessionTlv } from '../../../replicator/delivery/proxyV2.ts';

const ring = makeKeyRing([Buffer.alloc(32, 7)]);
const sender = 'x'.repeat(MAX_SENDER_BYTES);
// IPv6 + UDP: the safe defaults assume IPv6 inner packets (the worst case).
const onWire = (payload: number): number =>
  40 +
  8 +
  signFrame(
    encodeData({ sender, receiver: sender, senderEpoch: 1, receiverEpoch: 2, packet: 0 }, 0, [
      { streamSeq: 0, session: 1, seq: 0, payload: Buffer.alloc(payload) },
    ]),
    ring,
  ).length;

describe('payload budget', () => {
  it('the largest safe payload fills the narrowest tunnel exactly, with the real frame and trailer', () => {
    const narrowest = Math.min(...allPairs().map((p) => p.pathMtu));
    assert.equal(onWire(safeMaxPayloadBytes()), narrowest);
    assert.ok(onWire(safeMaxPayloadBytes() + 1) > narrowest);
    for (const p of allPairs({ family: 6 })) assert.ok(onWire(p.maxPayload) <= p.pathMtu, `${p.a}-${p.b}`);
  });

  it('the config defaults are safe on every cloud pair (the old 1,400-byte payload and 1,472-byte frame were not)', () => {
    const c = replicatorConfigSchema.parse({ cluster: 'aws', delivery: { backends: ['127.0.0.1:1'] } });
    for (const p of allPairs()) {
      assert.ok(onWire(c.ingress.maxPayloadBytes) <= p.pathMtu, `payload default on ${p.a}-${p.b}`);
      // A full frame (maxFrameBytes includes the trailer in frame v2) plus IP/UDP fits too.
      assert.ok(c.replication.maxFrameBytes + 48 <= p.pathMtu, `frame default on ${p.a}-${p.b}`);
      assert.ok(onWire(1400) > p.pathMtu, `1400 bytes never fitted ${p.a}-${p.b}`);
      assert.ok(1472 + 28 > p.pathMtu);
    }
    assert.equal(c.replication.maxFrameBytes, safeMaxFrameBytes());
    // The loader's own check (one maximum datagram per frame) holds for the defaults.
    assert.equal(onWire(c.ingress.maxPayloadBytes) - 48, c.replication.maxFrameBytes);
  });

  it('a max payload behind the largest PROXY header still fits every pod network', () => {
    const h = encodeProxyV2({ address: '2001:db8::1', port: 1 }, { address: '2001:db8::2', port: 2 }, [
      [0xe0, Buffer.alloc(32)],
      [0xe1, sessionTlv(1, 2, 3)],
    ]);
    assert.equal(h.length, maxProxyHeaderBytes(6));
    const smallestPod = Math.min(...Object.values(CLOUD_NETWORKS).map((n) => n.podMtu));
    assert.ok(40 + 8 + h.length + safeMaxPayloadBytes() <= smallestPod);
  });

  it('IPv6 inner packets cost 20 bytes more; a shorter sender name gives back its bytes', () => {
    assert.equal(
      pairBudget('aws', 'gcp', { family: 6 }).maxPayload,
      pairBudget('aws', 'gcp').maxPayload - 20,
    );
    assert.equal(
      pairBudget('aws', 'azure', { sender: 'aws/udpmesh-0', receiver: 'azure/udpmesh-0' }).maxPayload,
      pairBudget('aws', 'azure').maxPayload +
        2 * MAX_SENDER_BYTES -
        'aws/udpmesh-0'.length -
        'azure/udpmesh-0'.length,
    );
    assert.match(budgetTable(), /\| aws-gcp \| 1406 \|/);
  });
});
