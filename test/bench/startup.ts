// The startup part: production runs compiled JavaScript (npm run build -> dist/), not tsx. Both ways of
// starting one replicator (no etcd, so only the process itself is measured), several times each:
// start-up = spawn until /readyz answers 200; RSS = VmRSS one second after ready, idle.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../replicator/local/freePort.ts';
import type { Lifecycle } from './lifecycle.ts';
import { rssMb } from './measure.ts';
import { REPO_ROOT, sleep } from './procs.ts';

export interface StartupRow {
  runtime: 'tsx' | 'dist';
  command: string;
  startupMs: number[];
  rssMb: number[];
  medianStartupMs: number;
  medianRssMb: number;
}

export interface StartupDoc {
  runs: number;
  rows: StartupRow[];
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
};

async function once(args: string[], dir: string): Promise<{ startupMs: number; rssMb: number }> {
  const [ingress, repl, metrics] = await freePorts(3);
  const cfg = join(dir, `startup-${metrics}.json`);
  writeFileSync(
    cfg,
    JSON.stringify({
      cluster: 'aws',
      ingress: { addresses: ['127.0.0.1'], ports: [ingress] },
      replication: { address: '127.0.0.1', port: repl },
      delivery: { backends: ['127.0.0.1:9'] },
      metrics: { address: '127.0.0.1', port: metrics },
      log: { level: 'warn' },
    }),
  );
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('UDPMESH_')) env[k] = v;
  const t0 = performance.now();
  const child = spawn(process.execPath, [...args, '--config', cfg], { cwd: REPO_ROOT, env, stdio: 'ignore' });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${metrics}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (performance.now() - t0 > 60_000) throw new Error(`${args.join(' ')}: not ready within 60 s`);
      await sleep(5);
    }
    const startupMs = Math.round(performance.now() - t0);
    await sleep(1000);
    return { startupMs, rssMb: Math.round((rssMb(child.pid!) ?? NaN) * 10) / 10 };
  } finally {
    child.kill('SIGKILL');
  }
}

export async function runStartup(lc: Lifecycle, runs = 5): Promise<StartupDoc> {
  lc.log('startup: npm run build (tsc -> dist/)');
  execFileSync(
    process.execPath,
    [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: REPO_ROOT,
      stdio: 'inherit',
    },
  );
  const dir = mkdtempSync(join(tmpdir(), 'udpmesh-startup-'));
  const variants: Array<{ runtime: 'tsx' | 'dist'; args: string[] }> = [
    { runtime: 'tsx', args: ['--import', 'tsx', join(REPO_ROOT, 'replicator/./main.ts')] },
    { runtime: 'dist', args: ['--enable-source-maps', join(REPO_ROOT, 'dist/replicator/main.js')] },
  ];
  const rows: StartupRow[] = variants.map((v) => ({
    runtime: v.runtime,
    command: `node ${v.args.map((a) => a.replace(REPO_ROOT, '')).join(' ')}`,
    startupMs: [],
    rssMb: [],
    medianStartupMs: NaN,
    medianRssMb: NaN,
  }));
  try {
    // Alternate the two so that load from elsewhere on the host hits both alike.
    for (let i = 0; i < runs; i++) {
      for (const [k, v] of variants.entries()) {
        const r = await once(v.args, dir);
        rows[k]!.startupMs.push(r.startupMs);
        rows[k]!.rssMb.push(r.rssMb);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const r of rows) {
    r.medianStartupMs = median(r.startupMs);
    r.medianRssMb = median(r.rssMb);
    lc.log(
      `startup ${r.runtime}: ${r.medianStartupMs} ms to ready, RSS ${r.medianRssMb} MB (median of ${runs})`,
    );
  }
  return { runs, rows };
}

export function renderStartup(doc: StartupDoc): string {
  const [tsx, dist] = doc.rows;
  const lines = [
    `STARTUP, one replicator without etcd: spawn -> /readyz 200, and RSS 1 s after ready (median of ${doc.runs})`,
    ...doc.rows.map(
      (r) =>
        `  ${r.runtime.padEnd(5)} ${String(r.medianStartupMs).padStart(6)} ms  ${r.medianRssMb.toFixed(1).padStart(7)} MB   ${r.command}  (runs: ${r.startupMs.join(', ')} ms; ${r.rssMb.join(', ')} MB)`,
    ),
  ];
  if (tsx && dist)
    lines.push(
      `  dist vs tsx: start-up ${(dist.medianStartupMs / tsx.medianStartupMs).toFixed(2)}x, RSS ${(dist.medianRssMb - tsx.medianRssMb).toFixed(1)} MB`,
    );
  return lines.join('\n');
}
