// `npm run simulate -- --seeds N [--from F] [--seed S] [--duration SECONDS] [--clusters C] [--replicas R]`
// Runs N seeded simulations of a whole mesh (test/simulation/simulator.ts), or replays one seed. A failing
// seed prints what broke and the command that replays it exactly; the exit code is 1 if any failed.
import { replayCommand, simulate, type SimOptions } from './simulator.ts';

const USAGE = `usage: npm run simulate -- [--seeds N] [--from F] [--seed S] [--duration SECONDS] [--clusters C]
                          [--replicas R] [--clients K]
  --seeds N        run N seeds starting at --from (default 10 from 1000)
  --seed S         replay one seed exactly (the command a failing seed prints)
  --duration S     seconds of faults per seed (default 120)
  --clusters C, --replicas R, --clients K   mesh shape (default 3, 2, 6 clients per cluster)
Exit code 1 if any seed failed.
`;
const KNOWN = new Set(['seeds', 'from', 'seed', 'duration', 'clusters', 'replicas', 'clients']);
const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i]!.replace(/^--/, '');
  const value = argv[i + 1];
  if (
    !argv[i]!.startsWith('--') ||
    !KNOWN.has(name) ||
    value === undefined ||
    !Number.isFinite(Number(value))
  ) {
    process.stderr.write(`bad argument ${argv[i]}${value === undefined ? '' : ` ${value}`}\n${USAGE}`);
    process.exit(2);
  }
}

function arg(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

const seeds = Number(arg('seeds') ?? 10);
const first = arg('seed');
const durationMs = Number(arg('duration') ?? 120) * 1000;
const base: Omit<SimOptions, 'seed'> = {
  clusters: Number(arg('clusters') ?? 3),
  replicas: Number(arg('replicas') ?? 2),
  durationMs,
  clientsPerCluster: Number(arg('clients') ?? 6),
};
const from = Number(arg('from') ?? 1000);
const list = first !== undefined ? [Number(first)] : Array.from({ length: seeds }, (_, i) => from + i);
const started = Date.now();
let failed = 0;
let simulatedMs = 0;
const faults: Record<string, number> = {};
let accepted = 0;
for (const seed of list) {
  const r = simulate({ ...base, seed });
  simulatedMs += r.simulatedMs;
  accepted += r.accepted;
  for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
  const summary = `seed ${seed}: ${r.ok ? 'ok' : 'FAILED'} (${(r.simulatedMs / 1000).toFixed(0)} s simulated, ${r.accepted} accepted, ${r.abandoned} abandoned and counted ${JSON.stringify(r.abandonedByReason)}, ${r.unroutable} accepted before a member of some cluster was known, ${r.identityUnknown} delivered before their (older) session was announced to a restarted receiver, faults ${JSON.stringify(r.faults)})`;
  console.log(summary);
  if (!r.ok) {
    failed++;
    for (const f of r.failures) console.log(`  ${f}`);
    console.log(`  replay: ${replayCommand(seed, { durationMs })}`);
  }
}
console.log(
  `${list.length} seeds, ${failed} failed; ${(simulatedMs / 3_600_000).toFixed(2)} simulated hours, ${accepted} datagrams, faults ${JSON.stringify(faults)}; ${((Date.now() - started) / 1000).toFixed(0)} s wall`,
);
process.exitCode = failed > 0 ? 1 : 0;
