// The stack spec: one source of truth, the infra program's config schema (infra/config/schema.ts).
// This module only adapts it to the automation layer's typed errors and adds stack-name rules.
import {
  parseStackConfig,
  StackConfigError,
  stackConfigJsonSchema,
  toPulumiConfig,
  type StackConfig,
  type StackConfigInput,
} from '../infra/config/schema.ts';
import { InvalidSpecError, InvalidStackNameError } from './errors.ts';

export type { StackConfig, StackConfigInput };
export { stackConfigJsonSchema, toPulumiConfig };

/**
 * Stack names become directory names (<stateDir>/stacks/<stack>) and URL path segments, so they
 * are restricted to a conservative alphabet: no path separators, no `..`, no leading dot/dash.
 */
export const STACK_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidStackName(stack: unknown): stack is string {
  return typeof stack === 'string' && STACK_NAME_PATTERN.test(stack) && !stack.includes('..');
}

export function assertStackName(stack: unknown): string {
  if (!isValidStackName(stack)) throw new InvalidStackNameError(String(stack));
  return stack;
}

/** Validates a raw spec (parsed JSON/YAML) with the infra schema; throws InvalidSpecError. */
export function validateSpec(raw: unknown): StackConfig {
  try {
    return parseStackConfig(raw);
  } catch (err) {
    if (err instanceof StackConfigError) {
      throw new InvalidSpecError(err.issues.map((i) => ({ key: i.key, message: i.message })));
    }
    throw err;
  }
}

export type PulumiConfigMap = Record<string, { value: string; secret?: boolean }>;

/** The values a redactor must hide for this spec: every config value the schema marks secret. */
export function secretValuesOf(config: PulumiConfigMap): string[] {
  const out: string[] = [];
  for (const entry of Object.values(config)) {
    if (!entry.secret) continue;
    out.push(entry.value);
    // Structured secrets are JSON strings; their leaf strings must be hidden too.
    try {
      collectStrings(JSON.parse(entry.value), out);
    } catch {
      /* plain string secret */
    }
  }
  return out.filter((s) => s.length > 0);
}

function collectStrings(v: unknown, out: string[]): void {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => collectStrings(x, out));
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => collectStrings(x, out));
}
