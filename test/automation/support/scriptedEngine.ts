// A StackEngine driven by scripts: realistic engine-event sequences, failures, busy stacks, and
// operations held open until the test releases them (so concurrency is tested deterministically,
// without sleeps). It honours AbortSignal the way the Automation API does: a cancel event, then
// the call rejects with CancelledError.
import type {
  DestroyOptions,
  HistoryEntry,
  OperationContext,
  OperationKind,
  OperationResult,
  StackEngine,
  StackOutputs,
  StackSummary,
} from '../../../automation/engine.ts';
import {
  CancelledError,
  StackBusyError,
  StackNotFoundError,
  type AutomationError,
} from '../../../automation/errors.ts';
import type { StackEvent } from '../../../automation/events.ts';
import type { StackConfig } from '../../../automation/spec.ts';

export interface Script {
  /** Events emitted before the hold point (default: a realistic sequence for the operation). */
  before?: StackEvent[];
  /** Events emitted after the hold point. */
  after?: StackEvent[];
  /** Keep the operation running until release(stack) is called. */
  hold?: boolean;
  /** Reject with this error after the events (e.g. an EngineError with diagnostics). */
  fail?: AutomationError | Error;
  /** Reject at once as a stack locked elsewhere (ConcurrentUpdateError in the real engine). */
  lockedElsewhere?: boolean;
  /** Outputs the operation produces (un-redacted, as the Automation API returns them). */
  outputs?: StackOutputs;
  /**
   * With hold: stay held after the signal aborts, until release (an engine finishing the resource
   * operations in flight before it stops), then reject with CancelledError.
   */
  holdThroughAbort?: boolean;
}

export interface Call {
  op: OperationKind;
  stack: string;
  spec?: StackConfig;
  remove?: boolean;
  message?: string;
  /** Engine options the call got (targets, replace, refresh, expectNoChanges). */
  options?: Record<string, unknown>;
}

interface Held {
  release: () => void;
  released: Promise<void>;
}

const urn = (stack: string, type: string, name: string) => `urn:pulumi:${stack}::udpmesh::${type}::${name}`;

/** What `pulumi up` on a fresh udpmesh stack emits, abridged. */
export function realisticEvents(
  stack: string,
  op: OperationKind,
): { before: StackEvent[]; after: StackEvent[] } {
  const verb = op === 'destroy' ? 'delete' : op === 'refresh' ? 'refresh' : 'create';
  const planning = op === 'preview' ? { planning: true } : {};
  const res = (type: string, name: string): StackEvent[] => [
    {
      type: 'resource-pre',
      op: verb,
      urn: urn(stack, type, name),
      resourceType: type.split('$').pop()!,
      ...planning,
    },
    ...(op === 'preview'
      ? []
      : [
          {
            type: 'resource-outputs',
            op: verb,
            urn: urn(stack, type, name),
            resourceType: type.split('$').pop()!,
          } as StackEvent,
        ]),
  ];
  return {
    before: [
      { type: 'prelude', config: { 'udpmesh:clouds': '["aws"]', 'udpmesh:mesh': 'udpmesh' } },
      {
        type: 'resource-pre',
        op: op === 'destroy' ? 'delete' : 'same',
        urn: urn(stack, 'pulumi:pulumi:Stack', `udpmesh-${stack}`),
        resourceType: 'pulumi:pulumi:Stack',
      },
      ...res('udpmesh:aws:Network$aws:ec2/vpc:Vpc', 'udpmesh-aws-vpc'),
      {
        type: 'diagnostic',
        severity: 'info',
        message: 'creating EKS cluster (this takes ~10 minutes)\n',
        urn: urn(stack, 'aws:eks/cluster:Cluster', 'udpmesh-aws'),
      },
    ],
    after: [
      ...res('udpmesh:aws:Cluster$aws:eks/cluster:Cluster', 'udpmesh-aws'),
      ...res('udpmesh:replicator:Replicator$kubernetes:apps/v1:Deployment', 'replicator'),
      { type: 'summary', resourceChanges: { [verb]: 3, same: 1 }, durationSeconds: 12, maybeCorrupt: false },
    ],
  };
}

export class ScriptedEngine implements StackEngine {
  readonly calls: Call[] = [];
  private readonly scripts = new Map<string, Script[]>();
  private readonly held = new Map<string, Held>();
  private readonly startWaiters = new Map<string, (() => void)[]>();
  readonly stacks = new Map<string, { outputs: StackOutputs; history: HistoryEntry[] }>();
  running = 0;
  maxRunning = 0;
  /** Read calls (outputs, listStacks, history) made, running now, and the most at once. */
  readCalls = 0;
  readsRunning = 0;
  maxReadsRunning = 0;
  /** When set, reads wait for it (so concurrent reads can be observed). */
  readGate?: Promise<void>;
  /** What ready() answers (undefined: ready). */
  notReady?: AutomationError;

  async ready(): Promise<void> {
    if (this.notReady) throw this.notReady;
  }

  private async read<T>(f: () => T): Promise<T> {
    this.readCalls++;
    this.readsRunning++;
    this.maxReadsRunning = Math.max(this.maxReadsRunning, this.readsRunning);
    try {
      if (this.readGate) await this.readGate;
      return f();
    } finally {
      this.readsRunning--;
    }
  }

  /** Queue a script for the next operation on `stack` (FIFO; default script if none). */
  script(stack: string, s: Script): this {
    const list = this.scripts.get(stack) ?? [];
    list.push(s);
    this.scripts.set(stack, list);
    return this;
  }

  /** Resolves once an operation on `stack` has started (immediately if one is running). */
  started(stack: string): Promise<void> {
    if (this.held.has(stack)) return Promise.resolve();
    return new Promise((r) => this.startWaiters.set(stack, [...(this.startWaiters.get(stack) ?? []), r]));
  }

  release(stack: string): void {
    const h = this.held.get(stack);
    if (!h) throw new Error(`no held operation on ${stack}`);
    h.release();
  }

  isHeld(stack: string): boolean {
    return this.held.has(stack);
  }

  up(stack: string, spec: StackConfig, ctx?: OperationContext) {
    return this.run({ op: 'up', stack, spec, ...(ctx?.message ? { message: ctx.message } : {}) }, ctx);
  }
  preview(stack: string, spec: StackConfig, ctx?: OperationContext) {
    return this.run({ op: 'preview', stack, spec }, ctx);
  }
  /** Resource changes the next operations report (default create 3 / delete 3, same 1). */
  changes?: Record<string, number>;
  refresh(stack: string, ctx?: OperationContext) {
    return this.run({ op: 'refresh', stack }, ctx);
  }
  destroy(stack: string, opts?: DestroyOptions, ctx?: OperationContext) {
    return this.run({ op: 'destroy', stack, remove: !!opts?.remove }, ctx);
  }

  outputs(stack: string): Promise<StackOutputs> {
    return this.read(() => {
      const s = this.stacks.get(stack);
      if (!s) throw new StackNotFoundError(stack);
      return structuredClone(s.outputs);
    });
  }
  listStacks(): Promise<StackSummary[]> {
    return this.read(() =>
      [...this.stacks.keys()].sort().map((name) => ({ name, updateInProgress: this.held.has(name) })),
    );
  }
  history(stack: string): Promise<HistoryEntry[]> {
    return this.read(() => {
      const s = this.stacks.get(stack);
      if (!s) throw new StackNotFoundError(stack);
      return [...s.history].reverse();
    });
  }

  private async run(call: Call, ctx: OperationContext = {}): Promise<OperationResult> {
    const options = Object.fromEntries(
      (['targets', 'replace', 'refresh', 'expectNoChanges', 'plan'] as const)
        .filter((k) => ctx[k] !== undefined)
        .map((k) => [k, ctx[k]]),
    );
    this.calls.push(Object.keys(options).length ? { ...call, options } : call);
    const script = this.scripts.get(call.stack)?.shift() ?? {};
    if (script.lockedElsewhere)
      throw new StackBusyError(call.stack, undefined, 'the stack is locked by another update');
    if ((call.op === 'refresh' || call.op === 'destroy') && !this.stacks.has(call.stack))
      throw new StackNotFoundError(call.stack);
    const def = realisticEvents(call.stack, call.op);
    const emit = (events: StackEvent[]) => events.forEach((e) => ctx.onEvent?.(structuredClone(e)));
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    const started = Date.now();
    try {
      emit(script.before ?? def.before);
      if (script.hold) {
        let release!: () => void;
        const released = new Promise<void>((r) => (release = r));
        this.held.set(call.stack, { release, released });
        for (const w of this.startWaiters.get(call.stack) ?? []) w();
        this.startWaiters.delete(call.stack);
        const aborted = new Promise<'aborted'>((r) => {
          if (ctx.signal?.aborted) r('aborted');
          ctx.signal?.addEventListener('abort', () => r('aborted'), { once: true });
        });
        let outcome = await Promise.race([released.then(() => 'released' as const), aborted]);
        if (outcome === 'aborted' && script.holdThroughAbort) {
          await released;
          outcome = 'aborted';
        }
        this.held.delete(call.stack);
        if (outcome === 'aborted') {
          emit([{ type: 'cancel' }]);
          throw new CancelledError();
        }
      } else {
        for (const w of this.startWaiters.get(call.stack) ?? []) w();
        this.startWaiters.delete(call.stack);
      }
      emit(script.after ?? def.after);
      if (script.fail) throw script.fail;
      const changes = this.changes ?? { [call.op === 'destroy' ? 'delete' : 'create']: 3, same: 1 };
      const version = (this.stacks.get(call.stack)?.history.length ?? 0) + 1;
      const entry: HistoryEntry = {
        version,
        kind: call.op === 'up' ? 'update' : call.op,
        result: 'succeeded',
        startTime: new Date(started).toISOString(),
        endTime: new Date().toISOString(),
        message: call.message ?? '',
        resourceChanges: changes,
      };
      if (call.op === 'up') {
        const outputs = script.outputs ?? { clusters: { value: ['aws'], secret: false } };
        this.stacks.set(call.stack, {
          outputs,
          history: [...(this.stacks.get(call.stack)?.history ?? []), entry],
        });
        return {
          operation: 'up',
          stack: call.stack,
          changes,
          outputs: structuredClone(outputs),
          durationMs: Date.now() - started,
        };
      }
      if (call.op === 'destroy' && call.remove) this.stacks.delete(call.stack);
      else if (call.op !== 'preview') this.stacks.get(call.stack)?.history.push(entry);
      return { operation: call.op, stack: call.stack, changes, durationMs: Date.now() - started };
    } finally {
      this.running--;
    }
  }
}
