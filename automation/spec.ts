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
import { InvalidSpecError, InvalidStackNameError, type SpecIssue } from './errors.ts';

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

/**
 * Free-text spec values (regions, images, machine types, DNS names, ...) end up in
 * Pulumi.<stack>.yaml, cloud API calls and Kubernetes manifests: none of them legitimately holds
 * whitespace, control characters, quotes or shell/YAML syntax, and none is longer than a DNS name.
 */
export const SPEC_TEXT_MAX = 253;
const SPEC_TEXT = /^[A-Za-z0-9._:/@+=,~-]*$/;

function textIssues(v: unknown, key: string, out: SpecIssue[]): void {
  if (typeof v === 'string') {
    if (v.length > SPEC_TEXT_MAX) out.push({ key, message: `at most ${SPEC_TEXT_MAX} characters` });
    else if (!SPEC_TEXT.test(v))
      out.push({
        key,
        message: 'only letters, digits and . _ : / @ + = , ~ - (no spaces, control characters or quotes)',
      });
  } else if (Array.isArray(v)) v.forEach((x, i) => textIssues(x, `${key}.${i}`, out));
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) textIssues(x, key ? `${key}.${k}` : k, out);
}

/** Validates a raw spec (parsed JSON/YAML) with the infra schema; throws InvalidSpecError. */
export function validateSpec(raw: unknown): StackConfig {
  let spec: StackConfig;
  try {
    spec = parseStackConfig(raw);
  } catch (err) {
    if (err instanceof StackConfigError) {
      throw new InvalidSpecError(err.issues.map((i) => ({ key: i.key, message: i.message })));
    }
    throw err;
  }
  const issues: SpecIssue[] = [];
  textIssues(spec, '', issues);
  if (issues.length > 0) throw new InvalidSpecError(issues);
  return spec;
}

/**
 * Values that identify real infrastructure: a default for them could silently move a stack (the
 * schema's `gcp.project` default is a dev project). A spec stored for a stack must name them for
 * every enabled cloud.
 */
export const IDENTITY_KEYS: Record<string, string[]> = {
  aws: ['region'],
  gcp: ['project', 'region'],
  azure: ['location'],
};

export function requireIdentity(raw: unknown): void {
  validateSpec(raw);
  const obj = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  const clouds = Array.isArray(obj.clouds)
    ? obj.clouds.filter((c): c is string => typeof c === 'string')
    : [];
  const issues: SpecIssue[] = [];
  for (const cloud of clouds) {
    const section = obj[cloud];
    for (const key of IDENTITY_KEYS[cloud] ?? []) {
      const v =
        section && typeof section === 'object' ? (section as Record<string, unknown>)[key] : undefined;
      if (v === undefined)
        issues.push({
          key: `${cloud}.${key}`,
          message: 'required: it identifies real infrastructure, so it has no default here',
        });
    }
  }
  if (issues.length > 0) throw new InvalidSpecError(issues);
}

/** RFC 7396 JSON merge patch: objects merge, null deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '__proto__' || k === 'constructor' || k === 'prototype')
      throw new InvalidSpecError([{ key: k, message: 'forbidden key' }]);
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
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
