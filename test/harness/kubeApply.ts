// Server-side apply of plain manifest objects over HTTPS, as `kubectl apply --server-side` does it:
// kind → resource through the server's discovery documents, then PATCH with application/apply-patch+yaml
// (JSON is YAML) under one field manager. Rejections are returned, not thrown, so a test can list
// every object the server refused with the server's own reason.
import type { KubeApiServer } from './kubeApiServer.ts';
import { waitFor } from './wait.ts';

export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface Rejection {
  /** kind/namespace/name */
  object: string;
  status: number;
  reason: string;
  message: string;
}

interface ResourceInfo {
  name: string;
  namespaced: boolean;
}

export const FIELD_MANAGER = 'udpmesh-render';

export function objectId(o: ManifestObject): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

function groupVersionPath(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

export class KubeApplier {
  private readonly discovery = new Map<string, Map<string, ResourceInfo>>();

  constructor(
    private readonly api: KubeApiServer,
    private readonly fieldManager = FIELD_MANAGER,
  ) {}

  /** The resource for apiVersion+kind, or undefined when the server does not serve it (yet). */
  async resource(apiVersion: string, kind: string): Promise<ResourceInfo | undefined> {
    let kinds = this.discovery.get(apiVersion);
    if (!kinds?.has(kind)) {
      const r = await this.api.request('GET', groupVersionPath(apiVersion));
      kinds = new Map();
      if (r.status === 200) {
        for (const res of (r.json?.resources ?? []) as { name: string; kind: string; namespaced: boolean }[])
          if (!res.name.includes('/')) kinds.set(res.kind, { name: res.name, namespaced: res.namespaced });
      }
      this.discovery.set(apiVersion, kinds);
    }
    return kinds.get(kind);
  }

  /** The object's URL path (without query), or a Rejection-style error when the kind is not served. */
  async path(o: ManifestObject): Promise<string> {
    const res = await this.resource(o.apiVersion, o.kind);
    if (!res) throw new Error(`the server does not serve ${o.apiVersion} ${o.kind}`);
    const ns = res.namespaced ? `/namespaces/${o.metadata.namespace ?? 'default'}` : '';
    return `${groupVersionPath(o.apiVersion)}${ns}/${res.name}/${o.metadata.name}`;
  }

  /** Server-side apply; returns undefined when accepted, else the server's rejection. */
  async apply(o: ManifestObject, opts: { dryRun?: boolean } = {}): Promise<Rejection | undefined> {
    let path: string;
    try {
      path = await this.path(o);
    } catch (err) {
      return { object: objectId(o), status: 0, reason: 'NotServed', message: (err as Error).message };
    }
    const q = new URLSearchParams({ fieldManager: this.fieldManager, force: 'true' });
    if (opts.dryRun) q.set('dryRun', 'All');
    const r = await this.api.request('PATCH', `${path}?${q}`, {
      body: o,
      contentType: 'application/apply-patch+yaml',
    });
    if (r.status === 200 || r.status === 201) return undefined;
    return {
      object: objectId(o),
      status: r.status,
      reason: String(r.json?.reason ?? ''),
      message: String(r.json?.message ?? r.text),
    };
  }

  async get(o: ManifestObject): Promise<Record<string, unknown> | undefined> {
    const r = await this.api.request('GET', await this.path(o));
    return r.status === 200 ? r.json : undefined;
  }

  /** Deletes the object (background propagation: no finalizer, gone at once with no controllers). */
  async delete(o: ManifestObject): Promise<void> {
    const r = await this.api.request('DELETE', `${await this.path(o)}?propagationPolicy=Background`);
    if (r.status !== 200 && r.status !== 202 && r.status !== 404)
      throw new Error(`DELETE ${objectId(o)}: HTTP ${r.status} ${r.text}`);
  }

  /** Waits until the CRD reports Established and its kind is served (discovery). */
  async waitEstablished(crd: ManifestObject, timeoutMs = 30_000): Promise<void> {
    const spec = crd.spec as {
      group: string;
      names: { kind: string };
      versions: { name: string; served: boolean }[];
    };
    await waitFor(
      async () => {
        const got = await this.get(crd);
        const conditions = ((got?.status as { conditions?: { type: string; status: string }[] })
          ?.conditions ?? []) as { type: string; status: string }[];
        if (!conditions.some((c) => c.type === 'Established' && c.status === 'True')) return false;
        for (const v of spec.versions.filter((x) => x.served)) {
          this.discovery.delete(`${spec.group}/${v.name}`);
          if (!(await this.resource(`${spec.group}/${v.name}`, spec.names.kind))) return false;
        }
        return true;
      },
      {
        timeoutMs,
        intervalMs: 200,
        what: `CRD ${crd.metadata.name} is Established and served`,
        detail: async () => JSON.stringify((await this.get(crd))?.status ?? {}),
      },
    );
  }
}
