// The chaos profiles. short: one scenario per fault type, about 1.5 minutes in all (CI, as a mocha
// test). full (`npm run chaos`): both non-ingress clouds partitioned, a long SIGKILL loop with down times
// on both sides of the etcd lease TTL, every etcd member killed in turn and a quorum loss, moderate and
// heavy link impairment, and a kill loop under impairment.
import { NO_IMPAIRMENT, type Impairment } from '../harness/impairmentProxy.ts';
import { delay } from '../harness/wait.ts';
import { CLOUDS, type ChaosMesh, type Cloud } from './chaosMesh.ts';
import type { ScenarioRun, ScenarioSpec } from './scenario.ts';

export type ProfileName = 'short' | 'full';

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
      partition(mesh, 'gcp', 10_000),
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
    ];
  }
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
  ];
}
