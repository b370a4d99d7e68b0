import type * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import type { Cloud } from '../config/schema.ts';

/** What every cluster component exposes to the rest of the program. */
export interface ClusterHandle {
  cloud: Cloud;
  clusterName: pulumi.Output<string>;
  /** Kubeconfig (secret). */
  kubeconfig: pulumi.Output<string>;
  provider: k8s.Provider;
}
