// Frame authentication between real replicator processes: a shared cluster key, a replicator with the
// wrong key, a key rollover across replicators with different key lists, a key file rotated on disk,
// unsigned frames injected into a keyed replicator's replication port, and a member holding the cluster
// key that tries to speak as another (per-incarnation link keys, issue 10 D7).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMemberRecord, type MemberRecord } from '../../../replicator/coordination/keys.ts';
import { encodeData, type FrameHeader } from '../../../replicator/protocol/frame.ts';
import { makeKeyRing, signFrame } from '../../../replicator/protocol/frameAuth.ts';
import {
  generateMemberKeyPair,
  linkSecret,
  PUBLIC_KEY_PATTERN,
} from '../../../replicator/protocol/memberKeys.ts';
import { useEtcdCluster } from '../../harness/etcdFixture.ts';
import { startLoad, type LoadRun } from '../../harness/loadClient.ts';
import type { Mesh } from '../../harness/mesh.ts';
import { formatReport } from '../../harness/deliveryCheck.ts';
import { encodePayload } from '../../harness/payload.ts';
import { awaitReplies } from '../../harness/scenario.ts';
import { startNodeMesh } from './support/nodeMesh.ts';
import {
  assertRunExactlyOnce,
  awaitRun,
  dropped,
  etcdGetPrefix,
  etcdPut,
  logRecords,
  metric,
  runReport,
  scrape,
  sendDatagrams,
  waitLog,
  waitMetric,
} from './support/probe.ts';

const CLOUDS = ['aws', 'gcp', 'azure'];
const KEY_A = 'behaviour-test-cluster-key-A-0123456789';
const KEY_B = 'behaviour-test-cluster-key-B-9876543210';
const KEY_OLD = 'behaviour-test-rollover-key-old-000000';
const KEY_NEW = 'behaviour-test-rollover-key-new-111111';

describe('behaviour: frame authentication (cluster keys)', function () {
  this.timeout(45_000);
  const etcd = useEtcdCluster({ size: 1 });
  let mesh: Mesh | undefined;
  const runs: LoadRun[] = [];
  let keyDir: string | undefined;

  afterEach(async function () {
    this.timeout(30_000);
    if (this.currentTest?.state === 'failed' && mesh) console.log(await mesh.diagnostics(40));
    for (const r of runs.splice(0)) await r.close();
    await mesh?.stop();
    mesh = undefined;
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
    keyDir = undefined;
  });

  async function load(cloud: string, sessionBase: number, sessions = 20, perSession = 50): Promise<LoadRun> {
    const run = await startLoad({
      host: '127.0.0.1',
      port: mesh!.node(cloud).ingressPort,
      sessions,
      perSession,
      rate: 2000,
      sessionBase,
    });
    runs.push(run);
    await run.done;
    return run;
  }

  it('all three with the same UDPMESH_CLUSTER_KEY deliver everything, exactly once and in order', async () => {
    mesh = await startNodeMesh(
      { etcd: etcd.cluster },
      CLOUDS.map((cloud) => ({ cloud, env: { UDPMESH_CLUSTER_KEY: KEY_A } })),
    );
    const run = await load('aws', 1);
    await awaitRun(mesh, run.expected, CLOUDS, 20_000);
    await awaitReplies(mesh, run, 10_000);
    await assertRunExactlyOnce(mesh, run.expected, CLOUDS);
    for (const cloud of CLOUDS) {
      const s = await scrape(mesh.node(cloud).proc);
      assert.equal(dropped(s, 'bad_mac'), 0, `${cloud} counted bad_mac with one shared key`);
      assert.equal(dropped(s, 'unauthenticated'), 0, `${cloud} counted unauthenticated with one shared key`);
    }
  });

  it('a replicator with a different key gets nothing from the others, and they count bad_mac', async () => {
    mesh = await startNodeMesh({ etcd: etcd.cluster, connect: false }, [
      { cloud: 'aws', env: { UDPMESH_CLUSTER_KEY: KEY_A } },
      { cloud: 'gcp', env: { UDPMESH_CLUSTER_KEY: KEY_A } },
      { cloud: 'azure', env: { UDPMESH_CLUSTER_KEY: KEY_B } },
    ]);
    const intoAws = await load('aws', 1);
    const intoAzure = await load('azure', 1001);
    // aws -> gcp works; azure sees (and rejects) aws's frames, aws and gcp reject azure's.
    await awaitRun(mesh, intoAws.expected, ['aws', 'gcp'], 20_000);
    await awaitRun(mesh, intoAzure.expected, ['azure'], 20_000);
    for (const cloud of CLOUDS) {
      await waitMetric(
        mesh.node(cloud).proc,
        'udpmesh_dropped_datagrams_total',
        { reason: 'bad_mac' },
        (v) => v > 0,
        'counts bad_mac drops',
      );
    }
    // Keep the frames coming (retransmissions and probes) a while longer: still nothing may get through.
    const azureBadMac = await metric(mesh.node('azure').proc, 'udpmesh_dropped_datagrams_total', {
      reason: 'bad_mac',
    });
    await waitMetric(
      mesh.node('azure').proc,
      'udpmesh_dropped_datagrams_total',
      { reason: 'bad_mac' },
      (v) => v > azureBadMac,
      'keeps counting bad_mac',
    );
    const azure = mesh.node('azure');
    const azureLog = await azure.backend.snapshot();
    const azureReport = runReport(azureLog, intoAws.expected);
    assert.equal(
      azureReport.distinct,
      0,
      `azure (other key) got datagrams that entered at aws\n${formatReport('azure backend', azureReport)}`,
    );
    assert.equal(await metric(azure.proc, 'udpmesh_delivered_datagrams_total', { origin: 'aws' }), 0);
    for (const cloud of ['aws', 'gcp']) {
      const r = runReport(await mesh.node(cloud).backend.snapshot(), intoAzure.expected);
      assert.equal(
        r.distinct,
        0,
        `${cloud} got datagrams that entered at azure (other key)\n${formatReport(`${cloud} backend`, r)}`,
      );
      assert.equal(
        await metric(mesh.node(cloud).proc, 'udpmesh_delivered_datagrams_total', { origin: 'azure' }),
        0,
      );
    }
    // azure still serves its own clients locally; aws and gcp share the key and replicate to each other.
    await assertRunExactlyOnce(mesh, intoAzure.expected, ['azure'], 'sent into azure');
    await assertRunExactlyOnce(mesh, intoAws.expected, ['aws', 'gcp'], 'sent into aws');
  });

  it('rollover: [new, old] on one side and [old] on the others works both ways, also after the files change on disk', async () => {
    keyDir = mkdtempSync(join(tmpdir(), 'udpmesh-keys-'));
    const file = (name: string, content: string): string => {
      const p = join(keyDir!, name);
      writeFileSync(p, `${content}\n`);
      return p;
    };
    const awsNew = file('aws-new.key', KEY_NEW);
    const awsOld = file('aws-old.key', KEY_OLD);
    const gcpKey = file('gcp.key', KEY_OLD);
    const azureKey = file('azure.key', KEY_OLD);
    const auth = (keyFiles: string[]) => ({ replication: { auth: { keyFiles, reloadMs: 1000 } } });
    mesh = await startNodeMesh({ etcd: etcd.cluster }, [
      { cloud: 'aws', config: auth([awsNew, awsOld]) },
      { cloud: 'gcp', config: auth([gcpKey]) },
      { cloud: 'azure', config: auth([azureKey]) },
    ]);
    const fromAws = await load('aws', 1);
    const fromGcp = await load('gcp', 1001);
    await awaitRun(mesh, fromAws.expected, CLOUDS, 20_000, 'the run into aws ([new, old])');
    await awaitRun(mesh, fromGcp.expected, CLOUDS, 20_000, 'the run into gcp ([old])');
    await awaitReplies(mesh, fromAws, 10_000);

    // The Secret is rotated: gcp's and azure's key files now hold the new key only; aws keeps [new, old].
    const logsBefore = Object.fromEntries(CLOUDS.map((c) => [c, logRecords(mesh!.node(c).proc).length]));
    writeFileSync(gcpKey, `${KEY_NEW}\n`);
    writeFileSync(azureKey, `${KEY_NEW}\n`);
    for (const c of ['gcp', 'azure'])
      await waitLog(mesh.node(c).proc, 'cluster keys reloaded', 10_000, () => true, logsBefore[c]);
    const fromAws2 = await load('aws', 2001);
    const fromAzure2 = await load('azure', 3001);
    await awaitRun(mesh, fromAws2.expected, CLOUDS, 20_000, 'the run into aws after the rotation');
    await awaitRun(mesh, fromAzure2.expected, CLOUDS, 20_000, 'the run into azure after the rotation');
    await awaitReplies(mesh, fromAws2, 10_000);

    // The rollover ends: aws drops the old key (its second file is emptied), every replicator has only the new one.
    const awsMark = logRecords(mesh.node('aws').proc).length;
    writeFileSync(awsOld, '');
    await waitLog(mesh.node('aws').proc, 'cluster keys reloaded', 10_000, (r) => r.keys === 1, awsMark);
    const fromGcp3 = await load('gcp', 4001);
    await awaitRun(mesh, fromGcp3.expected, CLOUDS, 20_000, 'the run into gcp with the new key only');
    for (const [label, run] of [
      ['aws', fromAws],
      ['gcp', fromGcp],
      ['aws after rotation', fromAws2],
      ['azure after rotation', fromAzure2],
      ['gcp with the new key only', fromGcp3],
    ] as const) {
      await assertRunExactlyOnce(mesh, run.expected, CLOUDS, `sent into ${label}`);
    }
  });

  it('unsigned frames sent to a keyed replicator are dropped as unauthenticated and never delivered', async () => {
    mesh = await startNodeMesh(
      { etcd: etcd.cluster },
      CLOUDS.map((cloud) => ({ cloud, env: { UDPMESH_CLUSTER_KEY: KEY_A } })),
    );
    const gcp = mesh.node('gcp');
    const before = await metric(gcp.proc, 'udpmesh_dropped_datagrams_total', { reason: 'unauthenticated' });
    const beforeUnknown = await metric(gcp.proc, 'udpmesh_dropped_datagrams_total', {
      reason: 'unknown_sender',
    });
    // A well-formed DATA frame, as a peer would send it, but without the HMAC trailer; half of them claim
    // to come from the real aws replicator (unauthenticated), half from a non-member (no state at all).
    const session = 4242;
    const frames: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      const record = { streamSeq: i, session, seq: i, payload: encodePayload(session, i, 64) };
      const sender = i % 2 === 0 ? 'aws/aws-0' : 'intruder/x';
      const h = { sender, receiver: 'gcp/gcp-0', senderEpoch: 1, receiverEpoch: 1, packet: 1000 + i };
      frames.push(encodeData(h, 0, [record]));
    }
    await sendDatagrams(gcp.replicationPort, frames);
    await waitMetric(
      gcp.proc,
      'udpmesh_dropped_datagrams_total',
      { reason: 'unauthenticated' },
      (v) => v >= before + frames.length / 2,
      `counts ${frames.length / 2} unauthenticated drops`,
    );
    // The mesh still works, and nothing of the injected session reached the backend.
    const run = await load('aws', 1, 10, 20);
    await awaitRun(mesh, run.expected, CLOUDS, 20_000);
    assert.equal(
      (await gcp.backend.snapshot()).seqsBySession().get(session),
      undefined,
      'an unsigned frame was delivered',
    );
    const s = await scrape(gcp.proc);
    assert.equal(
      dropped(s, 'unauthenticated'),
      before + frames.length / 2,
      'exactly the injected frames claiming a member were unauthenticated',
    );
    assert.equal(
      dropped(s, 'unknown_sender'),
      beforeUnknown + frames.length / 2,
      'the injected frames of a non-member were dropped before any check that costs state',
    );
    assert.ok(gcp.proc.running, 'gcp still running');
  });

  // Before per-incarnation keys: AssertionError: gcp delivered 1 datagram(s) a member forged as aws
  it('D7: a member with the cluster key and its own etcd record cannot speak as another member', async () => {
    mesh = await startNodeMesh(
      { etcd: etcd.cluster },
      CLOUDS.map((cloud) => ({ cloud, env: { UDPMESH_CLUSTER_KEY: KEY_A } })),
    );
    const prefix = `/udpmesh/${mesh.name}/members/`;
    const kv = await etcdGetPrefix(etcd.cluster.endpoints, prefix);
    const rec = (id: string): MemberRecord => parseMemberRecord(kv.get(`${prefix}${id}`) ?? '')!;
    for (const cloud of CLOUDS)
      assert.match(rec(`${cloud}/${cloud}-0`)?.publicKey ?? '', PUBLIC_KEY_PATTERN, `${cloud}'s record`);
    const aws = rec('aws/aws-0');
    const gcp = rec('gcp/gcp-0');
    // The insider: a member record of its own (etcd access) and the cluster key.
    const evil = generateMemberKeyPair();
    const evilRecord: MemberRecord = {
      id: 'evil/evil-0',
      cluster: 'evil',
      instance: 'evil-0',
      address: '127.0.0.1',
      port: 9,
      ingressPorts: [],
      metricsPort: 0,
      epoch: 1,
      startedAt: new Date().toISOString(),
      publicKey: evil.publicKey,
    };
    await etcdPut(etcd.cluster.endpoints, `${prefix}evil/evil-0`, JSON.stringify(evilRecord));
    const ring = makeKeyRing([Buffer.from(KEY_A)]);
    const gcpNode = mesh.node('gcp');
    let packet = 0;
    const frame = (h: Omit<FrameHeader, 'packet'>, session: number, secret?: Buffer): Buffer =>
      signFrame(
        encodeData({ ...h, packet: packet++ }, 0, [
          { streamSeq: 0, session, seq: 0, payload: encodePayload(session, 0, 64) },
        ]),
        ring,
        undefined,
        secret,
      );
    // In its own name the insider is a member like any other: its frame is delivered (this proves the
    // forger below computes link keys right, and that gcp has read its record).
    const own = { sender: 'evil/evil-0', receiver: 'gcp/gcp-0', senderEpoch: 1, receiverEpoch: gcp.epoch };
    const ownSession = 5151;
    const deadline = Date.now() + 10_000;
    while ((await gcpNode.backend.snapshot()).seqsBySession().get(ownSession) === undefined) {
      assert.ok(Date.now() < deadline, 'gcp never accepted the insider in its own name');
      await sendDatagrams(gcpNode.replicationPort, [
        frame(own, ownSession, linkSecret(evil, gcp.publicKey!)),
      ]);
      await new Promise((r) => setTimeout(r, 200));
    }
    // As aws: everything it can compute (the cluster key alone, its own X25519 secret with either end).
    const before = await metric(gcpNode.proc, 'udpmesh_dropped_datagrams_total', { reason: 'bad_mac' });
    const asAws = {
      sender: 'aws/aws-0',
      receiver: 'gcp/gcp-0',
      senderEpoch: aws.epoch,
      receiverEpoch: gcp.epoch,
    };
    const forgedSession = 4343;
    await sendDatagrams(gcpNode.replicationPort, [
      frame(asAws, forgedSession),
      frame(asAws, forgedSession, linkSecret(evil, gcp.publicKey!)),
      frame(asAws, forgedSession, linkSecret(evil, aws.publicKey!)),
    ]);
    await waitMetric(
      gcpNode.proc,
      'udpmesh_dropped_datagrams_total',
      { reason: 'bad_mac' },
      (v) => v >= before + 3,
      'counts the 3 forged frames as bad_mac',
    );
    const forged = (await gcpNode.backend.snapshot()).seqsBySession().get(forgedSession);
    assert.equal(forged, undefined, `gcp delivered ${forged?.length} datagram(s) a member forged as aws`);
    // The real aws still replicates to gcp.
    const run = await load('aws', 1, 5, 20);
    await awaitRun(mesh, run.expected, CLOUDS, 20_000);
  });
});
