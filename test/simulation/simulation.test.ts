// The deterministic mesh simulation in CI: a fixed budget of seeds (about two minutes on a 2-core machine).
// Each seed runs 3 clusters x 2 replicas with ingress clients, simulated etcd and seeded faults, then
// checks at-least-once (or counted abandonment), per-session order and no duplicate within an incarnation.
// A failure names the seed and the command that replays it:  npm run simulate -- --seed S --duration D
import assert from 'node:assert/strict';
import { replayCommand, simulate } from './simulator.ts';

const SEEDS = Number(process.env.SIM_SEEDS ?? 16);
const DURATION_MS = 30_000;

describe('simulation: whole mesh under seeded faults', function () {
  this.timeout(600_000);
  for (let i = 0; i < SEEDS; i++) {
    const seed = 20_261_207 + i;
    it(`seed ${seed}: at least once or counted, in order per session, no duplicate per incarnation`, () => {
      const r = simulate({ seed, clusters: 3, replicas: 2, durationMs: DURATION_MS, clientsPerCluster: 4 });
      assert.ok(r.accepted > 1000, 'the run carried traffic');
      assert.ok(Object.keys(r.faults).length > 0, 'the run injected faults');
      assert.ok(
        r.ok,
        `${r.failures.join('\n')}\nreplay: ${replayCommand(seed, { durationMs: DURATION_MS })}`,
      );
    });
  }
});
