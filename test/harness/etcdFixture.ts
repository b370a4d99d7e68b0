// The etcd fixture for mocha: a real N-member etcd cluster on loopback (replicator/local/etcdCluster.ts)
// started in before() and stopped in after() of the enclosing describe, even when tests fail.
import { cleanupOnSignals } from '../../replicator/local/children.ts';
import {
  startEtcdCluster,
  type EtcdCluster,
  type EtcdClusterOptions,
} from '../../replicator/local/etcdCluster.ts';

export type { EtcdCluster, EtcdMember } from '../../replicator/local/etcdCluster.ts';

cleanupOnSignals();

export interface EtcdFixture {
  /** The running cluster (throws outside the describe's tests). */
  readonly cluster: EtcdCluster;
}

/** Call inside describe(): starts the cluster before the tests, stops it after them. */
export function useEtcdCluster(opts: EtcdClusterOptions = {}): EtcdFixture {
  let cluster: EtcdCluster | undefined;
  before(async function () {
    this.timeout(60_000);
    cluster = await startEtcdCluster(opts);
  });
  after(async function () {
    this.timeout(30_000);
    await cluster?.stop();
    cluster = undefined;
  });
  return {
    get cluster(): EtcdCluster {
      if (!cluster)
        throw new Error(
          'etcd cluster is not running (used outside the describe that called useEtcdCluster?)',
        );
      return cluster;
    },
  };
}
