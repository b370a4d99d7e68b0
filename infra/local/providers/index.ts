// Entry point of the local target's providers inside Pulumi's dynamic-provider process: resources.ts
// ships only a tiny closure that imports this module (by absolute URL, through tsx) and calls
// dispatch(kind, method, args). Everything else — process launch, state files, etcd clients — lives
// in ordinary modules here, outside Pulumi's closure serializer.
import * as clusterKey from './clusterKey.ts';
import * as echo from './echo.ts';
import * as etcd from './etcd.ts';
import * as prometheus from './prometheus.ts';
import * as replicator from './replicator.ts';

export const KINDS = { clusterKey, echo, etcd, prometheus, replicator } as const;
export type Kind = keyof typeof KINDS;
export type Method = 'create' | 'read' | 'diff' | 'update' | 'delete';

interface Impl {
  create(inputs: unknown): unknown;
  read(id: string, props: unknown): unknown;
  diff(id: string, olds: unknown, news: unknown): unknown;
  update(id: string, olds: unknown, news: unknown): unknown;
  remove(id: string, props: unknown): unknown;
}

export async function dispatch(kind: Kind, method: Method, args: unknown[]): Promise<unknown> {
  const impl = KINDS[kind] as unknown as Impl | undefined;
  if (!impl) throw new Error(`udpmesh local target: unknown resource kind ${String(kind)}`);
  const [a, b, c] = args;
  switch (method) {
    case 'create':
      return impl.create(a);
    case 'read': {
      const props = await impl.read(a as string, b);
      return { id: a, props };
    }
    case 'diff':
      return impl.diff(a as string, b, c);
    case 'update':
      return impl.update(a as string, b, c);
    case 'delete':
      return impl.remove(a as string, b);
    default:
      throw new Error(`udpmesh local target: unknown method ${String(method)}`);
  }
}
