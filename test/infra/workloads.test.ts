// Config validation for what the workloads bind: every worker's replication port.
import assert from 'node:assert/strict';
import { parseStackConfig, StackConfigError } from '../../infra/config/schema.ts';

const issues = (raw: unknown): { key: string; message: string }[] => {
  try {
    parseStackConfig(raw);
    return [];
  } catch (e) {
    if (e instanceof StackConfigError) return e.issues;
    throw e;
  }
};

describe('workload config validation', () => {
  it("rejects a worker's replication port that clashes with an ingress, metrics or Istio port", () => {
    // Worker 1 of 2 binds 7947 = the ingress port.
    const a = issues({
      clouds: ['aws'],
      replicator: { workers: 2, replicationPort: 7946, ingressPorts: [7947] },
    });
    assert.ok(
      a.some((i) => i.key.startsWith('replicator.workers') && /clashes/.test(i.message)),
      JSON.stringify(a),
    );
    // Worker 2 of 3 binds 15020, Istio's agent port.
    const b = issues({ clouds: ['aws'], replicator: { workers: 3, replicationPort: 15018 } });
    assert.ok(
      b.some((i) => i.key.startsWith('replicator.workers') && /Istio/.test(i.message)),
      JSON.stringify(b),
    );
    const c = issues({ clouds: ['aws'], replicator: { workers: 4, replicationPort: 65534 } });
    assert.ok(
      c.some((i) => i.key === 'replicator.workers' && /65535/.test(i.message)),
      JSON.stringify(c),
    );
    assert.deepEqual(issues({ clouds: ['aws'], replicator: { workers: 4 } }), []);
  });

  it('rejects Alertmanager receivers without exactly one destination or with duplicate names', () => {
    const a = issues({ clouds: ['aws'], monitoring: { alertReceivers: [{ name: 'ops' }] } });
    assert.ok(a.some((i) => i.key === 'monitoring.alertReceivers[0]'));
    const b = issues({
      clouds: ['aws'],
      monitoring: {
        alertReceivers: [
          { name: 'ops', webhookUrl: 'https://a.example/x' },
          { name: 'ops', pagerdutyRoutingKey: 'k' },
        ],
      },
    });
    assert.ok(b.some((i) => i.key === 'monitoring.alertReceivers[1].name'));
  });
});
