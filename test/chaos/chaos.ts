// The chaos suite as a function: build the namespaced mesh, run a profile's scenarios one after the
// other (each with its own session ids), tear everything down (also on SIGINT/SIGTERM and on failure),
// and return the results with the printed table. With resultsDir, the table and one timeline picture per
// scenario (timeline.ts) are written there.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startChaosMesh, type ChaosMesh } from './chaosMesh.ts';
import { profile, type ProfileName } from './profiles.ts';
import { formatDetails, formatTable, resultOk } from './report.ts';
import { ScenarioRun, type ScenarioResult } from './scenario.ts';
import { slug, timelineSvg } from './timeline.ts';
import { CLOUDS } from './chaosMesh.ts';

export interface ChaosOptions {
  profile: ProfileName;
  log?: (line: string) => void;
  /** Keep the logs directory even when every check passed. */
  keepLogs?: boolean;
  /** Only run scenarios whose name contains this text. */
  only?: string;
  /** Hard time budget for the whole run: when it is exceeded everything is torn down and the run fails. */
  budgetMs?: number;
  /** Write table.txt and <scenario>.svg (delivered per second per cloud, faults shaded) here. */
  resultsDir?: string;
}

export interface ChaosOutcome {
  ok: boolean;
  results: ScenarioResult[];
  table: string;
  details: string;
  logsDir: string | undefined;
  /** Set when the suite itself could not go on (mesh did not start, a scenario threw). */
  error?: string;
  /** Timeline pictures written (resultsDir). */
  pictures: string[];
}

/** Write each scenario's timeline as SVG into dir; returns the paths. */
export function writePictures(dir: string, results: ScenarioResult[]): string[] {
  mkdirSync(dir, { recursive: true });
  const used = new Set<string>();
  return results.map((r, i) => {
    let name = slug(r.name);
    if (used.has(name)) name = `${name}-${i + 1}`;
    used.add(name);
    const file = join(dir, `${name}.svg`);
    writeFileSync(file, timelineSvg(`${r.name}: delivered per second`, r.timeline, CLOUDS));
    return file;
  });
}

/** The table, the details and the picture paths as one text (printed, and written as table.txt). */
export function outcomeText(o: Pick<ChaosOutcome, 'table' | 'details' | 'pictures'>): string {
  const pics = o.pictures.length ? `\n\ntimelines:\n${o.pictures.map((p) => `  ${p}`).join('\n')}` : '';
  return `${o.table}\n\n${o.details}${pics}`;
}

function finish(
  opts: ChaosOptions,
  o: Omit<ChaosOutcome, 'pictures'>,
  log: (l: string) => void,
): ChaosOutcome {
  let pictures: string[] = [];
  if (opts.resultsDir && o.results.length > 0) {
    try {
      pictures = writePictures(opts.resultsDir, o.results);
      writeFileSync(join(opts.resultsDir, 'table.txt'), `${outcomeText({ ...o, pictures })}\n`);
    } catch (err) {
      log(`could not write the results to ${opts.resultsDir}: ${(err as Error).message}`);
    }
  }
  return { ...o, pictures };
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosOutcome> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  let mesh: ChaosMesh | undefined;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    const m = mesh;
    void (m ? m.stop(true) : Promise.resolve()).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const results: ScenarioResult[] = [];
  let ok = false;
  let overBudget = false;
  const budgetTimer = opts.budgetMs
    ? setTimeout(() => {
        overBudget = true;
        log(`time budget of ${opts.budgetMs! / 1000} s exceeded: tearing the mesh down`);
        void mesh?.stop(true);
      }, opts.budgetMs)
    : undefined;
  try {
    const t0 = Date.now();
    mesh = await startChaosMesh({ log, keepLogs: opts.keepLogs });
    log(
      `mesh up in ${((Date.now() - t0) / 1000).toFixed(1)} s (3 etcd members, 3 replicators, backends, proxies, load client in namespaces)`,
    );
    const specs = profile(opts.profile, mesh).filter((s) => !opts.only || s.name.includes(opts.only));
    let sessionBase = 1;
    for (const spec of specs) {
      if (overBudget) break;
      log(`scenario: ${spec.name}`);
      // Every scenario starts from a connected, quiet mesh.
      await mesh.waitEtcdHealthy(30_000);
      await mesh.waitConnected(30_000);
      const run = new ScenarioRun(mesh, spec, sessionBase);
      sessionBase += spec.ingresses.length * spec.sessionsPerIngress + 100;
      const r = await run.run();
      results.push(r);
      log(`  -> ${resultOk(r) ? 'PASS' : 'FAIL'}${r.failures.length ? `: ${r.failures.join('; ')}` : ''}`);
      if (!resultOk(r)) log(await mesh.diagnostics(15));
    }
    ok = results.length > 0 && results.every(resultOk) && !overBudget;
    return finish(
      opts,
      {
        ok,
        results,
        table: formatTable(results),
        details: formatDetails(results),
        logsDir: ok && !opts.keepLogs ? undefined : mesh.dir,
        ...(overBudget
          ? {
              error: `time budget of ${opts.budgetMs! / 1000} s exceeded after ${results.length} of ${specs.length} scenarios`,
            }
          : {}),
      },
      log,
    );
  } catch (err) {
    const diag = mesh ? await mesh.diagnostics(30).catch(() => '') : '';
    return finish(
      opts,
      {
        ok: false,
        results,
        table: formatTable(results),
        details: formatDetails(results),
        logsDir: mesh?.dir,
        error: `${overBudget ? `time budget of ${opts.budgetMs! / 1000} s exceeded; ` : ''}${(err as Error).stack ?? String(err)}${diag ? `\n${diag}` : ''}`,
      },
      log,
    );
  } finally {
    clearTimeout(budgetTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (mesh && !interrupted) await mesh.stop(!ok || opts.keepLogs);
  }
}
