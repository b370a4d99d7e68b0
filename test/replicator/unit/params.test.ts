// The protocol timers and bounds are consistent with each other and with the wire format.
import assert from 'node:assert/strict';
import { FRAME_VERSION } from '../../../replicator/protocol/frame.ts';
import { protocolParams as p } from '../../../replicator/protocol/params.ts';

describe('protocol/params', () => {
  it('version matches the wire format', () => {
    assert.equal(p.version, FRAME_VERSION);
  });

  it('the receive window is a power of two >= 32 (the bitmap requires it) and fits the ack ranges on the wire', () => {
    assert.ok(p.windowDatagrams >= 32 && (p.windowDatagrams & (p.windowDatagrams - 1)) === 0);
    assert.ok(p.maxAckRanges >= 1 && p.maxAckRanges <= 255); // rangeCount is a u8
  });

  it('timers are ordered: tick < ack delay <= min RTO <= initial RTT <= max RTO; pings well inside down detection', () => {
    assert.ok(p.timerGranularityMs > 0 && p.timerGranularityMs <= p.ackDelayMs);
    assert.ok(p.ackDelayMs < p.minRtoMs, 'an ACK delay at or above the min RTO causes spurious retransmits');
    assert.ok(p.minRtoMs <= p.initialRttMs && p.initialRttMs <= p.maxRtoMs);
    assert.ok(
      p.pingIntervalMs * 4 <= p.peerDownAfterMs,
      'several probes must be lost before a peer is marked down',
    );
    assert.ok(p.peerDownAfterMs < p.peerRetentionMs);
    assert.ok(p.rtoBackoff > 1);
    assert.ok(p.packetThreshold >= 1);
    assert.ok(p.ackEveryDatagrams >= 1 && p.maxSendPerTick >= 1);
  });
});
