// Loads the replicator config: a YAML or JSON file, then UDPMESH_* environment overrides, then the schema.
// Errors name the key, what is wrong and how to fix it; nothing here throws anything but ConfigError.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { replicatorConfigSchema, type ReplicatorConfig } from './schema.ts';

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid replicator config (${source}):\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export const ENV_PREFIX = 'UDPMESH_';

/** UDPMESH_INGRESS__MAX_PAYLOAD_BYTES -> ['ingress', 'maxPayloadBytes'] */
export function envKeyToPath(name: string): string[] {
  return name
    .slice(ENV_PREFIX.length)
    .split('__')
    .map((part) => part.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()));
}

/** The part of a zod schema's definition used to type env values (zod 4 keeps it on `def`). */
interface SchemaNode {
  def: {
    type: string;
    innerType?: SchemaNode;
    in?: SchemaNode;
    shape?: Record<string, SchemaNode>;
    element?: SchemaNode;
  };
}

function unwrapSchema(node: SchemaNode | undefined): SchemaNode | undefined {
  while (node) {
    const { type, innerType } = node.def;
    if (innerType && ['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch'].includes(type))
      node = innerType;
    else if (type === 'pipe' && node.def.in) node = node.def.in;
    else break;
  }
  return node;
}

/** The schema node a config path leads to, or undefined for paths the schema does not know (reported later). */
function schemaAt(path: readonly string[]): SchemaNode | undefined {
  let node = unwrapSchema(replicatorConfigSchema as unknown as SchemaNode);
  for (const key of path) {
    const shape = node?.def.type === 'object' ? node.def.shape : undefined;
    if (!shape || !Object.hasOwn(shape, key)) return undefined;
    node = unwrapSchema(shape[key]);
  }
  return node;
}

const isStringSchema = (node: SchemaNode | undefined): boolean =>
  node?.def.type === 'string' || node?.def.type === 'enum';

function parseScalar(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Env values are typed by the schema: strings stay strings, arrays are comma lists (or a JSON array) whose
 * items are typed by the array's element (so PORTS=7001,7002 gives numbers and a single item still gives an
 * array), anything else is JSON when it parses (numbers, booleans) and a string otherwise.
 */
function parseEnvValue(raw: string, current: unknown, expected: SchemaNode | undefined): unknown {
  if (isStringSchema(expected)) return raw;
  if (expected?.def.type === 'array' && !raw.trimStart().startsWith('[')) {
    const stringItems = isStringSchema(unwrapSchema(expected.def.element));
    const items = raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    return stringItems ? items : items.map(parseScalar);
  }
  try {
    return JSON.parse(raw);
  } catch {
    if (Array.isArray(current) || raw.includes(','))
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    return raw;
  }
}

// Env variables that are not config keys (secrets and the like are read where they are used).
const ENV_NOT_CONFIG = new Set([
  'UDPMESH_CLUSTER_KEY',
  'UDPMESH_CLUSTER_KEY_PREVIOUS',
  'UDPMESH_CONFIG',
  'UDPMESH_WORKER_INDEX',
  /** Path of the udp_batch addon, when not next to replicator/io (replicator/io/native.ts). */
  'UDPMESH_ADDON',
]);

export function applyEnvOverrides(
  base: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): Record<string, unknown> {
  const out = structuredClone(base);
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined || ENV_NOT_CONFIG.has(name)) continue;
    const path = envKeyToPath(name);
    let node: Record<string, unknown> = out;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined || next === null || typeof next !== 'object') node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    const leaf = path[path.length - 1];
    node[leaf] = parseEnvValue(value, node[leaf], schemaAt(path));
  }
  return out;
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const key = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    if (issue.code === 'unrecognized_keys') {
      return `${key}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}: remove them or check the spelling against the configuration reference`;
    }
    if (issue.code === 'invalid_type') {
      return `${key}: ${issue.message.replace(/^Invalid input: /, '')}; set ${key} to ${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected}`;
    }
    return `${key}: ${issue.message}`;
  });
}

/** Validates an already parsed object (file content merged with overrides). */
export function validateConfig(raw: unknown, source = 'config'): ReplicatorConfig {
  const result = replicatorConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, formatIssues(result.error.issues));
  return result.data;
}

export function parseConfigText(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = source.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(source, [
      `the file is not valid ${source.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
    ]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError(source, ['(root): expected a mapping of keys such as cluster, ingress, delivery']);
  return doc as Record<string, unknown>;
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): ReplicatorConfig {
  let base: Record<string, unknown> = {};
  const source = file ?? 'environment';
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(file, [
        `cannot read the config file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      ]);
    }
    base = parseConfigText(text, file);
  }
  return validateConfig(applyEnvOverrides(base, env), source);
}
