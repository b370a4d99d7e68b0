// Graceful drain of a real process: SIGTERM while a stream flows into aws. During the drain /readyz
// answers 503 and new sessions are refused (draining); the process exits 0 once everything it accepted
// is acknowledged, and every datagram it accepted (what its own backend got) reached the other clusters.
import assert from 'node:assert/strict';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import { startMesh, type Mesh } from '../../harness/mesh.ts';
import { waitFor } from '../../harness/wait.ts';
import { dropped, logRecords, scrape, sumOf, UdpClient } from './support/probe.ts';

describe('behaviour: graceful drain on SIGTERM', function () {
  this.timeout(45_000);
  const etcd = useEtcdCluster({ size: 1 });
  let mesh: Mesh | undefined;
  let run: LoadRun | undefined;
  let probe: UdpClient | undefined;

  afterEach(async function () {
    this.timeout(30_000);
    if (this.currentTest?.state === 'failed' && mesh) console.log(await mesh.diagnostics(40));
    await run?.close();
    await probe?.close();
    await mesh?.stop();
    mesh = run = probe = undefined;
  });

  it('readyz 503 and new sessions refused while draining; exit 0; everything accepted reached the other clusters', async () => {
    mesh = await startMesh({ etcd: etcd.cluster, configOverrides: { drain: { deadlineMs: 15_000 } } });
    const aws = mesh.node('aws');
    run = await startLoad({
      host: '127.0.0.1',
      port: aws.ingressPort,
      sessions: 50,
      perSession: 400,
      rate: 2000,
    });
    await run.whenSent(2000);

    const exited = aws.proc.kill('SIGTERM');
    await waitFor(async () => (await aws.proc.httpStatus('/readyz')) === 503, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'aws /readyz answers 503 while draining',
      detail: () => aws.proc.logTail(20),
    });
    // A new client during the drain is refused; the existing sessions are still served.
    probe = await UdpClient.open(9999);
    probe.send(aws.ingressPort, 0, 3);
    let ingressDuringDrain = 0;
    await waitFor(
      async () => {
        const s = await scrape(aws.proc);
        ingressDuringDrain = sumOf(s, 'udpmesh_ingress_datagrams_total');
        return dropped(s, 'draining') >= 3;
      },
      {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: 'aws counts the new session as draining',
        detail: () => aws.proc.logTail(20),
      },
    );
    // The clients go away (the load balancer moved them); the drain then finishes by itself.
    const sentBeforeStop = run.sent;
    await run.close();
    const exit = await exited;
    assert.deepEqual(exit, { code: 0, signal: null }, `aws exit after SIGTERM\n${aws.proc.logTail(30)}`);
    const drainLog = logRecords(aws.proc).find(
      (r) => r.msg === 'drain complete' || r.msg === 'drain deadline reached',
    );
    assert.equal(drainLog?.msg, 'drain complete', `the drain did not complete: ${JSON.stringify(drainLog)}`);

    // What aws accepted is what its own backend got (local delivery happens at once, per datagram).
    const accepted = await aws.backend.snapshot();
    assert.ok(
      accepted.count >= ingressDuringDrain && accepted.count <= sentBeforeStop,
      `aws backend ${accepted.count}, ingress ${ingressDuringDrain}, sent ${sentBeforeStop}`,
    );
    assert.equal(
      accepted.seqsBySession().get(9999),
      undefined,
      'the session opened during the drain was delivered',
    );
    const missingAt = async (cloud: string): Promise<string[]> => {
      const log = await mesh!.node(cloud).backend.snapshot();
      const missing: string[] = [];
      for (let i = 0; i < accepted.count; i++) {
        if (!log.has(accepted.arrivalSession[i]!, accepted.arrivalSeq[i]!))
          missing.push(`${accepted.arrivalSession[i]}/${accepted.arrivalSeq[i]}`);
      }
      return missing;
    };
    await waitFor(
      async () => (await missingAt('gcp')).length === 0 && (await missingAt('azure')).length === 0,
      {
        timeoutMs: 15_000,
        what: `gcp and azure have all ${accepted.count} datagrams aws accepted`,
        detail: async () =>
          `gcp missing ${(await missingAt('gcp')).slice(0, 10).join(',')}; azure missing ${(await missingAt('azure')).slice(0, 10).join(',')}\n${await mesh!.diagnostics()}`,
      },
    );
    for (const cloud of ['gcp', 'azure']) {
      const log = await mesh.node(cloud).backend.snapshot();
      const v = log.orderViolations();
      assert.equal(v.violations, 0, `${cloud}: out of order or repeated: ${v.examples.join('; ')}`);
      assert.equal(log.distinct, accepted.count, `${cloud} got datagrams aws never accepted`);
    }
  });
});
