// Smoothed RTT and retransmission timeout as in RFC 6298 / RFC 9002: srtt and rttvar from samples
// (minus the peer's reported ack delay), RTO = srtt + max(4*rttvar, granularity), clamped.
import { protocolParams } from './params.ts';

export class RttEstimator {
  srttMs: number;
  rttVarMs: number;
  minRttMs = Infinity;
  latestMs = 0;
  samples = 0;

  constructor(
    private readonly params: Pick<
      typeof protocolParams,
      'initialRttMs' | 'minRtoMs' | 'maxRtoMs' | 'timerGranularityMs'
    > = protocolParams,
  ) {
    this.srttMs = params.initialRttMs;
    this.rttVarMs = params.initialRttMs / 2;
  }

  /** Adds one sample; ackDelay is only subtracted while the result stays above the minimum RTT seen. */
  update(sampleMs: number, ackDelayMs = 0): void {
    if (!(sampleMs >= 0) || !Number.isFinite(sampleMs)) return;
    this.latestMs = sampleMs;
    if (sampleMs < this.minRttMs) this.minRttMs = sampleMs;
    const adjusted = sampleMs - ackDelayMs >= this.minRttMs ? sampleMs - ackDelayMs : sampleMs;
    if (this.samples === 0) {
      this.srttMs = adjusted;
      this.rttVarMs = adjusted / 2;
    } else {
      this.rttVarMs = 0.75 * this.rttVarMs + 0.25 * Math.abs(this.srttMs - adjusted);
      this.srttMs = 0.875 * this.srttMs + 0.125 * adjusted;
    }
    this.samples++;
  }

  /** Base retransmission timeout in ms before any backoff. */
  rtoMs(): number {
    const rto = this.srttMs + Math.max(4 * this.rttVarMs, this.params.timerGranularityMs);
    return Math.min(this.params.maxRtoMs, Math.max(this.params.minRtoMs, rto));
  }
}
