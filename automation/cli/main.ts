// The `udpmesh` CLI over the library, for scripted use:
//   udpmesh stack up|preview <stack> [--spec <file.yaml|json>] [--message <text>] [--confirm-replace]
//   udpmesh stack refresh <stack> | destroy <stack> --yes [--remove] | outputs <stack>
//   udpmesh stack list | history <stack> | spec <stack>
//   udpmesh token create --role read|operate [--name <name>] [--expires <days>d] | list | revoke <id>
//   udpmesh purge --older-than <days>d
// Every command takes --json. Stack operations are jobs in the service's database, under the same
// per-stack lock as the service's jobs (a running service job makes the CLI answer busy, and the
// reverse), audited with the CLI user as actor. Progress goes to stderr; results go to stdout.
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ROLES, TokenStore, type Role } from '../auth/tokens.ts';
import type { OperationKind, OperationResult, StackEngine } from '../engine.ts';
import { AutomationError, InvalidSpecError, StackBusyError } from '../errors.ts';
import type { StackEvent } from '../events.ts';
import { openDatabase, specKeyFor } from '../jobs/db.ts';
import { JobRunner } from '../jobs/jobRunner.ts';
import { JobStore, type Job } from '../jobs/jobStore.ts';
import { redactOutputs } from '../redact.ts';
import { assertStackName, validateSpec } from '../spec.ts';
import { formatChanges, progressPrinter, type CliIO } from './progress.ts';

export type { CliIO };

export interface CliDeps {
  /** Created lazily: token commands need no engine (and no Pulumi CLI). */
  engine: () => StackEngine;
  /** SQLite file: the service's jobs, locks, specs, audit and tokens. */
  dbFile: string;
  io: CliIO;
  /** Aborted on Ctrl-C by the entry point. */
  signal?: AbortSignal;
}

export const USAGE = `usage:
  udpmesh stack up <stack> [--spec <file>] [--message <text>] [--confirm-replace]
                                                               create or update the stack (--spec
                                                               replaces its stored spec)
  udpmesh stack preview <stack> [--spec <file>]                show what up would change
  udpmesh stack refresh <stack>                                sync state with the clouds
  udpmesh stack destroy <stack> --yes [--remove]               delete every resource (and the stack)
  udpmesh stack outputs <stack> [--json]                       stack outputs (secrets hidden)
  udpmesh stack list                                           stacks in the backend
  udpmesh stack history <stack> [--json]                       update history
  udpmesh stack spec <stack>                                   the stored spec
  udpmesh token create --role read|operate [--name <name>] [--expires <N>d] [--stacks 'dev-*,qa']
                                                               API token for the service (shown once)
  udpmesh token list | token revoke <id>
  udpmesh purge --older-than <N>d                              delete old finished jobs and audit entries
Every command takes --json (machine-readable stdout).
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
    if (err instanceof StackBusyError) {
      io.stderr(`udpmesh: ${err.message}\n`);
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
          expires: { type: 'string' },
          stacks: { type: 'string' },
          'older-than': { type: 'string' },
          'confirm-replace': { type: 'boolean' },
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
    return 0;
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
  if (group === 'token') return tokenCommand(cmd, arg, values, deps);
  if (group === 'purge') return purgeCommand(values, deps);
  if (group !== 'stack') throw new UsageError(`unknown command ${group}`);
  const json = !!values.json;
  if (cmd === 'list') {
    const stacks = await deps.engine().listStacks();
    if (json) deps.io.stdout(`${JSON.stringify(stacks, null, 2)}\n`);
    else
      for (const s of stacks)
        deps.io.stdout(
          `${s.name}${s.updateInProgress ? '  (update in progress)' : ''}${s.lastUpdate ? `  last update ${s.lastUpdate}` : ''}\n`,
        );
    return 0;
  }
  if (!arg) throw new UsageError(`stack ${cmd ?? ''}: missing <stack>`);
  const stack = assertStackName(arg);
  switch (cmd) {
    case 'up':
    case 'preview':
    case 'refresh':
    case 'destroy':
      return operation(cmd, stack, values, deps);
    case 'outputs': {
      const outputs = redactOutputs(await deps.engine().outputs(stack));
      if (json)
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
      if (json) deps.io.stdout(`${JSON.stringify(h, null, 2)}\n`);
      else
        for (const u of h)
          deps.io.stdout(
            `#${u.version}  ${u.kind.padEnd(8)} ${u.result.padEnd(10)} ${u.startTime}  ${formatChanges(u.resourceChanges ?? {})}${u.message ? `  "${u.message}"` : ''}\n`,
          );
      return 0;
    }
    case 'spec': {
      const db = openDatabase(deps.dbFile);
      try {
        const s = new JobStore(db, { specKey: specKeyFor(deps.dbFile) }).getSpec(stack);
        if (!s) throw new Error(`stack ${stack} has no stored spec`);
        deps.io.stdout(json ? `${JSON.stringify(s, null, 2)}\n` : YAML.stringify(s.spec));
        return 0;
      } finally {
        db.close();
      }
    }
    default:
      throw new UsageError(`unknown stack command ${cmd}`);
  }
}

/**
 * A stack operation as a job in the shared database: the same lock, job record, events and audit
 * as the service's jobs. The spec is the stored one unless --spec gives a full replacement.
 */
async function operation(
  op: OperationKind,
  stack: string,
  values: {
    spec?: string;
    message?: string;
    yes?: boolean;
    remove?: boolean;
    json?: boolean;
    'confirm-replace'?: boolean;
  },
  deps: CliDeps,
): Promise<number> {
  if (op === 'destroy' && !values.yes)
    throw new UsageError(`stack destroy deletes every resource of ${stack}; pass --yes to confirm`);
  const db = openDatabase(deps.dbFile);
  const store = new JobStore(db, { specKey: specKeyFor(deps.dbFile) });
  const actor = `cli:${safeUser()}`;
  try {
    let spec;
    let raw: unknown;
    if (op === 'up' || op === 'preview') {
      if (values.spec) {
        raw = await readSpecFile(values.spec);
        spec = validateSpec(raw);
      } else {
        const stored = store.getSpec(stack);
        if (!stored) throw new UsageError(`stack ${op}: ${stack} has no stored spec; pass --spec <file>`);
        spec = validateSpec(stored.spec);
      }
    }
    const runner = new JobRunner(store, deps.engine(), { maxConcurrent: 1 });
    const verb = { up: 'Updating', preview: 'Previewing', refresh: 'Refreshing', destroy: 'Destroying' }[op];
    const job = runner.submit({
      stack,
      operation: op,
      actor,
      ...(spec ? { spec } : {}),
      ...(values.message ? { message: values.message } : {}),
      ...(op === 'destroy' ? { remove: !!values.remove } : {}),
      ...(values['confirm-replace'] ? { confirmReplace: true } : {}),
    });
    if (op === 'up' && raw !== undefined) store.putSpec(stack, raw, actor);
    deps.io.stderr(
      `${verb} stack ${stack}${op === 'destroy' && values.remove ? ' (and removing it)' : ''}\n`,
    );
    const print = progressPrinter(deps.io);
    let seen = 0;
    const show = (e: { seq: number; type: string; data: unknown }) => {
      if (e.seq <= seen) return;
      seen = e.seq;
      if (e.type === 'engine' || e.type === 'preflight') print(e.data as StackEvent);
    };
    // Subscribe, then replay what the job recorded before that (events emitted synchronously).
    const unsubscribe = runner.subscribe(job.id, show);
    for (const e of store.events(job.id)) show(e);
    const onAbort = () => {
      try {
        runner.cancel(job.id, actor);
      } catch {
        /* already finished */
      }
    };
    deps.signal?.addEventListener('abort', onAbort, { once: true });
    await runner.waitFor(job.id);
    deps.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
    const done = store.getJob(job.id)!;
    deps.io.stderr(`job ${done.id}: ${done.status}\n`);
    return report(deps.io, done, !!values.json);
  } finally {
    db.close();
  }
}

function report(io: CliIO, job: Job, json: boolean): number {
  if (json) io.stdout(`${JSON.stringify(job, null, 2)}\n`);
  if (job.status === 'succeeded') {
    if (!json) finish(io, job.result as OperationResult);
    return 0;
  }
  if (job.status === 'cancelled') {
    io.stderr('udpmesh: cancelled\n');
    return 130;
  }
  const err = job.error ?? { code: 'internal', message: 'failed' };
  io.stderr(`udpmesh: ${err.message}\n`);
  const diags = (
    err.details as { diagnostics?: { severity: string; message: string; urn?: string }[] } | undefined
  )?.diagnostics;
  for (const d of (diags ?? []).filter((x) => x.severity === 'error'))
    io.stderr(`  ${d.urn ? `${d.urn.split('::').pop()}: ` : ''}${d.message}\n`);
  return err.code === 'invalid_spec' || err.code === 'invalid_stack_name' ? 2 : 1;
}

function purgeCommand(values: { 'older-than'?: string; json?: boolean }, deps: CliDeps): number {
  const m = /^(\d{1,5})d$/.exec(values['older-than'] ?? '');
  if (!m) throw new UsageError('purge: --older-than <N>d is required (e.g. 90d)');
  const db = openDatabase(deps.dbFile);
  try {
    const store = new JobStore(db);
    const before = new Date(Date.now() - Number(m[1]) * 86_400_000).toISOString();
    const removed = store.purge(before);
    store.audit({
      actor: `cli:${safeUser()}`,
      action: 'admin.purge',
      result: 'purged',
      detail: `before ${before}: ${removed.jobs} jobs, ${removed.events} events, ${removed.audit} audit entries`,
    });
    if (values.json) deps.io.stdout(`${JSON.stringify({ before, ...removed })}\n`);
    else
      deps.io.stderr(
        `purged ${removed.jobs} jobs, ${removed.events} events, ${removed.audit} audit entries before ${before}\n`,
      );
    return 0;
  } finally {
    db.close();
  }
}

function tokenCommand(
  cmd: string | undefined,
  arg: string | undefined,
  values: { role?: string; name?: string; json?: boolean; expires?: string; stacks?: string },
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
        let expiresAt: Date | undefined;
        if (values.expires !== undefined) {
          const m = /^(\d{1,5})d$/.exec(values.expires);
          if (!m) throw new UsageError('token create: --expires <N>d (days), e.g. 90d');
          expiresAt = new Date(Date.now() + Number(m[1]) * 86_400_000);
        }
        const stacks = values.stacks
          ?.split(',')
          .map((x) => x.trim())
          .filter(Boolean);
        const { token, info } = tokens.create(values.name ?? `${values.role}-token`, values.role as Role, {
          ...(expiresAt ? { expiresAt } : {}),
          ...(stacks?.length ? { stacks } : {}),
        });
        audit.audit({
          actor,
          action: 'token.create',
          result: 'created',
          detail: `${info.id} ${info.name} ${info.role}`,
        });
        deps.io.stderr(
          `created token ${info.id} "${info.name}" with role ${info.role}${info.expiresAt ? `, expires ${info.expiresAt}` : ''}; it is shown once, store it now:\n`,
        );
        deps.io.stdout(values.json ? `${JSON.stringify({ token, ...info })}\n` : `${token}\n`);
        return 0;
      }
      case 'list':
        if (values.json) {
          deps.io.stdout(`${JSON.stringify(tokens.list(), null, 2)}\n`);
          return 0;
        }
        for (const t of tokens.list())
          deps.io.stdout(
            `${t.id}  ${t.role.padEnd(7)} ${t.name}  created ${t.createdAt}  last used ${t.lastUsedAt ?? 'never'}` +
              `${t.expiresAt ? `  expires ${t.expiresAt}` : ''}${t.revokedAt ? `  REVOKED ${t.revokedAt}` : ''}\n`,
          );
        return 0;
      case 'revoke':
        if (!arg) throw new UsageError('token revoke: missing <id>');
        if (!tokens.revoke(arg)) throw new Error(`no active token ${arg}`);
        audit.audit({ actor, action: 'token.revoke', result: 'revoked', detail: arg });
        deps.io.stderr(`revoked token ${arg}\n`);
        if (values.json) deps.io.stdout(`${JSON.stringify({ revoked: arg })}\n`);
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

function finish(io: CliIO, r: OperationResult): void {
  io.stderr(
    `${r.operation} of ${r.stack} finished in ${(r.durationMs / 1000).toFixed(1)}s: ${formatChanges(r.changes)}\n`,
  );
  if (r.outputs && Object.keys(r.outputs).length > 0) {
    io.stdout('Outputs:\n');
    for (const [k, o] of Object.entries(redactOutputs(r.outputs)))
      io.stdout(`  ${k}: ${typeof o.value === 'string' ? o.value : JSON.stringify(o.value)}\n`);
  }
}
