/* eslint-disable @typescript-eslint/no-explicit-any -- resource inputs are untyped JSON */
// The resource graph a program run registers under mocks, as a policy engine sees it (in the spirit of
// Pulumi CrossGuard's stack policies): every resource with its inputs, its parent, and its dependencies:
// explicit `dependsOn` (a component expands to all its descendants, as the engine does), the provider,
// and the implicit ones carried by the Outputs in its inputs. Pulumi creates a resource after its
// dependencies and deletes it before them, so "A depends on B" answers both ordering questions.
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../../../infra/config/schema.ts';
import type { RunResult } from '../harness.ts';

export interface GraphNode {
  key: string;
  type: string;
  name: string;
  custom: boolean;
  /** Inputs as the engine received them (custom resources), or the SDK props (components). */
  inputs: Record<string, any>;
  parent?: string;
  deps: Set<string>;
}

export class ResourceGraph {
  readonly nodes = new Map<string, GraphNode>();
  readonly children = new Map<string, string[]>();
  constructor(readonly spec: StackConfig) {}

  ofType(type: string): GraphNode[] {
    return [...this.nodes.values()].filter((n) => n.type === type);
  }
  find(type: string, pred: (n: GraphNode) => boolean = () => true): GraphNode[] {
    return this.ofType(type).filter(pred);
  }
  byName(name: string): GraphNode | undefined {
    return [...this.nodes.values()].find((n) => n.name === name);
  }
  /** Every transitive dependency of a node. */
  closure(key: string): Set<string> {
    const seen = new Set<string>();
    const stack = [key];
    while (stack.length > 0) {
      const k = stack.pop()!;
      for (const d of this.nodes.get(k)?.deps ?? []) {
        if (!seen.has(d)) {
          seen.add(d);
          stack.push(d);
        }
      }
    }
    return seen;
  }
  dependsOn(a: GraphNode, b: GraphNode): boolean {
    return this.closure(a.key).has(b.key);
  }
  /** The enclosing component (ancestor) whose name starts with `prefix`, e.g. "aws-workloads". */
  ancestors(n: GraphNode): GraphNode[] {
    const out: GraphNode[] = [];
    let p = n.parent;
    while (p) {
      const node = this.nodes.get(p);
      if (!node) break;
      out.push(node);
      p = node.parent;
    }
    return out;
  }
  /** The cloud whose cluster/workloads a Kubernetes resource belongs to (by component name prefix). */
  cloudOf(n: GraphNode): string | undefined {
    for (const c of ['aws', 'gcp', 'azure', 'local'])
      if (n.name === c || n.name.startsWith(`${c}-`)) return c;
    return undefined;
  }
}

const keyOf = (type: string, name: string) => `${type}::${name}`;

function collectResources(v: unknown, out: Promise<Set<pulumi.Resource>>[], seen: Set<unknown>): void {
  if (v === null || v === undefined || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (pulumi.Output.isInstance(v)) {
    const o = v as any;
    out.push(typeof o.allResources === 'function' ? o.allResources() : Promise.resolve(o.resources()));
    return;
  }
  if (pulumi.Resource.isInstance(v)) return;
  if (v instanceof Promise) return;
  for (const x of Array.isArray(v) ? v : Object.values(v as object)) collectResources(x, out, seen);
}

export async function buildGraph(run: RunResult, spec: StackConfig): Promise<ResourceGraph> {
  const g = new ResourceGraph(spec);
  const keyByResource = new Map<pulumi.Resource, string>();
  for (const p of run.props) keyByResource.set(p.resource, keyOf(p.type, p.name));
  const registered = new Map(run.resources.map((r) => [keyOf(r.type, r.name), r]));
  for (const p of run.props) {
    const key = keyOf(p.type, p.name);
    const reg = registered.get(key);
    const parent = p.opts.parent ? keyByResource.get(p.opts.parent) : undefined;
    g.nodes.set(key, {
      key,
      type: p.type,
      name: p.name,
      custom: reg !== undefined,
      inputs: reg?.inputs ?? (p.props as Record<string, any>),
      parent,
      deps: new Set(),
    });
    if (parent) g.children.set(parent, [...(g.children.get(parent) ?? []), key]);
  }
  const descendants = (k: string): string[] =>
    (g.children.get(k) ?? []).flatMap((c) => [c, ...descendants(c)]);
  for (const p of run.props) {
    const node = g.nodes.get(keyOf(p.type, p.name))!;
    const explicit: pulumi.Resource[] = [];
    const d = p.opts.dependsOn as unknown;
    if (Array.isArray(d)) explicit.push(...d.filter((x) => pulumi.Resource.isInstance(x)));
    else if (pulumi.Resource.isInstance(d)) explicit.push(d);
    const provider = (p.opts as pulumi.CustomResourceOptions).provider;
    if (provider) explicit.push(provider);
    const pending: Promise<Set<pulumi.Resource>>[] = [];
    collectResources(p.props, pending, new Set());
    for (const set of await Promise.all(pending)) explicit.push(...set);
    for (const r of explicit) {
      const k = keyByResource.get(r);
      if (!k || k === node.key) continue;
      node.deps.add(k);
      // Depending on a component means depending on everything under it.
      if (!g.nodes.get(k)?.custom) for (const c of descendants(k)) node.deps.add(c);
    }
  }
  return g;
}
