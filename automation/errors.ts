// Typed errors of the automation layer. Every failure a caller can act on has its own class and a
// stable `code` (used verbatim in HTTP error bodies and CLI exit messages); nothing else escapes
// the library untyped: unknown engine failures become EngineError.

export type AutomationErrorCode =
  | 'invalid_spec'
  | 'invalid_stack_name'
  | 'stack_not_found'
  | 'stack_busy'
  | 'engine_failure'
  | 'pulumi_cli_missing'
  | 'pulumi_cli_too_old'
  | 'cancelled'
  | 'confirmation_required';

export abstract class AutomationError extends Error {
  abstract readonly code: AutomationErrorCode;
  /** JSON-safe detail for API responses (already free of secrets). */
  toJSON(): { code: AutomationErrorCode; message: string; details?: unknown } {
    return { code: this.code, message: this.message };
  }
}

export interface SpecIssue {
  key: string;
  message: string;
}

export class InvalidSpecError extends AutomationError {
  readonly code = 'invalid_spec' as const;
  constructor(
    readonly issues: SpecIssue[],
    message = `invalid stack spec: ${issues.map((i) => `${i.key || '(root)'}: ${i.message}`).join('; ')}`,
  ) {
    super(message);
    this.name = 'InvalidSpecError';
  }
  override toJSON() {
    return { code: this.code, message: this.message, details: { issues: this.issues } };
  }
}

export class InvalidStackNameError extends AutomationError {
  readonly code = 'invalid_stack_name' as const;
  constructor(readonly stackName: string) {
    super(
      `invalid stack name ${JSON.stringify(stackName)}: use 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit`,
    );
    this.name = 'InvalidStackNameError';
  }
}

export class StackNotFoundError extends AutomationError {
  readonly code = 'stack_not_found' as const;
  constructor(readonly stackName: string) {
    super(`stack ${JSON.stringify(stackName)} does not exist`);
    this.name = 'StackNotFoundError';
  }
}

export class StackBusyError extends AutomationError {
  readonly code = 'stack_busy' as const;
  /** The job holding the stack, when the busy stack is held by this service or the CLI. */
  constructor(
    readonly stackName: string,
    readonly runningJobId?: string,
    detail?: string,
    /** The holder's status: queued, running or cancelling. */
    readonly holderStatus?: string,
  ) {
    super(
      `stack ${JSON.stringify(stackName)} is busy: ${
        runningJobId
          ? `job ${runningJobId} is ${holderStatus ?? 'running'} on it`
          : (detail ?? 'another update is in progress')
      }`,
    );
    this.name = 'StackBusyError';
  }
  override toJSON() {
    return {
      code: this.code,
      message: this.message,
      ...(this.runningJobId ? { details: { runningJobId: this.runningJobId } } : {}),
    };
  }
}

export interface EngineDiagnostic {
  severity: string;
  message: string;
  urn?: string;
}

export class EngineError extends AutomationError {
  readonly code = 'engine_failure' as const;
  constructor(
    message: string,
    readonly diagnostics: EngineDiagnostic[] = [],
    /** Tail of the CLI's stderr (redacted), for operators. */
    readonly stderr = '',
  ) {
    super(message);
    this.name = 'EngineError';
  }
  override toJSON() {
    return {
      code: this.code,
      message: this.message,
      details: { diagnostics: this.diagnostics, ...(this.stderr ? { stderr: this.stderr } : {}) },
    };
  }
}

export const PULUMI_INSTALL_HINT =
  'Install the Pulumi CLI: `curl -fsSL https://get.pulumi.com | sh` (Linux/macOS), `brew install pulumi/tap/pulumi`, ' +
  'or `choco install pulumi` (Windows); then make sure `pulumi version` works on PATH or set UDPMESH_PULUMI_ROOT ' +
  'to the directory holding bin/pulumi. See https://www.pulumi.com/docs/install/';

export class PulumiCliError extends AutomationError {
  constructor(
    readonly code: 'pulumi_cli_missing' | 'pulumi_cli_too_old',
    message: string,
    readonly foundVersion?: string,
    readonly minimumVersion?: string,
  ) {
    super(`${message}. ${PULUMI_INSTALL_HINT}`);
    this.name = 'PulumiCliError';
  }
  override toJSON() {
    return {
      code: this.code,
      message: this.message,
      details: { foundVersion: this.foundVersion ?? null, minimumVersion: this.minimumVersion ?? null },
    };
  }
}

export class CancelledError extends AutomationError {
  readonly code = 'cancelled' as const;
  constructor(message = 'operation cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

/** An update whose preview replaces clusters or networks, sent without confirmReplace. */
export class ConfirmationRequiredError extends AutomationError {
  readonly code = 'confirmation_required' as const;
  constructor(readonly replacements: { urn: string; resourceType: string; op: string }[]) {
    super(
      `the update would replace ${replacements.length} cluster or network resource(s): ` +
        `${replacements.map((r) => r.urn.split('::').pop()).join(', ')}; ` +
        'send the operation again with confirmReplace: true to apply it',
    );
    this.name = 'ConfirmationRequiredError';
  }
  override toJSON() {
    return { code: this.code, message: this.message, details: { replacements: this.replacements } };
  }
}

export function isAutomationError(err: unknown): err is AutomationError {
  return err instanceof AutomationError;
}
