// The local target's dynamic resources. Pulumi serializes a dynamic provider's functions (closure
// serialization) and runs them in a separate provider process, so a provider here captures only three
// strings — its kind, tsx's loader URL and the absolute URL of providers/index.ts — and imports the
// real implementation at call time. That keeps the launch code in ordinary, testable modules shared
// with `npm run local` instead of in serialized closures.
import * as pulumi from '@pulumi/pulumi';
import type { Kind } from './providers/index.ts';
import type { ClusterKeyInputs } from './providers/clusterKey.ts';
import type { EchoInputs } from './providers/echo.ts';
import type { EtcdInputs } from './providers/etcd.ts';
import type { PrometheusInputs } from './providers/prometheus.ts';
import type { ReplicatorInputs } from './providers/replicator.ts';

const IMPL_URL = new URL('./providers/index.ts', import.meta.url).href;
const TSX_API_URL = import.meta.resolve('tsx/esm/api');

/** A dynamic provider whose methods delegate to providers/index.ts's dispatch(kind, ...). */
export function localProvider(kind: Kind): pulumi.dynamic.ResourceProvider {
  const implUrl = IMPL_URL;
  const tsxApiUrl = TSX_API_URL;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- provider results are untyped JSON for the engine
  const call = async (method: string, args: unknown[]): Promise<any> => {
    const g = globalThis as {
      __udpmeshLocalImpl?: Promise<{ dispatch: (...a: unknown[]) => Promise<unknown> }>;
    };
    g.__udpmeshLocalImpl ??= import(tsxApiUrl).then((tsx) => {
      tsx.register();
      return import(implUrl);
    });
    const impl = await g.__udpmeshLocalImpl;
    return impl.dispatch(kind, method, args);
  };
  return {
    create: (inputs) => call('create', [inputs]),
    read: (id, props) => call('read', [id, props]),
    diff: (id, olds, news) => call('diff', [id, olds, news]),
    update: (id, olds, news) => call('update', [id, olds, news]),
    delete: (id, props) => call('delete', [id, props]),
  };
}

type Inputs<T> = { [K in keyof T]: pulumi.Input<T[K]> };

// deleteBeforeReplace everywhere: a replacement binds the same address:port as the one it replaces.
function opts(
  o: pulumi.CustomResourceOptions | undefined,
  secrets: string[] = [],
): pulumi.CustomResourceOptions {
  return {
    ...o,
    deleteBeforeReplace: true,
    additionalSecretOutputs: [...(o?.additionalSecretOutputs ?? []), ...secrets],
  };
}

export class LocalClusterKey extends pulumi.dynamic.Resource {
  declare readonly key: pulumi.Output<string>;
  constructor(name: string, args: Inputs<ClusterKeyInputs>, o?: pulumi.CustomResourceOptions) {
    super(
      localProvider('clusterKey'),
      name,
      { ...args, key: undefined },
      opts(o, ['key']),
      'udpmesh',
      'LocalClusterKey',
    );
  }
}

export class LocalEtcdCluster extends pulumi.dynamic.Resource {
  declare readonly endpoints: pulumi.Output<string[]>;
  declare readonly running: pulumi.Output<boolean>;
  constructor(name: string, args: Inputs<EtcdInputs>, o?: pulumi.CustomResourceOptions) {
    super(
      localProvider('etcd'),
      name,
      { ...args, endpoints: undefined, memberStates: undefined, running: undefined },
      opts(o),
      'udpmesh',
      'LocalEtcdCluster',
    );
  }
}

export class LocalEchoBackend extends pulumi.dynamic.Resource {
  declare readonly endpoint: pulumi.Output<string>;
  declare readonly pid: pulumi.Output<number>;
  declare readonly running: pulumi.Output<boolean>;
  constructor(name: string, args: Inputs<EchoInputs>, o?: pulumi.CustomResourceOptions) {
    super(
      localProvider('echo'),
      name,
      { ...args, endpoint: undefined, pid: undefined, running: undefined },
      opts(o),
      'udpmesh',
      'LocalEchoBackend',
    );
  }
}

export class LocalReplicator extends pulumi.dynamic.Resource {
  declare readonly metricsUrl: pulumi.Output<string>;
  declare readonly pid: pulumi.Output<number>;
  declare readonly running: pulumi.Output<boolean>;
  constructor(name: string, args: Inputs<ReplicatorInputs>, o?: pulumi.CustomResourceOptions) {
    super(
      localProvider('replicator'),
      name,
      { ...args, metricsUrl: undefined, pid: undefined, running: undefined, configHash: undefined },
      opts(o, ['clusterKey']),
      'udpmesh',
      'LocalReplicator',
    );
  }
}

export class LocalPrometheus extends pulumi.dynamic.Resource {
  declare readonly url: pulumi.Output<string>;
  declare readonly running: pulumi.Output<boolean>;
  constructor(name: string, args: Inputs<PrometheusInputs>, o?: pulumi.CustomResourceOptions) {
    super(
      localProvider('prometheus'),
      name,
      { ...args, url: undefined, running: undefined, configHash: undefined },
      opts(o),
      'udpmesh',
      'LocalPrometheus',
    );
  }
}
