// Every local-mode and render command the adopter documentation shows is run as written (README.md and
// docs/*.md): `npm run render ...` must exit 0 and print manifests or usage; `npm run local ...` must
// start the whole local mesh and stop cleanly on SIGTERM. Local mode gets a free `--base-port` and
// `--no-dashboard` appended (the last --base-port wins), since fixed ports would collide with other runs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLocalModeBase } from '../harness/freePort.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const FILES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** `npm run local|render [-- args]` wherever it appears in a doc (code spans, blocks, indented blocks). */
export function extractCommands(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(/npm run (local|render)((?: --?[A-Za-z0-9=:._/-]+| [A-Za-z0-9=:._/-]+)*)/g)) {
    out.add(`npm run ${m[1]}${m[2] ?? ''}`.trim());
  }
  return [...out];
}

const commands = FILES.flatMap((f) =>
  extractCommands(readFileSync(join(ROOT, f), 'utf8')).map((c) => ({ f, c })),
);
const unique = [...new Map(commands.map((x) => [x.c, x])).values()];

describe('the documentation commands run as written', function () {
  this.timeout(120_000);

  it('the docs show local-mode and render commands (the extraction finds them)', () => {
    assert.ok(
      unique.some((x) => x.c.startsWith('npm run local')),
      'a local-mode command',
    );
    assert.ok(
      unique.some((x) => x.c.startsWith('npm run render')),
      'a render command',
    );
    assert.ok(
      unique.some((x) => x.c.includes('--backend aws=')),
      'the per-cloud --backend example',
    );
  });

  for (const { f, c } of unique) {
    const args = c.split(' ').slice(2); // after `npm run`
    if (c.startsWith('npm run render') || args.includes('--help')) {
      it(`${c}   (${f})`, () => {
        const r = spawnSync('npm', ['run', '--silent', ...args], {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: 60_000,
        });
        assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
        assert.match(r.stdout, /usage:|kind: /);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      });
    } else {
      it(`${c}   (${f}): starts the three clouds and stops cleanly`, async () => {
        const base = await freeLocalModeBase();
        // npm run's own SIGTERM handling kills the script without letting it shut down, so the script
        // line from package.json runs directly (the same command npm would run, with the same args).
        const script = (
          JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
        ).scripts[args[0]!]!.split(' ');
        assert.equal(script[0], 'node');
        const rest = args.slice(1).filter((a) => a !== '--');
        const child = spawn(
          process.execPath,
          [...script.slice(1), ...rest, '--base-port', String(base), '--no-dashboard'],
          {
            cwd: ROOT,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
        try {
          const end = Date.now() + 90_000;
          while (!out.includes('udpmesh is running locally')) {
            if (child.exitCode !== null) assert.fail(`exited early:\n${out}`);
            if (Date.now() > end) assert.fail(`not ready in 90 s:\n${out}`);
            await new Promise((r) => setTimeout(r, 200));
          }
          for (const cloud of ['aws', 'gcp', 'azure'])
            assert.match(
              out,
              new RegExp(
                `${cloud}\\s+ingress udp 127\\.0\\.0\\.1:${base + 1 + ['aws', 'gcp', 'azure'].indexOf(cloud)}`,
              ),
            );
        } finally {
          if (child.exitCode === null) child.kill('SIGTERM');
        }
        assert.equal(await exited, 0, out);
        assert.match(out, /nothing left running/);
      });
    }
  }
});
