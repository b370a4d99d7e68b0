// Dynamic config from etcd on running processes: a new backend list for one cluster takes effect without
// a restart; invalid documents are refused (and logged) and delivery continues where it went before.
import assert from 'node:assert/strict';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import { startMesh, type Mesh } from '../../harness/mesh.ts';
import { RemoteRecordingBackend } from '../../harness/remoteRecordingBackend.ts';
import { awaitReplies } from '../../harness/scenario.ts';
import { waitFor } from '../../harness/wait.ts';
import { assertRunExactlyOnce, awaitRun, etcdPut, logRecords, runReport, waitLog } from './support/probe.ts';

describe('behaviour: dynamic config from etcd', function () {
  this.timeout(45_000);
  const etcd = useEtcdCluster({ size: 1 });
  let mesh: Mesh | undefined;
  let extra: RemoteRecordingBackend | undefined;
  const runs: LoadRun[] = [];

  afterEach(async function () {
    this.timeout(30_000);
    if (this.currentTest?.state === 'failed' && mesh) console.log(await mesh.diagnostics(40));
    for (const r of runs.splice(0)) await r.close();
    await mesh?.stop();
    await extra?.close();
    mesh = extra = undefined;
  });

  async function load(cloud: string, sessionBase: number): Promise<LoadRun> {
    const run = await startLoad({
      host: '127.0.0.1',
      port: mesh!.node(cloud).ingressPort,
      sessions: 10,
      perSession: 60,
      rate: 1500,
      sessionBase,
    });
    runs.push(run);
    await run.done;
    return run;
  }

  it('a new backend list for gcp in /udpmesh/<mesh>/config/gcp: gcp delivers to it without a restart', async () => {
    mesh = await startMesh({ etcd: etcd.cluster });
    const gcp = mesh.node('gcp');
    const pid = gcp.proc.pid;
    extra = await new RemoteRecordingBackend('gcp-new-backend').start();
    const before = await load('aws', 1);
    await awaitRun(mesh, before.expected, ['aws', 'gcp', 'azure'], 15_000, 'the run before the change');

    const mark = logRecords(gcp.proc).length;
    await etcdPut(
      etcd.cluster.endpoints,
      `/udpmesh/${mesh.name}/config/gcp`,
      JSON.stringify({ delivery: { backends: [extra.endpoint] } }),
    );
    await waitLog(
      gcp.proc,
      'applied dynamic config',
      15_000,
      (r) => Array.isArray(r.keys) && r.keys.includes('delivery'),
      mark,
    );

    const viaAws = await load('aws', 101);
    const viaGcp = await load('gcp', 201);
    await awaitRun(mesh, viaAws.expected, ['aws', 'azure'], 15_000, 'the run into aws after the change');
    await awaitRun(mesh, viaGcp.expected, ['aws', 'azure'], 15_000, 'the run into gcp after the change');
    await waitFor(
      async () => {
        const log = await extra!.snapshot();
        return runReport(log, viaAws.expected).missing === 0 && runReport(log, viaGcp.expected).missing === 0;
      },
      { timeoutMs: 15_000, what: 'the new gcp backend has both runs', detail: () => mesh!.diagnostics() },
    );
    await awaitReplies(mesh, viaGcp, 10_000); // the new backend's echoes reach gcp's clients
    const fresh = await extra.snapshot();
    for (const [label, run] of [
      ['into aws', viaAws],
      ['into gcp', viaGcp],
    ] as const) {
      const r = runReport(fresh, run.expected);
      assert.ok(
        r.missing === 0 && r.duplicates === 0 && r.outOfOrder === 0 && r.unexpected === 0,
        `new backend, run ${label}: ${JSON.stringify(r)}`,
      );
      const old = runReport(await gcp.backend.snapshot(), run.expected);
      assert.equal(
        old.distinct,
        0,
        `the old gcp backend still got ${old.distinct} datagrams of the run ${label}`,
      );
    }
    assert.equal(
      runReport(fresh, before.expected).distinct,
      0,
      'the new backend got datagrams from before the change',
    );
    await assertRunExactlyOnce(mesh, before.expected, ['gcp'], 'before the change (old backend)');
    assert.equal(gcp.proc.pid, pid, 'gcp was restarted');
    assert.equal(gcp.proc.startCount, 1);
  });

  it('invalid documents are refused and logged; delivery continues to the current backend', async () => {
    mesh = await startMesh({ etcd: etcd.cluster });
    const gcp = mesh.node('gcp');
    const key = `/udpmesh/${mesh.name}/config/gcp`;
    const invalid: Array<{ doc: string; log: string }> = [
      {
        doc: JSON.stringify({ delivery: { backends: '127.0.0.1:9' } }),
        log: 'refusing dynamic config; keeping the current one',
      },
      {
        doc: JSON.stringify({ delivery: { bakends: ['127.0.0.1:9'] } }),
        log: 'refusing dynamic config; keeping the current one',
      },
      {
        doc: JSON.stringify({ delivery: { backends: [] } }),
        log: 'refusing dynamic config; keeping the current one',
      },
      { doc: '{"delivery": {"backends": [', log: 'etcd: ignoring malformed dynamic config' },
    ];
    for (const [i, { doc, log }] of invalid.entries()) {
      const mark = logRecords(gcp.proc).length;
      await etcdPut(etcd.cluster.endpoints, key, doc);
      const rec = await waitLog(gcp.proc, log, 15_000, () => true, mark);
      assert.ok(rec.level === 50 || rec.level === 40, `document ${i} refused at level ${String(rec.level)}`);
      const run = await load('aws', 1 + i * 100);
      await awaitRun(
        mesh,
        run.expected,
        ['aws', 'gcp', 'azure'],
        15_000,
        `the run after invalid document ${i}`,
      );
      await assertRunExactlyOnce(mesh, run.expected, ['gcp'], `after invalid document ${i}`);
    }
    const refused = logRecords(gcp.proc).filter(
      (r) => r.msg === 'refusing dynamic config; keeping the current one',
    );
    assert.ok(
      refused.some((r) => String(r.err).includes('delivery.backends')),
      `the refusal names the key: ${refused.map((r) => String(r.err)).join(' | ')}`,
    );
    assert.ok(gcp.proc.running);
  });
});
