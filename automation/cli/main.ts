// The `udpmesh` CLI over the library, for scripted use:
//   udpmesh stack up|preview <stack> --spec <file.yaml|json> [--message <text>]
//   udpmesh stack refresh <stack> | destroy <stack> --yes [--remove] | outputs <stack> [--json]
//   udpmesh stack list | history <stack> [--json]
//   udpmesh token create --role read|operate [--name <name>] | token list | token revoke <id>
// Progress goes to stderr as readable lines; results (outputs, JSON, tokens) go to stdout.
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ROLES, TokenStore, type Role } from '../auth/tokens.ts';
import type { OperationResult, StackEngine } from '../engine.ts';
import { AutomationError, CancelledError, EngineError, InvalidSpecError } from '../errors.ts';
import type { StackEvent } from '../events.ts';
import { openDatabase } from '../jobs/db.ts';
import { JobStore } from '../jobs/jobStore.ts';
import { redactOutputs } from '../redact.ts';
import { assertStackName, validateSpec } from '../spec.ts';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export interface CliDeps {
  /** Created lazily: token commands need no engine (and no Pulumi CLI). */
  engine: () => StackEngine;
  /** SQLite file holding the service's tokens. */
  dbFile: string;
  io: CliIO;
  /** Aborted on Ctrl-C by the entry point. */
  signal?: AbortSignal;
}

export const USAGE = `usage:
  udpmesh stack up <stack> --spec <file> [--message <text>]   create or update the stack
  udpmesh stack preview <stack> --spec <file>                  show what up would change
  udpmesh stack refresh <stack>                                sync state with the clouds
  udpmesh stack destroy <stack> --yes [--remove]               delete every resource (and the stack)
  udpmesh stack outputs <stack> [--json]                       stack outputs (secrets hidden)
  udpmesh stack list                                           stacks in the backend
  udpmesh stack history <stack> [--json]                       update history
  udpmesh token create --role read|operate [--name <name>]    API token for the service (shown once)
  udpmesh token list | token revoke <id>
The spec file is YAML or JSON in the infra config schema (docs/infra.md), or a Pulumi stack file
(config: udpmesh:<key> ...) such as Pulumi.dev.yaml.`;

class UsageError extends Error {}

/** Runs one CLI invocation; returns the process exit code. */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  const { io } = deps;
  try {
    return await dispatch(argv, deps);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`udpmesh: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof InvalidSpecError) {
      io.stderr(
        `udpmesh: the spec is invalid:\n${err.issues.map((i) => `  ${i.key}: ${i.message}`).join('\n')}\n`,
      );
      return 2;
    }
    if (err instanceof CancelledError) {
      io.stderr('udpmesh: cancelled\n');
      return 130;
    }
    if (err instanceof EngineError) {
      io.stderr(`udpmesh: ${err.message}\n`);
      for (const d of err.diagnostics.filter((x) => x.severity === 'error'))
        io.stderr(`  ${d.urn ? `${urnName(d.urn)}: ` : ''}${d.message}\n`);
      return 1;
    }
    if (err instanceof AutomationError) {
      io.stderr(`udpmesh: ${err.message}\n`);
      return err.code === 'invalid_stack_name' ? 2 : 1;
    }
    io.stderr(`udpmesh: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

async function dispatch(argv: string[], deps: CliDeps): Promise<number> {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: argv,
        allowPositionals: true,
        strict: true,
        options: {
          spec: { type: 'string', short: 's' },
          message: { type: 'string', short: 'm' },
          yes: { type: 'boolean', short: 'y' },
          remove: { type: 'boolean' },
          json: { type: 'boolean' },
          role: { type: 'string' },
          name: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  })();
  const [group, cmd, arg, ...rest] = positionals;
  if (values.help || !group) {
    deps.io.stdout(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
  if (group === 'token') return tokenCommand(cmd, arg, values, deps);
  if (group !== 'stack') throw new UsageError(`unknown command ${group}`);
  if (cmd === 'list') {
    const stacks = await deps.engine().listStacks();
    if (values.json) deps.io.stdout(`${JSON.stringify(stacks, null, 2)}\n`);
    else
      for (const s of stacks)
        deps.io.stdout(
          `${s.name}${s.updateInProgress ? '  (update in progress)' : ''}${s.lastUpdate ? `  last update ${s.lastUpdate}` : ''}\n`,
        );
    return 0;
  }
  if (!arg) throw new UsageError(`stack ${cmd ?? ''}: missing <stack>`);
  const stack = assertStackName(arg);
  const progress = progressPrinter(deps.io);
  const ctx = {
    onEvent: progress,
    ...(deps.signal ? { signal: deps.signal } : {}),
    ...(values.message ? { message: values.message } : {}),
  };
  switch (cmd) {
    case 'up':
    case 'preview': {
      if (!values.spec) throw new UsageError(`stack ${cmd}: --spec <file> is required`);
      const spec = validateSpec(await readSpecFile(values.spec));
      deps.io.stderr(`${cmd === 'up' ? 'Updating' : 'Previewing'} stack ${stack}\n`);
      const r =
        cmd === 'up'
          ? await deps.engine().up(stack, spec, ctx)
          : await deps.engine().preview(stack, spec, ctx);
      finish(deps.io, r, !!values.json);
      return 0;
    }
    case 'refresh': {
      deps.io.stderr(`Refreshing stack ${stack}\n`);
      finish(deps.io, await deps.engine().refresh(stack, ctx), !!values.json);
      return 0;
    }
    case 'destroy': {
      if (!values.yes)
        throw new UsageError(`stack destroy deletes every resource of ${stack}; pass --yes to confirm`);
      deps.io.stderr(`Destroying stack ${stack}${values.remove ? ' (and removing it)' : ''}\n`);
      finish(deps.io, await deps.engine().destroy(stack, { remove: !!values.remove }, ctx), !!values.json);
      return 0;
    }
    case 'outputs': {
      const outputs = redactOutputs(await deps.engine().outputs(stack));
      if (values.json)
        deps.io.stdout(
          `${JSON.stringify(Object.fromEntries(Object.entries(outputs).map(([k, o]) => [k, o.value])), null, 2)}\n`,
        );
      else
        for (const [k, o] of Object.entries(outputs))
          deps.io.stdout(`${k}: ${typeof o.value === 'string' ? o.value : JSON.stringify(o.value)}\n`);
      return 0;
    }
    case 'history': {
      const h = await deps.engine().history(stack, { pageSize: 20 });
      if (values.json) deps.io.stdout(`${JSON.stringify(h, null, 2)}\n`);
      else
        for (const u of h)
          deps.io.stdout(
            `#${u.version}  ${u.kind.padEnd(8)} ${u.result.padEnd(10)} ${u.startTime}  ${formatChanges(u.resourceChanges ?? {})}${u.message ? `  "${u.message}"` : ''}\n`,
          );
      return 0;
    }
    default:
      throw new UsageError(`unknown stack command ${cmd}`);
  }
}

function tokenCommand(
  cmd: string | undefined,
  arg: string | undefined,
  values: { role?: string; name?: string; json?: boolean },
  deps: CliDeps,
): number {
  const db = openDatabase(deps.dbFile);
  const audit = new JobStore(db);
  const actor = `cli:${safeUser()}`;
  try {
    const tokens = new TokenStore(db);
    switch (cmd) {
      case 'create': {
        if (!values.role || !ROLES.includes(values.role as Role))
          throw new UsageError(`token create: --role must be ${ROLES.join(' or ')}`);
        const { token, info } = tokens.create(values.name ?? `${values.role}-token`, values.role as Role);
        audit.audit({
          actor,
          action: 'token.create',
          result: 'created',
          detail: `${info.id} ${info.name} ${info.role}`,
        });
        deps.io.stderr(
          `created token ${info.id} "${info.name}" with role ${info.role}; it is shown once, store it now:\n`,
        );
        deps.io.stdout(`${token}\n`);
        return 0;
      }
      case 'list':
        for (const t of tokens.list())
          deps.io.stdout(
            `${t.id}  ${t.role.padEnd(7)} ${t.name}  created ${t.createdAt}${t.revokedAt ? `  REVOKED ${t.revokedAt}` : ''}\n`,
          );
        return 0;
      case 'revoke':
        if (!arg) throw new UsageError('token revoke: missing <id>');
        if (!tokens.revoke(arg)) throw new Error(`no active token ${arg}`);
        audit.audit({ actor, action: 'token.revoke', result: 'revoked', detail: arg });
        deps.io.stderr(`revoked token ${arg}\n`);
        return 0;
      default:
        throw new UsageError(`unknown token command ${cmd ?? ''}`);
    }
  } finally {
    db.close();
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

export async function readSpecFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read spec file ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text) as unknown;
  } catch (err) {
    throw new InvalidSpecError([
      {
        key: '(file)',
        message: `${file} is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`,
      },
    ]);
  }
  return specFromDocument(parsed);
}

/**
 * A spec document is either the spec itself or a Pulumi stack file (`config:` with `udpmesh:<key>`
 * entries, like the repo's Pulumi.dev.yaml), which is converted by dropping the namespace.
 */
export function specFromDocument(doc: unknown): unknown {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc) || !('config' in doc)) return doc;
  const config = (doc as { config: unknown }).config;
  if (!config || typeof config !== 'object') return doc;
  const spec: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (!key.startsWith('udpmesh:')) continue;
    if (value && typeof value === 'object' && 'secure' in value) {
      throw new InvalidSpecError([
        {
          key,
          message: 'encrypted values cannot be read from a stack file; put the plain value in a spec file',
        },
      ]);
    }
    spec[key.slice('udpmesh:'.length)] = value;
  }
  return spec;
}

const SYMBOL: Record<string, string> = {
  create: '+',
  update: '~',
  delete: '-',
  replace: '+-',
  'create-replacement': '++',
  'delete-replaced': '--',
  read: '>',
  refresh: '~',
  import: '=',
};

export function urnName(urn: string): string {
  return urn.split('::').pop() ?? urn;
}
function urnType(urn: string, fallback: string): string {
  const parts = urn.split('::');
  return parts.length >= 4 ? (parts[2]!.split('$').pop() ?? fallback) : fallback;
}

/** Turns engine events into readable progress lines on stderr. */
export function progressPrinter(io: CliIO): (e: StackEvent) => void {
  return (e) => {
    switch (e.type) {
      case 'resource-pre':
        if (e.op === 'same') return;
        io.stderr(
          `  ${(SYMBOL[e.op] ?? '*').padEnd(2)} ${e.op.padEnd(8)} ${urnType(e.urn, e.resourceType)}  ${urnName(e.urn)}${e.planning ? ' (planned)' : ''}\n`,
        );
        return;
      case 'resource-outputs':
        if (e.op === 'same' || e.planning) return;
        io.stderr(`  ok ${e.op.padEnd(8)} ${urnType(e.urn, e.resourceType)}  ${urnName(e.urn)}\n`);
        return;
      case 'resource-failed':
        io.stderr(`  !! ${e.op.padEnd(8)} ${urnType(e.urn, e.resourceType)}  ${urnName(e.urn)} FAILED\n`);
        return;
      case 'diagnostic': {
        const msg = e.message.trim();
        if (!msg) return;
        const where = e.urn ? `${urnName(e.urn)}: ` : '';
        if (e.severity === 'error' || e.severity === 'warning')
          io.stderr(`  ${e.severity}: ${where}${msg}\n`);
        else io.stderr(`  ${where}${msg}\n`);
        return;
      }
      case 'policy':
        io.stderr(`  policy ${e.enforcementLevel} ${e.policyName}: ${e.message.trim()}\n`);
        return;
      case 'summary':
        io.stderr(
          `Resources: ${formatChanges(e.resourceChanges)} (${Math.round(e.durationSeconds)}s)${e.maybeCorrupt ? ' — state may be inconsistent, run refresh' : ''}\n`,
        );
        return;
      case 'cancel':
        io.stderr('  cancellation acknowledged by the engine\n');
        return;
      default:
        return;
    }
  };
}

export function formatChanges(changes: Record<string, number>): string {
  const words: Record<string, string> = {
    create: 'created',
    update: 'updated',
    delete: 'deleted',
    replace: 'replaced',
    same: 'unchanged',
  };
  const parts = Object.entries(changes)
    .filter(([, n]) => n > 0)
    .map(([op, n]) => `${n} ${words[op] ?? op}`);
  return parts.length ? parts.join(', ') : 'no changes';
}

function finish(io: CliIO, r: OperationResult, json: boolean): void {
  if (json) {
    io.stdout(`${JSON.stringify(r.outputs ? { ...r, outputs: redactOutputs(r.outputs) } : r, null, 2)}\n`);
    return;
  }
  io.stderr(
    `${r.operation} of ${r.stack} finished in ${(r.durationMs / 1000).toFixed(1)}s: ${formatChanges(r.changes)}\n`,
  );
  if (r.outputs && Object.keys(r.outputs).length > 0) {
    io.stdout('Outputs:\n');
    for (const [k, o] of Object.entries(redactOutputs(r.outputs)))
      io.stdout(`  ${k}: ${typeof o.value === 'string' ? o.value : JSON.stringify(o.value)}\n`);
  }
}
