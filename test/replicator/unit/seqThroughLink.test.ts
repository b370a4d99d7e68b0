// Issue 10 D1 end to end through the origin's retransmit buffer: the frame codec and the receiver handle
// seq beyond 2^32 (unit/defects.test.ts), but the PeerLink kept seq in a Uint32Array, so the frame that
// actually left for a peer said 2^32 -> 0 and the receiver dropped the session as late from then on.
// Found while merging protocol v2 into integration.
import assert from 'node:assert/strict';
import { InboundStream } from '../../../replicator/delivery/inboundStream.ts';
import { decodeFrame, FrameType } from '../../../replicator/protocol/frame.ts';
import { protocolParams } from '../../../replicator/protocol/params.ts';
import { PeerLink } from '../../../replicator/replication/peerLink.ts';

describe('issue 10 D1 through the retransmit buffer', () => {
  it('a session crossing seq 2^32 leaves the origin with its full seq and is delivered, first send and resend', () => {
    const sent: Buffer[] = [];
    const link = new PeerLink(
      { id: 'gcp/r-0', cluster: 'gcp', address: '10.0.0.2', port: 7946 },
      {
        sender: 'aws/r-0',
        epoch: 7,
        maxBytes: 1 << 24,
        maxFrameBytes: 1352,
        params: protocolParams,
        peerEpoch: 3,
      },
      { send: (b) => void sent.push(b) },
      0,
    );
    const seqs = [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 3];
    for (const q of seqs) link.enqueue(1, q, Buffer.from([q & 0xff]));
    // Grow the ring past its first capacity so the copy in grow() is covered too.
    for (let i = 0; i < 2000; i++) link.enqueue(2, 2 ** 33 + i, Buffer.alloc(1));
    link.flush(0);
    const out: number[] = [];
    const rx = new InboundStream(
      'aws/r-0',
      7,
      0,
      { windowSize: 4096, reorderLimit: 64 },
      (s, q) => {
        if (s === 1) out.push(q);
      },
      0,
    );
    for (const b of sent) {
      const r = decodeFrame(b);
      assert.ok(r.ok && r.frame.type === FrameType.Data);
      for (const rec of r.frame.records) rx.receive(rec, 0);
    }
    assert.deepEqual(out, seqs);
    assert.equal(rx.counters.late, 0);
    // What the link would hand to another replica keeps the full seq as well.
    const moved = link.abandon('handover');
    assert.deepEqual(
      moved.filter((r) => r.session === 1).map((r) => r.seq),
      seqs,
    );
  });
});
