// The chaos profiles. short: one scenario per fault type, about 2 minutes in all (CI, as a mocha
// test). full (`npm run chaos`): both non-ingress clouds partitioned, a long SIGKILL loop with down times
// on both sides of the etcd lease TTL, every etcd member killed in turn and a quorum loss, moderate and
// heavy link impairment, and a kill loop under impairment. Issue 10's scenarios (both profiles unless
// noted): a partition longer than the peer-down timeout with heavy loss just before the cut, a replica
// failover inside a cluster (SIGKILL with restart; SIGTERM drain), and a receiver restart with
// captured DATA frames replayed to it and to the other receivers.
import { NO_IMPAIRMENT, type Impairment } from '../harness/impairmentProxy.ts';
import { sumOf } from '../harness/metrics.ts';
import { delay, waitFor } from '../harness/wait.ts';
import { protocolParams } from '../../replicator/protocol/params.ts';
import { CLOUDS, PORTS, type ChaosMesh, type Cloud, type ReplicaNode } from './chaosMesh.ts';
import type { ScenarioRun, ScenarioSpec } from './scenario.ts';

/** issue10: only issue 10's scenarios (a quick way to run them; they are in full too). */
export type ProfileName = 'short' | 'full' | 'issue10';

const MODERATE: Partial<Impairment> = {
  loss: 0.05,
  duplicate: 0.05,
  reorder: 0.1,
  reorderDelayMs: 30,
  jitterMs: 5,
  baseDelayMs: 5,
};
/** Many frames overtaken: receivers almost always hold datagrams in their reorder buffer when they are killed. */
const REORDERING: Partial<Impairment> = {
  loss: 0.05,
  duplicate: 0.05,
  reorder: 0.3,
  reorderDelayMs: 50,
  jitterMs: 5,
  baseDelayMs: 5,
};
const HEAVY: Partial<Impairment> = {
  loss: 0.2,
  duplicate: 0.1,
  reorder: 0.2,
  reorderDelayMs: 50,
  jitterMs: 20,
  baseDelayMs: 10,
};

function describeImpairment(i: Partial<Impairment>): string {
  return `loss ${(i.loss ?? 0) * 100}% dup ${(i.duplicate ?? 0) * 100}% reorder ${(i.reorder ?? 0) * 100}%`;
}

function partition(mesh: ChaosMesh, cloud: Cloud, ms: number): ScenarioSpec {
  const ingresses = CLOUDS.filter((c) => c !== cloud);
  return {
    name: `partition ${cloud} ${ms / 1000} s`,
    ingresses,
    sessionsPerIngress: 8,
    ratePerIngress: 600,
    async faults(run: ScenarioRun) {
      await run.fault(
        `link of ${cloud} down ${ms / 1000} s`,
        () => mesh.partition(cloud),
        ms,
        () => mesh.heal(cloud),
      );
    },
  };
}

/**
 * Heavy loss on a cloud's replication links (both ways) for lossMs, then its link down for cutMs (longer than the peer-down
 * timeout, so the origins stop sending to it and it hears nothing while it holds gaps; v1's receiver then
 * skipped the gaps and dropped their resent copies, issue 10 D2), then healed. Every accepted datagram must
 * arrive, or be counted abandoned at the origin.
 */
function lossThenPartition(
  mesh: ChaosMesh,
  cloud: Cloud,
  lossMs: number,
  cutMs: number,
  loss = 0.5,
): ScenarioSpec {
  const ingresses = CLOUDS.filter((c) => c !== cloud);
  const peerDown = protocolParams.peerDownAfterMs;
  if (cutMs <= peerDown)
    throw new Error(`the cut (${cutMs} ms) must outlast peerDownAfterMs (${peerDown} ms)`);
  return {
    name: `partition ${cloud} ${cutMs / 1000} s (> peer-down ${peerDown / 1000} s) after ${lossMs / 1000} s of ${loss * 100}% loss`,
    ingresses,
    sessionsPerIngress: 8,
    ratePerIngress: 600,
    async faults(run: ScenarioRun) {
      let cutAt = 0;
      const w = await run.fault(
        `${loss * 100}% loss on ${cloud}'s links, then its link down`,
        async () => {
          // Both directions: the DATA into the cloud, and its ACKs into the others (only what it sends).
          const from = [mesh.node(cloud).host.address];
          await Promise.all(
            CLOUDS.map((c) => (c === cloud ? mesh.impair(c, { loss }) : mesh.impair(c, { loss }, from))),
          );
          await delay(lossMs);
          cutAt = Date.now();
          mesh.partition(cloud);
        },
        lossMs + cutMs,
        async () => {
          await Promise.all(CLOUDS.map((c) => mesh.impair(c, NO_IMPAIRMENT)));
          mesh.heal(cloud);
        },
        { draw: false },
      );
      run.band(`${loss * 100}% loss both ways`, w.injectedAt, cutAt);
      run.band(`${cloud} cut off ${cutMs / 1000} s`, cutAt, w.healedAt);
    },
  };
}

/** Sum of udpmesh_delivered_datagrams_total of an added replica (undefined when it does not answer). */
async function deliveredBy(mesh: ChaosMesh, r: ReplicaNode): Promise<number | undefined> {
  const s = await mesh.scrapeReplica(r);
  return s ? sumOf(s, 'udpmesh_delivered_datagrams_total') : undefined;
}

/**
 * A second replica in gcp (added before the load, so the sessions spread over both by rendezvous hashing),
 * then the replica that receives part of the sessions is SIGKILLed (and restarted after downMs) or SIGTERMed
 * (drains and leaves) while traffic flows. Its sessions must move to the other replica with per-session order
 * kept at gcp's backend (the hand-over barrier) and nothing lost; the move must be done before the replica
 * comes back (recoverWhileHeld), so the sessions really were served by the other replica.
 */
function replicaFailover(mesh: ChaosMesh, how: 'SIGKILL' | 'SIGTERM', downMs = 10_000): ScenarioSpec {
  const cloud: Cloud = 'gcp';
  let extra: ReplicaNode | undefined;
  // The origin moves a silent replica's backlog once it is down and unheard for handoverAfterMs.
  const moveBy = Math.max(protocolParams.peerDownAfterMs, protocolParams.handoverAfterMs);
  if (downMs < moveBy + 2000)
    throw new Error(`hold ${downMs} ms is too short for a hand-over (${moveBy} ms + 2 s to resend)`);
  return {
    name:
      how === 'SIGKILL'
        ? `replica failover in ${cloud}: SIGKILL one of 2 replicas, restart after ${downMs / 1000} s`
        : `replica failover in ${cloud}: SIGTERM (drain) one of 2 replicas`,
    ingresses: ['aws', 'azure'],
    sessionsPerIngress: 8,
    ratePerIngress: 500,
    killsReceivers: how === 'SIGKILL',
    // A drained replica leaves the membership and acknowledges what it holds before it stops, so its
    // sessions move without waiting for the hand-over timeout (they stalled ~5 s and some were delivered
    // twice before the drain did that).
    ...(how === 'SIGTERM' ? { maxOutageMs: 2000 } : {}),
    async prepare(run: ScenarioRun) {
      extra = await mesh.addReplica(cloud);
      run.log(`added replica ${extra.member}`);
    },
    async faults(run: ScenarioRun) {
      const r = extra!;
      // It must be a receiver of some of the sessions, or the scenario proves nothing.
      let before = 0;
      await waitFor(async () => (before = (await deliveredBy(mesh, r)) ?? 0) > 0, {
        timeoutMs: 10_000,
        intervalMs: 250,
        what: `${r.member} delivers some of the sessions`,
      });
      run.log(`${r.member} delivered ${before} datagrams so far`);
      if (how === 'SIGKILL') {
        await run.fault(
          `SIGKILL ${r.member} (had delivered ${before}), restart after ${downMs / 1000} s`,
          async () => {
            await r.replicator.kill('SIGKILL');
            run.receiverKills++;
            // What it wrote to the backend before dying is read by now: the redelivery by the other
            // replica is checked as another incarnation's.
            await delay(300);
            await run.markBackend(cloud);
          },
          downMs,
          async () => {
            await run.markBackend(cloud);
            r.replicator.start();
            await mesh.waitReplicaReady(r, 30_000);
          },
          { recoverWhileHeld: true },
        );
      } else {
        await run.fault(
          `SIGTERM ${r.member} (had delivered ${before}): drain, leave`,
          () => mesh.removeReplica(r, 'SIGTERM'),
          downMs,
          () => undefined,
          { recoverWhileHeld: true },
        );
        extra = undefined;
      }
    },
    async teardown(run: ScenarioRun) {
      if (!extra) return;
      await mesh.removeReplica(extra, 'SIGTERM');
      run.log(`removed replica ${extra.member}`);
      extra = undefined;
    },
  };
}

/**
 * Capture DATA frames on their way into a receiver (at its impairment proxy), then replay them: to the same
 * incarnation (anti-replay window: dropped as replay), after a SIGKILL and restart to the new incarnation
 * (dropped as stale_epoch), and to the other receivers (dropped as misdirected). Each replay must raise that
 * drop counter by at least the frames sent and add no arrival at the target's backend beyond the load's.
 */
function replayAfterRestart(mesh: ChaosMesh, victim: Cloud, frames: number): ScenarioSpec {
  const ingresses = CLOUDS.filter((c) => c !== victim);
  const others = CLOUDS.filter((c) => c !== victim);
  return {
    name: `receiver ${victim} restart + ${frames} captured DATA frames replayed`,
    ingresses,
    sessionsPerIngress: 8,
    ratePerIngress: 500,
    killsReceivers: true,
    async faults(run: ScenarioRun) {
      const proxy = mesh.node(victim).proxyAgent;
      await proxy.call('captureStart', { max: frames });
      await waitFor(async () => (await proxy.call<{ frames: number }>('captureCount')).frames >= frames, {
        timeoutMs: 10_000,
        intervalMs: 200,
        what: `${frames} DATA frames captured into ${victim}`,
      }).catch(() => undefined);
      const cap = await proxy.call<{ frames: number; bytes: number }>('captureStop');
      if (cap.frames === 0) throw new Error(`no DATA frame into ${victim} was captured`);
      run.log(`captured ${cap.frames} DATA frames (${cap.bytes} bytes) into ${victim}`);
      const replayTo = async (target: Cloud, reasons: string[], what: string): Promise<void> => {
        const reason = reasons.join('+');
        const dropsOf = async (): Promise<number | undefined> => {
          const s = await mesh.scrape(target);
          return s
            ? reasons.reduce((n, r) => n + sumOf(s, 'udpmesh_dropped_datagrams_total', { reason: r }), 0)
            : undefined;
        };
        const before = await dropsOf();
        const arrivalsBefore = await mesh.arrivals(target, run.ranges);
        let sent = 0;
        await run.fault(
          `replay ${cap.frames} frames to ${what}`,
          async () => {
            const r = await proxy.call<{ sent: number; errors: number }>(
              'replay',
              { host: mesh.node(target).host.address, port: PORTS.replication },
              60_000,
            );
            sent = r.sent;
          },
          1000,
          () => undefined,
          { outage: false },
        );
        await delay(500);
        const after = await dropsOf();
        const arrivalsAfter = await mesh.arrivals(target, run.ranges);
        const dupsBefore = arrivalsBefore.received - arrivalsBefore.distinct;
        const dupsAfter = arrivalsAfter.received - arrivalsAfter.distinct;
        const counted = before === undefined || after === undefined ? undefined : after - before;
        run.notes.push(
          `replay to ${what}: ${sent} frames sent, ${reason} drops +${counted ?? '?'}, duplicates at ${target}'s backend ${dupsBefore} -> ${dupsAfter}`,
        );
        if (counted === undefined) run.fail(`replay to ${what}: ${target}'s metrics did not answer`);
        else if (counted < sent)
          run.fail(`replay to ${what}: ${sent} frames replayed but ${reason} drops rose by ${counted} only`);
        if (dupsAfter > dupsBefore)
          run.fail(
            `replay to ${what}: ${dupsAfter - dupsBefore} duplicates delivered at ${target}'s backend`,
          );
      };
      await replayTo(victim, ['replay'], `${victim} (same incarnation)`);
      await run.killReceiver(victim, 1500, `SIGKILL ${victim}, restart after 1.5 s`);
      await replayTo(victim, ['stale_epoch'], `${victim}'s new incarnation`);
      // At another receiver a frame names gcp as its receiver: misdirected, or looped when that receiver
      // is the frame's own sender (an origin's frame to gcp coming back to it).
      for (const o of others) await replayTo(o, ['misdirected', 'looped'], `${o} (another receiver)`);
    },
  };
}

function killLoop(
  name: string,
  victims: { cloud: Cloud; downMs: number }[],
  gapMs: number,
  impairment?: Partial<Impairment>,
  mesh?: ChaosMesh,
): ScenarioSpec {
  return {
    name,
    ingresses: ['aws'],
    sessionsPerIngress: 16,
    ratePerIngress: 1000,
    killsReceivers: true,
    async faults(run: ScenarioRun) {
      if (impairment && mesh) await mesh.impairAll(impairment);
      try {
        for (const [i, v] of victims.entries()) {
          await run.killReceiver(
            v.cloud,
            v.downMs,
            `#${i + 1} SIGKILL ${v.cloud}, restart after ${v.downMs / 1000} s`,
          );
          await delay(gapMs);
        }
      } finally {
        if (impairment && mesh) await mesh.impairAll(NO_IMPAIRMENT);
      }
    },
  };
}

function etcdKills(
  mesh: ChaosMesh,
  name: string,
  rounds: { leader?: boolean; clouds?: Cloud[]; downMs: number }[],
): ScenarioSpec {
  return {
    name,
    ingresses: [...CLOUDS],
    sessionsPerIngress: 8,
    ratePerIngress: 400,
    async faults(run: ScenarioRun) {
      for (const r of rounds) {
        const leader = await mesh.etcdLeader();
        let victims: Cloud[] = r.clouds ?? [];
        if (r.leader) {
          if (!leader) throw new Error('no etcd leader found');
          victims = [leader];
        }
        const label = victims.map((c) => (c === leader ? `${c} (leader)` : c)).join(' + ');
        await run.fault(
          `SIGKILL etcd ${label}, down ${r.downMs / 1000} s`,
          async () => {
            await Promise.all(victims.map((c) => mesh.node(c).etcd.kill('SIGKILL')));
          },
          r.downMs,
          async () => {
            for (const c of victims) mesh.node(c).etcd.start();
            await mesh.waitEtcdHealthy(30_000);
          },
        );
        await delay(1000);
      }
    },
  };
}

function impair(mesh: ChaosMesh, name: string, imp: Partial<Impairment>, ms: number): ScenarioSpec {
  return {
    name: `${name} ${ms / 1000} s (${describeImpairment(imp)})`,
    ingresses: [...CLOUDS],
    sessionsPerIngress: 8,
    ratePerIngress: 400,
    async faults(run: ScenarioRun) {
      await run.fault(
        `impair every replication link: ${JSON.stringify(imp)}`,
        () => mesh.impairAll(imp),
        ms,
        () => mesh.impairAll(NO_IMPAIRMENT),
      );
    },
  };
}

export function profile(name: ProfileName, mesh: ChaosMesh): ScenarioSpec[] {
  if (name === 'short') {
    return [
      // Issue 10's scenarios in their cheapest meaningful form: the cut still outlasts peer-down (3x) and
      // the etcd lease TTL; the replica is still down past the hand-over; 200 frames replayed.
      lossThenPartition(mesh, 'gcp', 2000, 6000),
      killLoop(
        'SIGKILL receivers x3',
        [
          { cloud: 'gcp', downMs: 1500 },
          { cloud: 'azure', downMs: 1500 },
          { cloud: 'gcp', downMs: 4000 },
        ],
        500,
      ),
      etcdKills(mesh, 'SIGKILL etcd leader', [{ leader: true, downMs: 4000 }]),
      impair(mesh, 'impair links', MODERATE, 10_000),
      replicaFailover(mesh, 'SIGKILL', 8000),
      replicaFailover(mesh, 'SIGTERM', 8000),
      replayAfterRestart(mesh, 'gcp', 200),
    ];
  }
  const issue10 = [
    lossThenPartition(mesh, 'gcp', 3000, 10_000),
    replicaFailover(mesh, 'SIGKILL'),
    replicaFailover(mesh, 'SIGTERM', 8000),
    replayAfterRestart(mesh, 'gcp', 300),
  ];
  if (name === 'issue10') return issue10;
  const downs = [500, 1500, 3000, 5000, 1000];
  return [
    partition(mesh, 'gcp', 10_000),
    partition(mesh, 'azure', 10_000),
    killLoop(
      'SIGKILL receivers x10',
      Array.from({ length: 10 }, (_, i) => ({
        cloud: (i % 2 === 0 ? 'gcp' : 'azure') as Cloud,
        downMs: downs[i % downs.length]!,
      })),
      1000,
    ),
    etcdKills(
      mesh,
      'SIGKILL each etcd member',
      CLOUDS.map((c) => ({ clouds: [c], downMs: 3000 })),
    ),
    etcdKills(mesh, 'etcd quorum loss (2 of 3)', [{ clouds: ['gcp', 'azure'], downMs: 6000 }]),
    impair(mesh, 'impair links', MODERATE, 20_000),
    impair(mesh, 'impair links heavy', HEAVY, 15_000),
    killLoop(
      'SIGKILL receivers x6 + impaired links',
      [
        { cloud: 'gcp', downMs: 1500 },
        { cloud: 'azure', downMs: 3000 },
        { cloud: 'gcp', downMs: 5000 },
        { cloud: 'azure', downMs: 500 },
        { cloud: 'gcp', downMs: 1000 },
        { cloud: 'azure', downMs: 2000 },
      ],
      1000,
      REORDERING,
      mesh,
    ),
    ...issue10,
  ];
}
