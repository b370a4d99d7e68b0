// Issue 10 D5 against a real etcd: a process whose lease lapsed must not re-register over a newer
// incarnation of the same identity (split brain: both would replicate with different epochs).
// v1: AssertionError: the lapsed incarnation (epoch 1) overwrote the member record of epoch 2
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { Coordinator } from '../../../replicator/coordination/coordinator.ts';
import { keys, parseMemberRecord } from '../../../replicator/coordination/keys.ts';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { waitFor } from '../../harness/wait.ts';

describe('coordination: fenced re-registration (issue 10 D5)', function () {
  this.timeout(60_000);
  const etcd = useEtcdCluster({ size: 1 });

  it('a lapsed incarnation does not overwrite a newer one of the same identity; it is fenced out', async () => {
    const mesh = `fence${process.pid}`;
    const record = {
      id: 'aws/r-0',
      cluster: 'aws',
      instance: 'r-0',
      address: '127.0.0.1',
      port: 1,
      ingressPorts: [1],
      metricsPort: 1,
      startedAt: new Date().toISOString(),
    };
    const make = () =>
      new Coordinator(
        {
          mesh,
          cluster: 'aws',
          instance: 'r-0',
          endpoints: etcd.cluster.endpoints,
          leaseTtlSeconds: 2,
          dialTimeoutMs: 2000,
          record,
        },
        pino({ level: 'silent' }),
      );
    const client = new Etcd3({ hosts: etcd.cluster.endpoints });
    const old = make();
    const fresh = make();
    try {
      assert.equal(await old.start(), 1);
      let fenced = false;
      old.on('fenced', () => (fenced = true));
      // A new process of the same identity starts (the old one looks dead to its supervisor).
      assert.equal(await fresh.start(), 2);
      const memberKey = keys.member(mesh, 'aws', 'r-0');
      const epochOf = async () => parseMemberRecord((await client.get(memberKey).string()) ?? '')?.epoch;
      assert.equal(await epochOf(), 2);
      // The old process's lease lapses while it is still running (a long GC pause, a partition from etcd).
      const leases = await client.leaseClient.leaseLeases();
      for (const l of leases.leases) {
        const ttl = await client.leaseClient.leaseTimeToLive({ ID: l.ID, keys: true });
        if (!ttl.keys.some((k) => k.toString() === memberKey))
          await client.leaseClient.leaseRevoke({ ID: l.ID }).catch(() => {});
      }
      // Either it re-registers (v1) or it notices it is fenced out (v2).
      await waitFor(async () => fenced || (await epochOf()) !== 2, {
        timeoutMs: 15_000,
        what: 'the lapsed incarnation reacts to its lost lease',
      });
      assert.equal(
        await epochOf(),
        2,
        `the lapsed incarnation (epoch 1) overwrote the member record of epoch 2`,
      );
      assert.equal(fenced, true);
    } finally {
      await old.stop();
      await fresh.stop();
      client.close();
    }
  });
});
