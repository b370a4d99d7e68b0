// Pulumi.yaml's `config:` block, derived from the stack config schema (the one source of truth).
//
// Why derived: the real Pulumi CLI enforces these declarations before the program runs — a project key
// declared with neither `default` nor `value` is required, and `type` may only be string, integer, boolean
// or array (with `items`). Declaring defaults by hand beside the zod schema let the two drift (the example
// stacks were rejected). So: scalar keys are declared with their type and the zod default; `clouds` has no
// default (every stack must choose its clouds); object keys cannot be typed for the CLI, so they are declared
// with an empty-object default and the zod schema fills in every field. `npm run config:sync` rewrites the
// block, and test/infra/projectConfig.test.ts fails when Pulumi.yaml and the schema disagree.
import { readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { CONFIG_NAMESPACE, stackConfigSchema } from './schema.ts';

export interface ProjectConfigDeclaration {
  type?: 'string' | 'integer' | 'boolean' | 'array';
  items?: { type: 'string' | 'integer' | 'boolean' };
  default?: unknown;
  description: string;
}

const DESCRIPTIONS: Record<string, string> = {
  clouds:
    'Enabled targets: a non-empty subset of aws, gcp, azure, or [local] for the whole mesh on this machine.',
  mesh: 'Mesh name (etcd key prefix /udpmesh/<mesh>/ and resource name prefix).',
  namespace: 'Kubernetes namespace for the replicator and etcd.',
};

function describe(key: string, schema: Record<string, unknown>): string {
  if (DESCRIPTIONS[key]) return DESCRIPTIONS[key];
  const props = (schema.properties ?? {}) as Record<string, unknown>;
  const names = Object.keys(props);
  return `Object with ${names.join(', ')}; omitted fields take the schema defaults. See docs/infra.md.`;
}

/** The declarations for every top-level key of the stack config, in schema order. */
export function projectConfigDeclarations(): Record<string, ProjectConfigDeclaration> {
  const out: Record<string, ProjectConfigDeclaration> = {};
  for (const [key, field] of Object.entries(stackConfigSchema.shape)) {
    const json = z.toJSONSchema(field as z.ZodType, { io: 'input', unrepresentable: 'any' }) as Record<
      string,
      unknown
    >;
    const name = `${CONFIG_NAMESPACE}:${key}`;
    const hasDefault = 'default' in json;
    if (json.type === 'string') {
      out[name] = {
        type: 'string',
        ...(hasDefault ? { default: json.default } : {}),
        description: describe(key, json),
      };
    } else if (json.type === 'integer' || json.type === 'boolean') {
      out[name] = {
        type: json.type,
        ...(hasDefault ? { default: json.default } : {}),
        description: describe(key, json),
      };
    } else if (json.type === 'array') {
      const itemType = ((json.items ?? {}) as { type?: string }).type;
      if (itemType !== 'string' && itemType !== 'integer' && itemType !== 'boolean') {
        throw new Error(`udpmesh:${key}: arrays of ${String(itemType)} cannot be declared in Pulumi.yaml`);
      }
      out[name] = {
        type: 'array',
        items: { type: itemType },
        ...(hasDefault ? { default: json.default } : {}),
        description: describe(key, json),
      };
    } else {
      // Objects: the CLI accepts no type for them; an empty default keeps them optional.
      out[name] = { default: {}, description: describe(key, json) };
    }
  }
  return out;
}

/** Pulumi.yaml with its config block replaced by the derived declarations (other keys untouched). */
export function syncProjectFile(text: string): string {
  const doc = YAML.parseDocument(text);
  doc.set('config', projectConfigDeclarations());
  return doc.toString({ lineWidth: 120 });
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const file = process.argv[2] ?? 'Pulumi.yaml';
  const before = readFileSync(file, 'utf8');
  const after = syncProjectFile(before);
  if (after !== before) writeFileSync(file, after);
  console.log(after === before ? `${file}: config block already in sync` : `${file}: config block rewritten`);
}
