// Registers plain Kubernetes objects (from infra/manifests) as typed @pulumi/kubernetes resources
// through one cluster's provider. Unknown kinds (custom resources) become apiextensions.CustomResource.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { K8sObject } from '../manifests/types.ts';
import type { ClusterAddons } from './types.ts';

type Ctor = new (name: string, args: never, opts?: pulumi.CustomResourceOptions) => pulumi.CustomResource;

const KINDS: Record<string, Ctor> = {
  'v1/Namespace': k8s.core.v1.Namespace as unknown as Ctor,
  'v1/ServiceAccount': k8s.core.v1.ServiceAccount as unknown as Ctor,
  'v1/ConfigMap': k8s.core.v1.ConfigMap as unknown as Ctor,
  'v1/Secret': k8s.core.v1.Secret as unknown as Ctor,
  'v1/Service': k8s.core.v1.Service as unknown as Ctor,
  'apps/v1/Deployment': k8s.apps.v1.Deployment as unknown as Ctor,
  'apps/v1/StatefulSet': k8s.apps.v1.StatefulSet as unknown as Ctor,
  'policy/v1/PodDisruptionBudget': k8s.policy.v1.PodDisruptionBudget as unknown as Ctor,
  'autoscaling/v2/HorizontalPodAutoscaler': k8s.autoscaling.v2.HorizontalPodAutoscaler as unknown as Ctor,
  'networking.k8s.io/v1/NetworkPolicy': k8s.networking.v1.NetworkPolicy as unknown as Ctor,
  'rbac.authorization.k8s.io/v1/Role': k8s.rbac.v1.Role as unknown as Ctor,
  'rbac.authorization.k8s.io/v1/RoleBinding': k8s.rbac.v1.RoleBinding as unknown as Ctor,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': k8s.apiextensions.v1
    .CustomResourceDefinition as unknown as Ctor,
};

export interface ApplyOptions {
  prefix: string;
  provider: k8s.Provider;
  parent: pulumi.Resource;
  /** Resources custom resources wait for (CRDs, Helm releases installing CRDs). */
  crdDependencies: pulumi.Resource[];
  /** Resources pods wait for: istiod, whose webhook injects the sidecar at pod creation. */
  podDependencies?: pulumi.Resource[];
  /** The cluster's add-ons, by the kinds that need them (components/types.ts). */
  addons?: ClusterAddons;
}

/** What an object must be created after (and deleted before), beyond its namespace. */
function kindDependencies(obj: K8sObject, o: ApplyOptions): pulumi.Resource[] {
  const a = o.addons;
  const spec = obj.spec as { type?: string } | undefined;
  switch (obj.kind) {
    case 'Service':
      return spec?.type === 'LoadBalancer' ? [...(a?.loadBalancers ?? [])] : [];
    case 'Deployment':
      return [...(o.podDependencies ?? [])];
    case 'StatefulSet':
      return [...(o.podDependencies ?? []), ...(a?.storage ?? [])];
    case 'HorizontalPodAutoscaler':
      return [...(a?.metrics ?? [])];
    case 'NetworkPolicy':
      return [...(a?.networkPolicy ?? [])];
    default:
      return [];
  }
}

export function applyManifests(objects: K8sObject[], o: ApplyOptions): Map<string, pulumi.CustomResource> {
  const out = new Map<string, pulumi.CustomResource>();
  const created: pulumi.Resource[] = [];
  let namespace: pulumi.Resource | undefined;
  for (const obj of objects) {
    const id = `${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const name = `${o.prefix}-${obj.kind.toLowerCase()}-${obj.metadata.namespace ? `${obj.metadata.namespace}-` : ''}${obj.metadata.name}`;
    const ctor = KINDS[`${obj.apiVersion}/${obj.kind}`];
    const dependsOn = [
      ...(namespace && obj.metadata.namespace ? [namespace] : []),
      ...kindDependencies(obj, o),
    ];
    const isSecret = obj.kind === 'Secret';
    const opts: pulumi.CustomResourceOptions = {
      parent: o.parent,
      provider: o.provider,
      dependsOn: ctor
        ? dependsOn
        : [
            ...dependsOn,
            ...o.crdDependencies,
            ...created.filter((r) => r instanceof k8s.apiextensions.v1.CustomResourceDefinition),
          ],
      ...(isSecret ? { additionalSecretOutputs: ['data', 'stringData'] } : {}),
    };
    let res: pulumi.CustomResource;
    if (ctor) {
      const { apiVersion: _v, kind: _k, ...rest } = obj;
      const args = isSecret
        ? { ...rest, stringData: pulumi.secret(rest.stringData as Record<string, pulumi.Input<string>>) }
        : rest;
      res = new ctor(name, args as never, opts);
    } else {
      res = new k8s.apiextensions.CustomResource(
        name,
        obj as unknown as k8s.apiextensions.CustomResourceArgs,
        opts,
      );
    }
    if (obj.kind === 'Namespace') namespace = res;
    created.push(res);
    out.set(id, res);
  }
  return out;
}
