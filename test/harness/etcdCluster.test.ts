import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { useEtcdCluster } from './etcdFixture.ts';

describe('harness: etcd cluster fixture (real etcd)', () => {
  const etcd = useEtcdCluster();

  it('serves reads and writes, survives a leader SIGKILL, and the member restarts with its data', async function () {
    this.timeout(45_000);
    const c = etcd.cluster;
    assert.equal(c.members.length, 3);
    const client = new Etcd3({ hosts: c.endpoints });
    try {
      await client.put('/harness/k').value('v1');
      const leader = await c.leader();
      const oldPid = leader.pid;
      await leader.kill('SIGKILL');
      assert.equal(leader.running, false);
      const next = await c.leader();
      assert.notEqual(next.name, leader.name);
      await client.put('/harness/k').value('v2');
      await leader.restart();
      assert.ok(leader.running);
      assert.notEqual(leader.pid, oldPid);
      await c.waitHealthy();
      const only = new Etcd3({ hosts: leader.clientUrl });
      try {
        assert.equal(await only.get('/harness/k').string(), 'v2');
      } finally {
        only.close();
      }
    } finally {
      client.close();
    }
  });
});
