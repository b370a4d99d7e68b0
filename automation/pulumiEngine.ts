// The real StackEngine: Pulumi Automation API, LocalWorkspace, the infra/ program run by the CLI.
//
// Design: one work directory per stack, <stateDir>/stacks/<stack>/, each holding its own Pulumi.yaml
// (a copy of the repo's project file whose `main` points back at the repo's program) and its own
// Pulumi.<stack>.yaml. Workspaces sharing one directory race on those files (pulumi/pulumi#8186),
// so per-stack directories make operations on different stacks fully independent. We run the
// program as a *local* program (a separate `pulumi-language-nodejs` process per operation) rather
// than an inline program: inline programs share this Node process's @pulumi/pulumi runtime state
// between concurrent stacks, which has been a source of cross-talk, whereas a local program gets a
// fresh process per update and exercises exactly the code path `pulumi up` in infra/ does.
import { execFile } from 'node:child_process';
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import {
  CommandError,
  ConcurrentUpdateError,
  LocalWorkspace,
  PulumiCommand,
  Stack,
  StackNotFoundError as PulumiStackNotFoundError,
  type EngineEvent,
  type PulumiFn,
  type StackSettings,
} from '@pulumi/pulumi/automation/index.js';
import type {
  DestroyOptions,
  HistoryEntry,
  OperationContext,
  OperationKind,
  OperationResult,
  StackEngine,
  StackOutputs,
  StackSummary,
} from './engine.ts';
import {
  AutomationError,
  CancelledError,
  EngineError,
  PulumiCliError,
  StackBusyError,
  StackNotFoundError,
  type EngineDiagnostic,
} from './errors.ts';
import { fromEngineEvent } from './events.ts';
import { Redactor, redactOutputs } from './redact.ts';
import { assertStackName, secretValuesOf, toPulumiConfig, validateSpec, type StackConfig } from './spec.ts';

const execFileP = promisify(execFile);

/** Oldest CLI we support: `--stack`-scoped config commands, destroy `--remove`, JSON event logs. */
export const MINIMUM_PULUMI_CLI = '3.150.0';

export interface PulumiEngineOptions {
  /** Holds per-stack work directories (<stateDir>/stacks/<stack>). */
  stateDir: string;
  /** Directory holding the project's Pulumi.yaml (the repo root). */
  projectDir: string;
  /** Pulumi backend, e.g. `file:///var/lib/udpmesh/state` or `s3://bucket`; default: the CLI's login. */
  backendUrl?: string;
  /** Secrets provider for new stacks (default: the backend's; passphrase for file backends). */
  secretsProvider?: string;
  /** Extra environment for every Pulumi command (e.g. PULUMI_CONFIG_PASSPHRASE, cloud credentials). */
  envVars?: Record<string, string>;
  /** Directory holding bin/pulumi; default: `pulumi` on PATH. */
  pulumiRoot?: string;
  /** Minimum CLI version (default MINIMUM_PULUMI_CLI). */
  minimumCliVersion?: string;
  /** Pulumi home (plugins, credentials); default ~/.pulumi. */
  pulumiHome?: string;
  /**
   * An inline program run in this process instead of the project's `main` (no language host). The
   * service runs the infra program as a local program; inline programs are for embedding and the
   * real-engine tests.
   */
  program?: PulumiFn;
}

type StackRunner = (
  stack: Stack,
  onEvent: (e: EngineEvent) => void,
  signal: AbortSignal | undefined,
) => Promise<{
  changes: Record<string, number>;
  outputs?: StackOutputs;
}>;

export class PulumiEngine implements StackEngine {
  private readonly busy = new Set<string>();
  private cli?: Promise<PulumiCommand>;
  private projectFile?: Promise<Record<string, unknown>>;

  constructor(private readonly opts: PulumiEngineOptions) {}

  /** Checks the CLI once (re-checked after a failure, so installing it needs no restart). */
  pulumiCommand(): Promise<PulumiCommand> {
    if (!this.cli) {
      this.cli = checkPulumiCli(this.opts.pulumiRoot, this.opts.minimumCliVersion ?? MINIMUM_PULUMI_CLI);
      this.cli.catch(() => (this.cli = undefined));
    }
    return this.cli;
  }

  async ready(): Promise<void> {
    await this.pulumiCommand();
  }

  /** Where the update plan `id` of a stack is kept (inside the stack's private work dir). */
  planFile(stack: string, id: string): string {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new EngineError(`invalid plan id ${JSON.stringify(id)}`);
    return path.join(this.workDir(stack), 'plans', `${id}.json`);
  }

  workDir(stack: string): string {
    return path.join(this.opts.stateDir, 'stacks', assertStackName(stack));
  }

  async up(stack: string, spec: StackConfig, ctx: OperationContext = {}): Promise<OperationResult> {
    const valid = validateSpec(spec);
    const config = toPulumiConfig(valid);
    const redactor = new Redactor(secretValuesOf(config));
    return this.run(stack, 'up', ctx, redactor, 'create', async (s, onEvent, signal) => {
      await applyConfig(s, config);
      let plan: string | undefined;
      if (ctx.plan?.mode === 'apply') {
        plan = this.planFile(stack, ctx.plan.id);
        await access(plan).catch(() => {
          throw new EngineError(`no saved plan ${ctx.plan!.id} for stack ${stack}`);
        });
      }
      const r = await s.up({
        ...(plan ? { plan } : {}),
        onEvent,
        signal,
        color: 'never',
        ...(ctx.message ? { message: ctx.message } : {}),
        ...operationOptions(ctx),
      });
      return { changes: numericMap(r.summary.resourceChanges), outputs: redactOutputs(r.outputs, redactor) };
    });
  }

  async preview(stack: string, spec: StackConfig, ctx: OperationContext = {}): Promise<OperationResult> {
    const valid = validateSpec(spec);
    const config = toPulumiConfig(valid);
    const redactor = new Redactor(secretValuesOf(config));
    return this.run(stack, 'preview', ctx, redactor, 'create', async (s, onEvent, signal) => {
      await applyConfig(s, config);
      let plan: string | undefined;
      if (ctx.plan?.mode === 'save') {
        plan = this.planFile(stack, ctx.plan.id);
        await mkdir(path.dirname(plan), { recursive: true, mode: 0o700 });
      }
      const r = await s.preview({
        ...(plan ? { plan } : {}),
        onEvent,
        signal,
        color: 'never',
        ...(ctx.message ? { message: ctx.message } : {}),
        ...operationOptions(ctx),
      });
      return { changes: numericMap(r.changeSummary) };
    });
  }

  async refresh(stack: string, ctx: OperationContext = {}): Promise<OperationResult> {
    return this.run(stack, 'refresh', ctx, new Redactor(), 'select', async (s, onEvent, signal) => {
      const r = await s.refresh({
        onEvent,
        signal,
        color: 'never',
        ...(ctx.message ? { message: ctx.message } : {}),
        ...(ctx.targets?.length ? { target: ctx.targets } : {}),
      });
      return { changes: numericMap(r.summary.resourceChanges) };
    });
  }

  async destroy(
    stack: string,
    opts: DestroyOptions = {},
    ctx: OperationContext = {},
  ): Promise<OperationResult> {
    return this.run(stack, 'destroy', ctx, new Redactor(), 'select', async (s, onEvent, signal) => {
      const r = await s.destroy({
        onEvent,
        signal,
        color: 'never',
        ...(ctx.message ? { message: ctx.message } : {}),
        ...(opts.remove ? { remove: true } : {}),
        ...(ctx.targets?.length ? { target: ctx.targets } : {}),
      });
      return { changes: numericMap(r.summary.resourceChanges) };
    });
  }

  async outputs(stack: string): Promise<StackOutputs> {
    const s = await this.select(stack, 'read');
    try {
      return redactOutputs(await s.outputs());
    } catch (err) {
      throw mapError(err, stack, [], new Redactor(), undefined);
    }
  }

  async listStacks(): Promise<StackSummary[]> {
    const ws = await this.workspace(path.join(this.opts.stateDir, 'project'));
    try {
      const list = await ws.listStacks();
      return list.map((s) => ({
        name: s.name,
        updateInProgress: !!s.updateInProgress,
        ...(s.lastUpdate ? { lastUpdate: s.lastUpdate } : {}),
        ...(s.resourceCount !== undefined ? { resourceCount: s.resourceCount } : {}),
      }));
    } catch (err) {
      throw mapError(err, '', [], new Redactor(), undefined);
    }
  }

  async history(stack: string, opts: { pageSize?: number; page?: number } = {}): Promise<HistoryEntry[]> {
    const s = await this.select(stack, 'read');
    try {
      // showSecrets=false; config and environment are not returned at all.
      const h = await s.history(opts.pageSize, opts.page, false);
      return h.map((u) => ({
        version: u.version,
        kind: u.kind,
        result: u.result,
        startTime: isoTime(u.startTime),
        ...(u.endTime ? { endTime: isoTime(u.endTime) } : {}),
        message: u.message ?? '',
        ...(u.resourceChanges ? { resourceChanges: numericMap(u.resourceChanges) } : {}),
      }));
    } catch (err) {
      throw mapError(err, stack, [], new Redactor(), undefined);
    }
  }

  // --- internals ---

  private async run(
    stackName: string,
    kind: OperationKind,
    ctx: OperationContext,
    redactor: Redactor,
    mode: 'create' | 'select',
    body: StackRunner,
  ): Promise<OperationResult> {
    assertStackName(stackName);
    if (ctx.signal?.aborted) throw new CancelledError();
    // In-process guard: the work dir's files must not be written by two operations at once. Across
    // processes the backend's stack lock applies and surfaces as ConcurrentUpdateError.
    if (this.busy.has(stackName))
      throw new StackBusyError(stackName, undefined, 'an operation is running in this process');
    this.busy.add(stackName);
    const started = Date.now();
    const diagnostics: EngineDiagnostic[] = [];
    const onEvent = (e: EngineEvent) => {
      const ev = fromEngineEvent(e);
      if (!ev) return;
      const safe = redactor.value(ev);
      if (safe.type === 'diagnostic' && (safe.severity === 'error' || safe.severity === 'warning')) {
        diagnostics.push({
          severity: safe.severity,
          message: safe.message.trim(),
          ...(safe.urn ? { urn: safe.urn } : {}),
        });
      }
      try {
        ctx.onEvent?.(safe);
      } catch {
        /* a listener's failure must not break the operation */
      }
    };
    try {
      const s = mode === 'create' ? await this.createOrSelect(stackName) : await this.select(stackName);
      const r = await body(s, onEvent, ctx.signal);
      return { operation: kind, stack: stackName, durationMs: Date.now() - started, ...r };
    } catch (err) {
      throw mapError(err, stackName, diagnostics, redactor, ctx.signal);
    } finally {
      this.busy.delete(stackName);
    }
  }

  /**
   * Selects an existing stack. Reads (`read`) never create a work dir: a stack without one (unknown,
   * or made elsewhere) is read through the shared project dir, so a GET for an unknown stack leaves
   * nothing behind.
   */
  private async select(stackName: string, purpose: 'operate' | 'read' = 'operate'): Promise<Stack> {
    const own = this.workDir(stackName);
    const exists = await access(own).then(
      () => true,
      () => false,
    );
    const ws = await this.workspace(
      purpose === 'read' && !exists ? path.join(this.opts.stateDir, 'project') : own,
    );
    try {
      return await Stack.select(stackName, ws);
    } catch (err) {
      throw mapError(err, stackName, [], new Redactor(), undefined);
    }
  }

  private async createOrSelect(stackName: string): Promise<Stack> {
    const ws = await this.workspace(this.workDir(stackName));
    try {
      return await Stack.createOrSelect(stackName, ws);
    } catch (err) {
      throw mapError(err, stackName, [], new Redactor(), undefined);
    }
  }

  private wsOptions(workDir: string, pulumiCommand: PulumiCommand) {
    const envVars: Record<string, string> = {
      PULUMI_SKIP_UPDATE_CHECK: 'true',
      // Destroying a stack whose cluster is already gone must not hang on an unreachable API server.
      PULUMI_K8S_DELETE_UNREACHABLE: 'true',
      ...(this.opts.backendUrl ? { PULUMI_BACKEND_URL: this.opts.backendUrl } : {}),
      ...(this.opts.envVars ?? {}),
    };
    return {
      workDir,
      pulumiCommand,
      envVars,
      ...(this.opts.pulumiHome ? { pulumiHome: this.opts.pulumiHome } : {}),
      ...(this.opts.secretsProvider ? { secretsProvider: this.opts.secretsProvider } : {}),
    };
  }

  /** Prepares the work dir (writes its Pulumi.yaml) and checks the CLI. */
  private async workspace(workDir: string): Promise<LocalWorkspace> {
    const cli = await this.pulumiCommand();
    // Work dirs hold stack config (and the CLI's stderr may land there): private to the service user.
    await mkdir(this.opts.stateDir, { recursive: true, mode: 0o700 });
    await chmod(this.opts.stateDir, 0o700);
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    await chmod(workDir, 0o700);
    const project = projectFileFor(await this.rootProject(), this.opts.projectDir, workDir);
    await writeFileIfChanged(path.join(workDir, 'Pulumi.yaml'), YAML.stringify(project));
    return LocalWorkspace.create({
      ...this.wsOptions(workDir, cli),
      ...(this.opts.program ? { program: this.opts.program } : {}),
    });
  }

  private rootProject(): Promise<Record<string, unknown>> {
    this.projectFile ??= readFile(path.join(this.opts.projectDir, 'Pulumi.yaml'), 'utf8').then(
      (text) => YAML.parse(text) as Record<string, unknown>,
      (err: NodeJS.ErrnoException) => {
        this.projectFile = undefined;
        throw new EngineError(
          `cannot read the project file ${path.join(this.opts.projectDir, 'Pulumi.yaml')}: ${err.message}`,
        );
      },
    );
    return this.projectFile;
  }
}

/** Operation options as the Automation API's up/preview options. */
function operationOptions(ctx: OperationContext) {
  return {
    ...(ctx.targets?.length ? { target: ctx.targets, targetDependents: true } : {}),
    ...(ctx.replace?.length ? { replace: ctx.replace } : {}),
    ...(ctx.refresh ? { refresh: true } : {}),
    ...(ctx.expectNoChanges ? { expectNoChanges: true } : {}),
  };
}

/**
 * The per-stack project file: the repo's Pulumi.yaml with `main` rewritten relative to the stack's
 * work dir (Pulumi resolves `main` against the directory of Pulumi.yaml; `../` paths are allowed).
 */
export function projectFileFor(
  root: Record<string, unknown>,
  projectDir: string,
  workDir: string,
): Record<string, unknown> {
  const mainInRoot = typeof root.main === 'string' ? root.main : '.';
  const absMain = path.resolve(projectDir, mainInRoot);
  let rel = path.relative(workDir, absMain) || '.';
  if (mainInRoot.endsWith('/') && !rel.endsWith('/')) rel += '/';
  return { ...root, main: rel };
}

async function writeFileIfChanged(file: string, content: string): Promise<void> {
  const old = await readFile(file, 'utf8').catch(() => undefined);
  if (old !== content) await writeFile(file, content);
}

/**
 * Replaces the stack's config in the spec's namespaces with the spec's values.
 *
 * Structured values (arrays, objects) are written into Pulumi.<stack>.yaml as YAML structures, not
 * as JSON strings: the project file declares typed config (e.g. `udpmesh:clouds: {type: array}`)
 * and Pulumi rejects a string where an array is declared, while the program still reads each key
 * as JSON text (Pulumi serialises structured config for the program). This is safe because the
 * work dir belongs to this stack alone and the engine runs one operation per stack at a time.
 * Secret values go through the CLI (`config set --secret`) so that they are encrypted.
 */
export async function applyConfig(
  stack: Stack,
  config: Record<string, { value: string; secret?: boolean }>,
): Promise<void> {
  const ws = stack.workspace;
  const settings = await ws.stackSettings(stack.name).catch(() => ({}) as StackSettings);
  const current: Record<string, unknown> = { ...(settings.config ?? {}) };
  const namespaces = new Set(Object.keys(config).map((k) => k.split(':')[0]));
  for (const k of Object.keys(current))
    if (namespaces.has(k.split(':')[0]) && !(k in config)) delete current[k];
  const secrets: Record<string, { value: string; secret: boolean }> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v.secret) {
      delete current[k];
      secrets[k] = { value: v.value, secret: true };
    } else current[k] = structuredValue(v.value);
  }
  await ws.saveStackSettings(stack.name, { ...settings, config: current });
  if (Object.keys(secrets).length > 0) await stack.setAllConfig(secrets);
}

/** JSON arrays/objects become structures; everything else stays the string it is. */
export function structuredValue(value: string): unknown {
  const t = value.trim();
  if (!(t.startsWith('[') || t.startsWith('{'))) return value;
  try {
    const parsed: unknown = JSON.parse(t);
    return parsed !== null && typeof parsed === 'object' ? parsed : value;
  } catch {
    return value;
  }
}

function isoTime(v: Date | string | number): string {
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString();
}

function numericMap(m: Record<string, number | undefined> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m ?? {})) if (typeof v === 'number') out[k] = v;
  return out;
}

/** Turns anything thrown by the Automation API into the library's typed errors. */
export function mapError(
  err: unknown,
  stack: string,
  diagnostics: EngineDiagnostic[],
  redactor: Redactor,
  signal: AbortSignal | undefined,
): AutomationError {
  if (err instanceof AutomationError) return err;
  if (signal?.aborted) return new CancelledError();
  if (err instanceof ConcurrentUpdateError) {
    return new StackBusyError(
      stack,
      undefined,
      'the stack is locked by another update (pulumi cancel clears a stale lock)',
    );
  }
  if (err instanceof PulumiStackNotFoundError) return new StackNotFoundError(stack);
  if (err instanceof CommandError) {
    const result = (err as unknown as { commandResult?: { stderr?: string; code?: number } }).commandResult;
    const stderr = redactor.string(result?.stderr ?? '').trim();
    return engineErrorFrom(stderr, result?.code, diagnostics);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new EngineError(redactor.string(message), diagnostics);
}

/**
 * An EngineError that says what Pulumi said. The Automation API wraps a failed command as
 * "Command failed with exit code N: <argv>\n<stderr>" with code -2; the real exit code and Pulumi's
 * own `error:` lines are taken from that text (or from the engine's error diagnostics).
 */
export function engineErrorFrom(
  stderr: string,
  code: number | undefined,
  diagnostics: EngineDiagnostic[],
): EngineError {
  const exit = /Command failed with exit code (\d+)/.exec(stderr);
  const realCode = exit ? Number(exit[1]) : code;
  const lines = stderr.split('\n');
  const errorLines = lines
    .map((l) => l.trim())
    .filter((l) => /^error: /.test(l))
    .map((l) => l.slice('error: '.length));
  const diag = diagnostics.filter((d) => d.severity === 'error').map((d) => d.message.split('\n')[0]!);
  const said = diag.length > 0 ? diag.slice(0, 1) : errorLines.slice(0, 3);
  const headline =
    said.length > 0
      ? said.join('; ')
      : (lines.find((l) => l.trim().length > 0 && !/^Command failed/.test(l))?.trim() ??
        'pulumi command failed (no error output)');
  return new EngineError(
    `pulumi failed${realCode !== undefined && realCode >= 0 ? ` (exit ${realCode})` : ''}: ${headline}`,
    diagnostics,
    stderr.slice(-4000),
  );
}

/** Finds the CLI and checks its version; throws PulumiCliError with install instructions. */
export async function checkPulumiCli(root: string | undefined, minimum: string): Promise<PulumiCommand> {
  const bin = root ? path.resolve(root, 'bin', 'pulumi') : 'pulumi';
  let stdout: string;
  try {
    ({ stdout } = await execFileP(bin, ['version'], {
      env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: 'true' },
      timeout: 30_000,
    }));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'EACCES') {
      throw new PulumiCliError('pulumi_cli_missing', `Pulumi CLI not found (${bin})`, undefined, minimum);
    }
    throw new PulumiCliError(
      'pulumi_cli_missing',
      `\`${bin} version\` failed: ${e.message.split('\n')[0]}`,
      undefined,
      minimum,
    );
  }
  const found = stdout.trim();
  const v = parseVersion(found);
  const min = parseVersion(minimum);
  if (!v || !min || compareVersions(v, min) < 0) {
    throw new PulumiCliError(
      'pulumi_cli_too_old',
      `Pulumi CLI ${found || '(unknown version)'} is older than the required ${minimum}`,
      found,
      minimum,
    );
  }
  // Version already checked above against our (stricter) minimum.
  return PulumiCommand.get({ ...(root ? { root } : {}), skipVersionCheck: true });
}

export function parseVersion(s: string): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(s.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function compareVersions(a: [number, number, number], b: [number, number, number]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}
