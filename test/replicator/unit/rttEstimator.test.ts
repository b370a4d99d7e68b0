// RFC 6298 / RFC 9002 smoothed RTT: first sample, convergence, ack delay handling, RTO clamping.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { protocolParams } from '../../../replicator/protocol/params.ts';
import { RttEstimator } from '../../../replicator/protocol/rttEstimator.ts';
import { fuzz, fuzzTimeout } from './fuzzRuns.ts';

const params = { initialRttMs: 100, minRtoMs: 15, maxRtoMs: 2000, timerGranularityMs: 2 } as const;

describe('protocol/rttEstimator', function () {
  this.timeout(fuzzTimeout(60_000));

  it('before any sample: srtt is the initial RTT and RTO is srtt + 4*(srtt/2)', () => {
    const r = new RttEstimator(params);
    assert.equal(r.srttMs, 100);
    assert.equal(r.rttVarMs, 50);
    assert.equal(r.samples, 0);
    assert.equal(r.rtoMs(), 300);
    // The default parameters are the protocol's.
    assert.equal(new RttEstimator().srttMs, protocolParams.initialRttMs);
  });

  it('the first sample sets srtt = sample and rttvar = sample/2 (ack delay ignored on the first sample)', () => {
    const r = new RttEstimator(params);
    r.update(40, 10);
    assert.equal(r.srttMs, 40);
    assert.equal(r.rttVarMs, 20);
    assert.equal(r.minRttMs, 40);
    assert.equal(r.latestMs, 40);
    assert.equal(r.samples, 1);
    assert.equal(r.rtoMs(), 40 + 80);
  });

  it('later samples: rttvar = 3/4 rttvar + 1/4 |srtt - s|, srtt = 7/8 srtt + 1/8 s', () => {
    const r = new RttEstimator(params);
    r.update(40);
    r.update(80);
    assert.equal(r.rttVarMs, 0.75 * 20 + 0.25 * 40);
    assert.equal(r.srttMs, 0.875 * 40 + 0.125 * 80);
  });

  it('converges to a constant RTT and RTO falls to srtt + granularity-bounded variance, then the floor', () => {
    const r = new RttEstimator(params);
    r.update(300);
    for (let i = 0; i < 200; i++) r.update(30);
    assert.ok(Math.abs(r.srttMs - 30) < 0.01, `srtt ${r.srttMs}`);
    assert.ok(r.rttVarMs < 0.01, `rttvar ${r.rttVarMs}`);
    // 4*rttvar is below the 2 ms tick: RTO = srtt + tick.
    assert.ok(Math.abs(r.rtoMs() - 32) < 0.05, `rto ${r.rtoMs()}`);
    const fast = new RttEstimator(params);
    for (let i = 0; i < 200; i++) fast.update(1);
    assert.equal(fast.rtoMs(), params.minRtoMs);
  });

  it('ack delay is subtracted only while the result stays at or above the minimum RTT', () => {
    const r = new RttEstimator(params);
    r.update(20); // min 20
    r.update(50, 10); // 40 >= 20: adjusted 40
    assert.equal(r.srttMs, 0.875 * 20 + 0.125 * 40);
    const r2 = new RttEstimator(params);
    r2.update(20);
    r2.update(25, 10); // 15 < min 20: use 25
    assert.equal(r2.srttMs, 0.875 * 20 + 0.125 * 25);
    assert.equal(r2.minRttMs, 20);
    assert.equal(r2.latestMs, 25);
  });

  it('RTO is clamped to [minRto, maxRto]', () => {
    const slow = new RttEstimator(params);
    slow.update(5000);
    assert.equal(slow.rtoMs(), params.maxRtoMs);
    const tiny = new RttEstimator(params);
    tiny.update(0);
    assert.equal(tiny.rtoMs(), params.minRtoMs);
  });

  it('ignores negative, NaN and infinite samples', () => {
    const r = new RttEstimator(params);
    for (const bad of [-1, NaN, Infinity, -Infinity]) r.update(bad);
    assert.equal(r.samples, 0);
    assert.equal(r.srttMs, 100);
    assert.equal(r.minRttMs, Infinity);
  });

  it('property: any sample sequence keeps srtt within [min, max] sample, rttvar >= 0 and RTO within bounds', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.double({ min: 0, max: 10_000, noNaN: true }),
            fc.double({ min: 0, max: 100, noNaN: true }),
          ),
          {
            minLength: 1,
            maxLength: 100,
          },
        ),
        (samples) => {
          const r = new RttEstimator(params);
          for (const [s, d] of samples) r.update(s, d);
          const lo = Math.min(...samples.map(([s, d]) => Math.max(0, s - d)));
          const hi = Math.max(...samples.map(([s]) => s));
          assert.ok(r.srttMs >= lo - 1e-9 && r.srttMs <= hi + 1e-9, `srtt ${r.srttMs} not in [${lo}, ${hi}]`);
          assert.ok(r.rttVarMs >= 0);
          assert.equal(r.minRttMs, Math.min(...samples.map(([s]) => s)));
          const rto = r.rtoMs();
          assert.ok(rto >= params.minRtoMs && rto <= params.maxRtoMs);
          assert.equal(r.samples, samples.length);
        },
      ),
      fuzz(300),
    );
  });
});
