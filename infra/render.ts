// `npm run render [-- --stack dev|prod|<file.json>] [--cloud aws] [--out dir]`: prints the manifests the
// Pulumi program deploys as multi-document YAML (secrets are placeholders), for GitOps users.
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import type { Cloud, StackConfig } from './config/schema.ts';
import { enabledClouds, parseStackConfig } from './config/schema.ts';
import { clusterManifests, placeholderSecrets } from './manifests/index.ts';
import type { K8sObject } from './manifests/index.ts';

/** Reads a stack file (Pulumi.<stack>.yaml, udpmesh:* keys) or a JSON spec into a validated config. */
export function loadStackSpec(pathOrStack: string): StackConfig {
  const path = /\.(ya?ml|json)$/.test(pathOrStack) ? pathOrStack : `Pulumi.${pathOrStack}.yaml`;
  const text = readFileSync(path, 'utf8');
  if (path.endsWith('.json')) return parseStackConfig(JSON.parse(text));
  const doc = YAML.parse(text) as { config?: Record<string, unknown> };
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc.config ?? {}))
    if (k.startsWith('udpmesh:')) raw[k.slice('udpmesh:'.length)] = v;
  return parseStackConfig(raw);
}

export function renderYaml(objects: K8sObject[]): string {
  return objects.map((o) => YAML.stringify(o, { lineWidth: 0 })).join('---\n');
}

export function renderCluster(spec: StackConfig, cloud: Cloud): string {
  return renderYaml(clusterManifests(spec, cloud, placeholderSecrets(spec, cloud)));
}

const USAGE = `usage: npm run render -- [--stack dev|prod|<file.yaml|file.json>] [--cloud aws|gcp|azure] [--out dir]

Prints the Kubernetes manifests the Pulumi program deploys, as multi-document YAML (secrets are
placeholders), for GitOps users.

Options:
  --stack S    Pulumi.<S>.yaml, or a stack file / JSON spec path (default dev)
  --cloud C    only this cloud (default: every enabled cloud)
  --out DIR    write DIR/<cloud>.yaml instead of printing
  -h, --help   show this help
`;

function main(): number {
  let values: { stack?: string; cloud?: string; out?: string; help?: boolean };
  try {
    values = parseArgs({
      options: {
        stack: { type: 'string', default: 'dev' },
        cloud: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const spec = loadStackSpec(values.stack ?? 'dev');
  const clouds = enabledClouds(spec).filter((c) => values.cloud === undefined || c === values.cloud);
  if (clouds.length === 0) throw new Error(`cloud ${values.cloud} is not enabled in this stack`);
  for (const cloud of clouds) {
    const yaml = renderCluster(spec, cloud);
    if (values.out) {
      mkdirSync(values.out, { recursive: true });
      writeFileSync(join(values.out, `${cloud}.yaml`), yaml);
    } else {
      process.stdout.write(`# ---- cluster: ${cloud} ----\n---\n${yaml}`);
    }
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.exitCode = main();
  } catch (err) {
    // A bad stack file or option is the user's to fix: say what, without a stack trace.
    process.stderr.write(`render: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
