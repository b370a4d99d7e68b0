import type * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { Cloud } from '../config/schema.ts';

/**
 * Cluster add-ons that Kubernetes objects must wait for (created after, deleted before), by what needs
 * them. Empty where the cloud provides the capability out of the box.
 */
export interface ClusterAddons {
  /** Services of type LoadBalancer (and charts creating one): e.g. the AWS LB controller's webhook. */
  loadBalancers: pulumi.Resource[];
  /** PVCs / StatefulSets: the default StorageClass and its CSI driver. */
  storage: pulumi.Resource[];
  /** HorizontalPodAutoscalers: metrics-server. */
  metrics: pulumi.Resource[];
  /** NetworkPolicies: the enforcing CNI configuration. */
  networkPolicy: pulumi.Resource[];
}

export const NO_ADDONS: ClusterAddons = { loadBalancers: [], storage: [], metrics: [], networkPolicy: [] };

/** What every cluster component exposes to the rest of the program. */
export interface ClusterHandle {
  cloud: Cloud;
  clusterName: pulumi.Output<string>;
  /** Kubeconfig (secret). */
  kubeconfig: pulumi.Output<string>;
  provider: k8s.Provider;
  /** Optional so targets without add-ons (e.g. a local cluster) need not declare any. */
  addons?: ClusterAddons;
}
