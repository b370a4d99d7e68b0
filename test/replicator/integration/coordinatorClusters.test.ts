// The mesh's clusters come from etcd's epoch keys, which outlive every incarnation: a replicator that
// starts while every member of a cluster is gone still knows the cluster exists, so its datagrams for it
// wait for a member instead of going nowhere uncounted (issue 10, simulator seed 7027).
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Coordinator } from '../../../replicator/coordination/coordinator.ts';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { waitFor } from '../../harness/wait.ts';

describe('coordination: the mesh clusters from the epoch keys', function () {
  this.timeout(60_000);
  const etcd = useEtcdCluster({ size: 1 });

  it('a coordinator learns a cluster whose members have all left', async () => {
    const mesh = `clusters${process.pid}`;
    const make = (cluster: string) =>
      new Coordinator(
        {
          mesh,
          cluster,
          instance: 'r-0',
          endpoints: etcd.cluster.endpoints,
          leaseTtlSeconds: 2,
          dialTimeoutMs: 2000,
          record: {
            id: `${cluster}/r-0`,
            cluster,
            instance: 'r-0',
            address: '127.0.0.1',
            port: 1,
            ingressPorts: [1],
            metricsPort: 1,
            startedAt: new Date().toISOString(),
          },
        },
        pino({ level: 'silent' }),
      );
    const gcp = make('gcp');
    await gcp.start();
    await gcp.stop(); // revokes its lease: no member record of gcp is left
    const aws = make('aws');
    let clusters: string[] | undefined;
    let members: string[] | undefined;
    aws.on('clusters', (c) => (clusters = c));
    aws.on('members', (m) => (members = m.map((r) => r.id)));
    try {
      await aws.start();
      await waitFor(() => clusters !== undefined && members !== undefined, {
        timeoutMs: 10_000,
        what: 'the clusters and members events',
      });
      assert.deepEqual(members, ['aws/r-0']);
      assert.deepEqual([...clusters!].sort(), ['aws', 'gcp']);
    } finally {
      await aws.stop();
    }
  });
});
