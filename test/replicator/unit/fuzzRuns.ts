// Shared bound for the property-based tests. Defaults keep the whole unit suite at a few seconds; set
// FUZZ_RUNS to scale every property up for an on-demand longer fuzz (no script needed), e.g.
//   FUZZ_RUNS=100000 npx mocha test/replicator/unit/frame.test.ts
// numRuns becomes FUZZ_RUNS for the cheap properties and a proportional share for the expensive ones (the
// simulated-link property in peerLink.test.ts runs FUZZ_RUNS/50 simulations), and suites drop their timeout.
// `npm run fuzz` does this for the decoder, window, inbound stream and config loader.
// FUZZ_SEED=<n> replays a failing run (fast-check prints the seed and path on failure).

const scale = Number(process.env.FUZZ_RUNS);

/** numRuns for a property whose default is `base` runs; `weight` < 1 for properties much costlier per run. */
export function runs(base: number, weight = 1): number {
  if (Number.isFinite(scale) && scale > 0) return Math.max(1, Math.round(scale * weight));
  return base;
}

const seed = Number(process.env.FUZZ_SEED);

/** fast-check parameters: the run count, plus the replay seed when FUZZ_SEED is set. */
export function fuzz(base: number, weight = 1): { numRuns: number; seed?: number } {
  return Number.isFinite(seed) && process.env.FUZZ_SEED
    ? { numRuns: runs(base, weight), seed }
    : { numRuns: runs(base, weight) };
}

/** Mocha timeout for a suite of properties: none for an on-demand long fuzz, else the given bound. */
export function fuzzTimeout(defaultMs: number): number {
  return Number.isFinite(scale) && scale > 0 ? 0 : defaultMs;
}
