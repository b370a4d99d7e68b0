// The library's contract: stack lifecycle calls on a validated spec. PulumiEngine (pulumiEngine.ts)
// implements it with the Automation API; the job service and the CLI depend only on this interface,
// so they can be tested against a scripted engine.
import type { StackConfig } from './spec.ts';
import type { StackEventListener } from './events.ts';

export type OperationKind = 'up' | 'preview' | 'refresh' | 'destroy';
export const OPERATION_KINDS: readonly OperationKind[] = ['up', 'preview', 'refresh', 'destroy'];

export interface OperationContext {
  /** Receives engine events as they happen (already projected; see events.ts). */
  onEvent?: StackEventListener;
  /** Aborting cancels the operation; the call then rejects with CancelledError. */
  signal?: AbortSignal;
  /** Free-text message recorded with the update in the stack history. */
  message?: string;
  /** up/preview/refresh/destroy: only these resource URNs (and, for up, their dependents). */
  targets?: string[];
  /** up/preview: replace these resource URNs even if unchanged. */
  replace?: string[];
  /** up/preview: refresh the state from the clouds first. */
  refresh?: boolean;
  /** up/preview: fail if any change is proposed (a drift check). */
  expectNoChanges?: boolean;
  /**
   * Pulumi update plans. preview with `save`: record the planned operations under `id`; up with
   * `apply`: perform exactly the plan `id` (Pulumi refuses if the program or the stack now wants
   * something the plan does not allow).
   */
  plan?: { id: string; mode: 'save' | 'apply' };
}

export interface StackOutput {
  value: unknown;
  secret: boolean;
}
export type StackOutputs = Record<string, StackOutput>;

export interface OperationResult {
  operation: OperationKind;
  stack: string;
  /** Resource changes by op (create: 3, same: 10, ...). */
  changes: Record<string, number>;
  /** Present for up: stack outputs with secret values replaced by "[secret]". */
  outputs?: StackOutputs;
  durationMs: number;
}

export interface StackSummary {
  name: string;
  lastUpdate?: string;
  updateInProgress: boolean;
  resourceCount?: number;
}

export interface HistoryEntry {
  version: number;
  kind: string;
  result: string;
  startTime: string;
  endTime?: string;
  message: string;
  resourceChanges?: Record<string, number>;
}

export interface DestroyOptions {
  /** Also remove the stack (its state and config) after destroying its resources. */
  remove?: boolean;
}

export interface StackEngine {
  /**
   * Resolves when operations can run (e.g. the Pulumi CLI is present and recent enough); rejects
   * with the typed error otherwise. The service checks it before accepting a job (503).
   */
  ready?(): Promise<void>;
  up(stack: string, spec: StackConfig, ctx?: OperationContext): Promise<OperationResult>;
  preview(stack: string, spec: StackConfig, ctx?: OperationContext): Promise<OperationResult>;
  refresh(stack: string, ctx?: OperationContext): Promise<OperationResult>;
  destroy(stack: string, opts?: DestroyOptions, ctx?: OperationContext): Promise<OperationResult>;
  outputs(stack: string): Promise<StackOutputs>;
  listStacks(): Promise<StackSummary[]>;
  history(stack: string, opts?: { pageSize?: number; page?: number }): Promise<HistoryEntry[]>;
}
