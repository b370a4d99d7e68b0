// Ingress limits on a real replicator process: deny and allow CIDR lists (clients bound to other
// loopback addresses), the per-client token bucket, and the session cap under a flood of new sources.
import assert from 'node:assert/strict';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startMesh, type Mesh } from '../../harness/mesh.ts';
import { waitFor } from '../../harness/wait.ts';
import type { Sample } from '../../harness/metrics.ts';
import { dropped, scrape, sumOf, UdpClient, waitMetric } from './support/probe.ts';

describe('behaviour: ingress limits (CIDR lists, rate limit, session cap)', function () {
  this.timeout(45_000);
  const etcd = useEtcdCluster({ size: 1 });
  let mesh: Mesh | undefined;
  const clients: UdpClient[] = [];

  afterEach(async function () {
    this.timeout(30_000);
    if (this.currentTest?.state === 'failed' && mesh) console.log(await mesh.diagnostics(40));
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await mesh?.stop();
    mesh = undefined;
  });

  async function client(session: number, address = '127.0.0.1'): Promise<UdpClient> {
    const c = await UdpClient.open(session, address);
    clients.push(c);
    return c;
  }

  /** Wait until the aws backend has seqs [0, n) of a session and its client got n echoes. */
  async function awaitServed(c: UdpClient, n: number): Promise<void> {
    const aws = mesh!.node('aws');
    await waitFor(
      async () =>
        ((await aws.backend.snapshot()).seqsBySession().get(c.session)?.length ?? 0) >= n &&
        c.replies.length >= n,
      {
        timeoutMs: 15_000,
        what: `session ${c.session} from ${c.address} delivered and answered ${n} times`,
        detail: () => `replies ${c.replies.length}`,
      },
    );
  }

  it('denyCidrs: a client from 127.0.0.2 is refused (denied); 127.0.0.1 is served', async () => {
    mesh = await startMesh({
      etcd: etcd.cluster,
      clouds: ['aws'],
      configOverrides: { ingress: { denyCidrs: ['127.0.0.2/32'] } },
    });
    const aws = mesh.node('aws');
    const bad = await client(1, '127.0.0.2');
    const good = await client(2, '127.0.0.1');
    bad.send(aws.ingressPort, 0, 5);
    await waitMetric(
      aws.proc,
      'udpmesh_dropped_datagrams_total',
      { reason: 'denied' },
      (v) => v >= 5,
      'counts 5 denied',
    );
    good.send(aws.ingressPort, 0, 5);
    await awaitServed(good, 5);
    const s = await scrape(aws.proc);
    assert.equal(dropped(s, 'denied'), 5);
    assert.equal(dropped(s, 'not_allowed'), 0);
    assert.equal(
      (await aws.backend.snapshot()).seqsBySession().get(1),
      undefined,
      'nothing of the denied client was delivered',
    );
    assert.equal(bad.replies.length, 0);
    assert.deepEqual(good.replies, [0, 1, 2, 3, 4]);
  });

  it('allowCidrs ["127.0.0.1/32"]: a client from 127.0.0.3 is refused (not_allowed); 127.0.0.1 is served', async () => {
    mesh = await startMesh({
      etcd: etcd.cluster,
      clouds: ['aws'],
      configOverrides: { ingress: { allowCidrs: ['127.0.0.1/32'] } },
    });
    const aws = mesh.node('aws');
    const outsider = await client(1, '127.0.0.3');
    const good = await client(2, '127.0.0.1');
    outsider.send(aws.ingressPort, 0, 5);
    await waitMetric(
      aws.proc,
      'udpmesh_dropped_datagrams_total',
      { reason: 'not_allowed' },
      (v) => v >= 5,
      'counts 5 not_allowed',
    );
    good.send(aws.ingressPort, 0, 5);
    await awaitServed(good, 5);
    const s = await scrape(aws.proc);
    assert.equal(dropped(s, 'not_allowed'), 5);
    assert.equal(dropped(s, 'denied'), 0);
    assert.equal(
      (await aws.backend.snapshot()).seqsBySession().get(1),
      undefined,
      'nothing of the outside client was delivered',
    );
    assert.equal(outsider.replies.length, 0);
  });

  it('rateLimit {50/s, burst 10}: a burst of 100 datagrams from one client is cut to about the burst', async () => {
    mesh = await startMesh({
      etcd: etcd.cluster,
      clouds: ['aws'],
      configOverrides: { ingress: { rateLimit: { datagramsPerSecond: 50, burst: 10 } } },
    });
    const aws = mesh.node('aws');
    const c = await client(1);
    const other = await client(2);
    // The burst arrives all at once: the kernel queues it while the replicator is stopped (SIGSTOP), so
    // the bucket refills only for the moments it takes to read 100 queued datagrams.
    const pid = aws.proc.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      c.send(aws.ingressPort, 0, 100);
      await new Promise((r) => setTimeout(r, 200)); // let the sends reach the socket queue (not an assertion)
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor(
      async () => {
        const s = await scrape(aws.proc);
        return sumIngress(s) + dropped(s, 'rate_limited') >= 100;
      },
      { timeoutMs: 15_000, what: 'all 100 datagrams accounted for (accepted + rate_limited)' },
    );
    const s = await scrape(aws.proc);
    const limited = dropped(s, 'rate_limited');
    const accepted = sumIngress(s);
    assert.equal(accepted + limited, 100);
    // The burst (10) plus what the bucket refills (50/s, one per 20 ms) while 100 queued datagrams are read.
    assert.ok(
      limited >= 80 && limited <= 90,
      `rate_limited ${limited}, expected about 90 (accepted ${accepted})`,
    );
    await awaitServed(c, accepted);
    const delivered = (await aws.backend.snapshot()).seqsBySession().get(1) ?? [];
    assert.equal(delivered.length, accepted, 'the backend got exactly the accepted datagrams');
    assert.deepEqual(
      delivered.slice(0, 10),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      'the burst is the first 10, in order',
    );
    // The limit is per client: another client still gets its own burst.
    other.send(aws.ingressPort, 0, 10);
    await awaitServed(other, 10);
  });

  it('session cap: a flood of 500 new sources cannot push out 10 established sessions', async () => {
    mesh = await startMesh({
      etcd: etcd.cluster,
      clouds: ['aws'],
      configOverrides: { ingress: { maxSessions: 20 } },
    });
    const aws = mesh.node('aws');
    const established: UdpClient[] = [];
    for (let i = 0; i < 10; i++) established.push(await client(1 + i));
    for (const c of established) c.send(aws.ingressPort, 0, 2);
    for (const c of established) await awaitServed(c, 2);
    // 500 new sources, 127.0.1.1 .. 127.0.2.250, one socket and one datagram each.
    const flood: UdpClient[] = [];
    for (let n = 0; n < 500; n++)
      flood.push(await client(1000 + n, `127.0.${1 + Math.floor(n / 250)}.${1 + (n % 250)}`));
    let maxActive = 0;
    const sample = async (): Promise<Sample[]> => {
      const s = await scrape(aws.proc);
      maxActive = Math.max(maxActive, sumOf(s, 'udpmesh_sessions_active'));
      return s;
    };
    const accounted = async (n: number, what: string): Promise<void> => {
      await waitFor(
        async () => {
          const s = await sample();
          return sumIngress(s) + dropped(s, 'session_cap') >= n;
        },
        { timeoutMs: 15_000, what },
      );
    };

    // Wave A, 400 sources, arrives all at once: the replicator is stopped (SIGSTOP) while the kernel queues
    // them, so it reads them faster than the backend's echoes can prove any of them. The established
    // sessions send their next datagram in the same queue.
    const pid = aws.proc.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      for (const f of flood.slice(0, 400)) f.send(aws.ingressPort, 0, 1);
      for (const c of established) c.send(aws.ingressPort, 2, 3);
      await new Promise((r) => setTimeout(r, 300)); // let the sends reach the socket queue (not an assertion)
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await accounted(20 + 410, 'wave A accounted for (accepted + session_cap)');
    // The newcomers that kept their place get their echo, which proves them: 10 of them, exactly.
    await waitFor(() => flood.reduce((a, f) => a + f.replies.length, 0) === 10, {
      timeoutMs: 15_000,
      what: 'the 10 surviving newcomers got their echoes',
      detail: () => `flood replies: ${flood.reduce((a, f) => a + f.replies.length, 0)}`,
    });
    const afterA = await sample();
    const evicted = sumOf(afterA, 'udpmesh_sessions_evicted_total', { reason: 'capacity' });
    assert.ok(
      evicted > 0,
      'unproven newcomers were evicted to make room (sessions_evicted_total{reason="capacity"})',
    );

    // Wave B, 100 more sources: the table now holds only proven sessions, so every newcomer is refused.
    const capA = dropped(afterA, 'session_cap');
    for (const f of flood.slice(400)) f.send(aws.ingressPort, 0, 1);
    for (const c of established) c.send(aws.ingressPort, 3, 5);
    await accounted(20 + 410 + 120, 'wave B accounted for');
    const afterB = await sample();
    assert.equal(
      dropped(afterB, 'session_cap') - capA,
      100,
      'every newcomer of wave B was refused (session_cap)',
    );
    assert.equal(
      sumOf(afterB, 'udpmesh_sessions_evicted_total', { reason: 'capacity' }),
      evicted,
      'nobody was evicted for wave B',
    );

    for (const c of established) await awaitServed(c, 5);
    const log = await aws.backend.snapshot();
    for (const c of established) {
      assert.deepEqual(
        log.seqsBySession().get(c.session),
        [0, 1, 2, 3, 4],
        `established session ${c.session} lost datagrams`,
      );
      assert.deepEqual(c.replies, [0, 1, 2, 3, 4], `established session ${c.session} lost replies`);
    }
    assert.ok(dropped(afterB, 'session_cap') > 0);
    assert.ok(maxActive <= 20, `udpmesh_sessions_active reached ${maxActive} > maxSessions 20`);
    assert.equal(sumOf(afterB, 'udpmesh_sessions_active'), 20);
    assert.ok(aws.proc.running);
  });
});

function sumIngress(s: Sample[]): number {
  return sumOf(s, 'udpmesh_ingress_datagrams_total');
}
