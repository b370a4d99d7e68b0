// Engine events as the automation layer exposes them: a compact, JSON-safe projection of Pulumi's
// EngineEvent. Resource inputs/outputs are deliberately dropped (they are large and may hold
// secrets); what a portal needs is what is happening to which resource, diagnostics and the summary.
import type { EngineEvent } from '@pulumi/pulumi/automation/index.js';

export type ResourceOp = string; // Pulumi OpType: create, update, delete, replace, same, refresh, ...

export type StackEvent =
  | { type: 'prelude'; config: Record<string, string> }
  | {
      type: 'resource-pre';
      op: ResourceOp;
      urn: string;
      resourceType: string;
      planning?: boolean;
      /** Names of the properties that change (values are never streamed: they may be secret). */
      diffs?: string[];
      /** Per property: add, update, delete, or their -replace forms (a change forcing replacement). */
      detailedDiff?: Record<string, string>;
    }
  | { type: 'resource-outputs'; op: ResourceOp; urn: string; resourceType: string; planning?: boolean }
  | { type: 'resource-failed'; op: ResourceOp; urn: string; resourceType: string }
  | { type: 'diagnostic'; severity: string; message: string; urn?: string }
  | { type: 'stdout'; message: string }
  | { type: 'policy'; policyName: string; enforcementLevel: string; message: string; urn?: string }
  | {
      type: 'summary';
      resourceChanges: Record<string, number>;
      durationSeconds: number;
      maybeCorrupt: boolean;
    }
  | { type: 'cancel' };

export type StackEventListener = (event: StackEvent) => void;

/** Projects a Pulumi EngineEvent; returns undefined for event kinds a portal has no use for. */
export function fromEngineEvent(e: EngineEvent): StackEvent | undefined {
  if (e.preludeEvent) return { type: 'prelude', config: { ...e.preludeEvent.config } };
  if (e.resourcePreEvent) {
    const m = e.resourcePreEvent.metadata;
    const detailed: Record<string, string> = {};
    for (const [k, d] of Object.entries(m.detailedDiff ?? {})) detailed[k] = String(d.diffKind);
    return {
      type: 'resource-pre',
      op: m.op,
      urn: m.urn,
      resourceType: m.type,
      ...(e.resourcePreEvent.planning ? { planning: true } : {}),
      ...(m.diffs?.length ? { diffs: [...m.diffs] } : {}),
      ...(Object.keys(detailed).length ? { detailedDiff: detailed } : {}),
    };
  }
  if (e.resOutputsEvent) {
    const m = e.resOutputsEvent.metadata;
    return {
      type: 'resource-outputs',
      op: m.op,
      urn: m.urn,
      resourceType: m.type,
      ...(e.resOutputsEvent.planning ? { planning: true } : {}),
    };
  }
  if (e.resOpFailedEvent) {
    const m = e.resOpFailedEvent.metadata;
    return { type: 'resource-failed', op: m.op, urn: m.urn, resourceType: m.type };
  }
  if (e.diagnosticEvent) {
    const d = e.diagnosticEvent;
    if (d.ephemeral) return undefined;
    return {
      type: 'diagnostic',
      severity: d.severity,
      message: stripAnsi(d.message),
      ...(d.urn ? { urn: d.urn } : {}),
    };
  }
  if (e.stdoutEvent) return { type: 'stdout', message: stripAnsi(e.stdoutEvent.message) };
  if (e.policyEvent) {
    const p = e.policyEvent;
    return {
      type: 'policy',
      policyName: p.policyName,
      enforcementLevel: p.enforcementLevel,
      message: stripAnsi(p.message),
      ...(p.resourceUrn ? { urn: p.resourceUrn } : {}),
    };
  }
  if (e.summaryEvent) {
    const s = e.summaryEvent;
    const changes: Record<string, number> = {};
    for (const [k, v] of Object.entries(s.resourceChanges ?? {})) if (typeof v === 'number') changes[k] = v;
    return {
      type: 'summary',
      resourceChanges: changes,
      durationSeconds: s.durationSeconds,
      maybeCorrupt: s.maybeCorrupt,
    };
  }
  if (e.cancelEvent) return { type: 'cancel' };
  return undefined;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*[A-Za-z]|<\{%[a-z]*%\}>/g;
/** Removes terminal colour codes and Pulumi's `<{%reset%}>` colour directives. */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}
