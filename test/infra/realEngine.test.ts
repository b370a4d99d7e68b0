// The infra program under the real Pulumi engine: `pulumi preview` of the example stacks with the real CLI
// (built by scripts/install-pulumi-engine.sh), a file backend and no plugin downloads. Here the aws, gcp and
// azure-native (and kubernetes/random/tls) provider plugins cannot be had, so a preview cannot finish; what it
// must prove is everything before that: Pulumi.yaml's config declarations and the stack file pass the CLI's
// validation, the TypeScript program loads and validates its config, registers the estate, and the only
// errors are the absent provider plugins — recognised and reported as such, never a config, TypeScript or
// module-loading error (mocks could not see the first of these: the CLI rejected both stacks before).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import {
  engineSandbox,
  REPO_ROOT,
  requirePulumiEngine,
  type EngineSandbox,
} from '../harness/pulumiEngine.ts';

/** Provider plugins the infra program may ask for; none is installable on these machines. */
const PROVIDER_PLUGINS = ['aws', 'gcp', 'azure-native', 'kubernetes', 'random', 'tls'];

/** Errors that mean the program or its config is broken (what this test exists to rule out). */
const FORBIDDEN = [
  /missing configuration value/i,
  /configuration key .* is not/i,
  /error TS\d+/,
  /ERR_MODULE_NOT_FOUND|Cannot find module|ERR_UNKNOWN_FILE_EXTENSION/,
  /SyntaxError|TypeError|ReferenceError/,
  /invalid udpmesh stack config/,
  /Stack '.*' is missing/,
];

export interface PreviewResult {
  status: number | null;
  output: string;
  missingPlugins: string[];
}

/** A work dir holding a copy of Pulumi.yaml whose `main` points at the repo's program, plus the stack file. */
function workDir(sb: EngineSandbox, stack: string): string {
  const dir = path.join(sb.dir, `work-${stack}`);
  mkdirSync(dir, { recursive: true });
  const project = YAML.parse(readFileSync(path.join(REPO_ROOT, 'Pulumi.yaml'), 'utf8')) as Record<
    string,
    unknown
  >;
  project.main = path.join(REPO_ROOT, 'infra', 'index.ts');
  writeFileSync(path.join(dir, 'Pulumi.yaml'), YAML.stringify(project));
  copyFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), path.join(dir, `Pulumi.${stack}.yaml`));
  return dir;
}

function pulumi(sb: EngineSandbox, bin: string, cwd: string, args: string[]) {
  return spawnSync(bin, [...args, '--non-interactive'], {
    cwd,
    env: sb.env,
    encoding: 'utf8',
    timeout: 240_000,
  });
}

/** Which provider plugins the engine said it could not find. */
export function missingProviderPlugins(output: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /no resource plugin '(?:pulumi-resource-)?([a-z0-9-]+)'/gi,
    /could not (?:find|load) (?:the )?(?:resource )?plugin (?:for )?'?(?:pulumi-resource-)?([a-z0-9-]+)/gi,
    /plugin ([a-z0-9-]+) v?\d[^\s]* (?:could not be found|not found|is not installed)/gi,
    /resource plugin ([a-z0-9-]+)[^\n]*(?:not found|could not be found|is not installed|missing)/gi,
  ];
  for (const re of patterns) for (const m of output.matchAll(re)) found.add(m[1]!.toLowerCase());
  return [...found].sort();
}

describe('infra program on the real Pulumi engine (pulumi preview, file backend)', function () {
  this.timeout(600_000);
  let sb: EngineSandbox;
  let bin: string;

  before(function () {
    const probe = requirePulumiEngine(this);
    bin = probe.pulumi;
    sb = engineSandbox(probe.binDir);
  });
  after(() => sb?.cleanup());

  for (const stack of ['dev', 'prod']) {
    it(`${stack}: the CLI accepts Pulumi.yaml and Pulumi.${stack}.yaml, the program loads and registers the estate; only the cloud provider plugins are missing`, () => {
      const cwd = workDir(sb, stack);
      const init = pulumi(sb, bin, cwd, ['stack', 'init', stack]);
      assert.equal(init.status, 0, `stack init failed:\n${init.stdout}\n${init.stderr}`);
      const r = pulumi(sb, bin, cwd, ['preview', '-s', stack, '--diff']);
      const output = `${r.stdout}\n${r.stderr}`;
      console.log(`      preview ${stack}: exit ${r.status}; ${summarize(output)}`);
      for (const re of FORBIDDEN)
        assert.doesNotMatch(output, re, `preview of ${stack} hit ${re}:\n${output}`);
      // The program ran: config validated and the estate component was registered.
      assert.match(
        output,
        /udpmesh: stack config valid; clouds: /,
        `the program did not validate its config:\n${output}`,
      );
      const missing = missingProviderPlugins(output);
      assert.ok(missing.length > 0, `expected the absent provider plugins to be reported:\n${output}`);
      for (const p of missing) assert.ok(PROVIDER_PLUGINS.includes(p), `unexpected missing plugin ${p}`);
      assert.notEqual(r.status, 0, 'a preview without provider plugins cannot succeed');
    });
  }
});

function summarize(output: string): string {
  const missing = missingProviderPlugins(output);
  return missing.length > 0
    ? `missing provider plugins: ${missing.join(', ')}`
    : 'no missing plugins reported';
}
