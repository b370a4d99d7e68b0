// One chaos scenario: load from the client namespace into one or more ingresses, faults injected and
// healed while it runs, the outage window of each fault measured by polling, then the checks:
//  - accepted = datagrams the ingresses counted (udpmesh_ingress_datagrams_total delta; the ingresses
//    stay up in every scenario);
//  - every accepted datagram reaches every cloud (all clouds are up again well within the 5-minute
//    retention window): lost = accepted - distinct delivered, per cloud;
//  - duplicates: none, except for a receiver that was SIGKILLed and restarted (at-least-once redelivery
//    around the crash), which are counted and bounded; never inside one replicator incarnation;
//  - per-session order in every replicator incarnation (a killed receiver's deliveries are split at each
//    restart and each part is checked on its own).
//  - a datagram missing at a cloud is loss unless an origin counted it abandoned for a replica of that
//    cloud (udpmesh_abandoned_total, any reason but handover, which moves datagrams to another replica);
// Outage window of a fault = fault injection -> full recovery, where full recovery is the first poll at
// which every cloud has delivered (distinct) at least what the ingresses had accepted RECOVERY_LAG_MS
// earlier (the load keeps running, so "equal" is approached with a small, fixed lag allowance).
import type { SessionGroup, AnalyzeResult, CloudStats } from './agent.ts';
import { CLOUDS, type ChaosMesh, type Cloud } from './chaosMesh.ts';
import type { LoadStatus } from './loadGen.ts';
import { delay, waitFor } from '../harness/wait.ts';
import type { Timeline, TimelineSample, TimelineWindow } from './timeline.ts';

export const POLL_MS = 100;
export const RECOVERY_LAG_MS = 300;
/** Sampling period of the delivered-per-second timeline. */
export const TIMELINE_MS = 250;

export interface ScenarioSpec {
  /** Label in the table, e.g. "partition gcp 10 s". */
  name: string;
  ingresses: Cloud[];
  sessionsPerIngress: number;
  /** Datagrams/s per ingress. */
  ratePerIngress: number;
  /** Clouds whose replicator this scenario SIGKILLs (receivers: redelivery around a crash is allowed). */
  killsReceivers?: boolean;
  /** Allowed duplicates per receiver kill, in seconds of load (default 1 s of the total rate). */
  duplicateBudgetSeconds?: number;
  /** Load before the first fault and after the last recovery. */
  warmupMs?: number;
  cooldownMs?: number;
  /** How long to wait for recovery after a heal before declaring the fault unrecovered. */
  recoveryTimeoutMs?: number;
  /** Longest outage (injection to full recovery) a fault may cause; beyond it the scenario fails. */
  maxOutageMs?: number;
  /** Before the load starts (e.g. add a replica); a failure here fails the scenario. */
  prepare?(run: ScenarioRun): Promise<void>;
  /** Inject the faults (use run.fault(...)); runs while the load is on. */
  faults(run: ScenarioRun): Promise<void>;
  /** After the checks (e.g. remove the added replica), so the next scenario starts from the usual mesh. */
  teardown?(run: ScenarioRun): Promise<void>;
}

export interface FaultWindow {
  label: string;
  injectedAt: number;
  healedAt: number;
  recoveredAt: number | undefined;
  /** Shaded on the timeline (default); false when the scenario shades its phases itself (run.band). */
  drawn: boolean;
  /** An outage is expected and measured (default); false for an event that must not disturb delivery. */
  outage: boolean;
}

export interface CloudResult {
  cloud: Cloud;
  analysis: AnalyzeResult;
  lost: number;
  stats: CloudStats | undefined;
  /** Kernel drops on the backend's socket during this scenario (datagrams the replicator sent that the backend never read). */
  backendKernelDrops: number;
}

export interface ScenarioResult {
  name: string;
  sent: number;
  accepted: number;
  clouds: CloudResult[];
  lost: number;
  duplicates: number;
  duplicatesWithinIncarnation: number;
  duplicateBudget: number;
  orderViolations: number;
  /** Datagrams origins counted abandoned for this scenario's receivers (not handover), per cloud. */
  abandoned: Record<string, number>;
  /** Datagrams origins moved to another replica of a cluster (abandoned with reason handover). */
  movedByHandover: number;
  timeline: Timeline;
  windows: FaultWindow[];
  receiverKills: number;
  failures: string[];
  notes: string[];
  durationMs: number;
}

interface Sample {
  t: number;
  accepted: number;
}

export class ScenarioRun {
  readonly windows: FaultWindow[] = [];
  readonly marks = new Map<Cloud, number[]>();
  receiverKills = 0;
  private readonly samples: Sample[] = [];
  private readonly base = new Map<Cloud, number>();
  private readonly lastIngress = new Map<Cloud, number>();
  private sampling = false;
  private samplerDone: Promise<void> = Promise.resolve();
  readonly groups: SessionGroup[] = [];
  readonly loadIds: string[] = [];
  readonly notes: string[] = [];
  /** Failures found by the scenario's own checks while it ran (run.fail). */
  private readonly ownFailures: string[] = [];
  /** Extra shaded ranges on the timeline (phases of a fault). */
  private readonly bands: TimelineWindow[] = [];
  private readonly timelineSamples: TimelineSample[] = [];
  private loadStartedAt = 0;
  private timelineOn = false;
  private timelineDone: Promise<void> = Promise.resolve();

  constructor(
    readonly mesh: ChaosMesh,
    readonly spec: ScenarioSpec,
    readonly sessionBase: number,
  ) {}

  get ranges(): [number, number][] {
    return this.spec.ingresses.map((_, i) => {
      const lo = this.sessionBase + i * this.spec.sessionsPerIngress;
      return [lo, lo + this.spec.sessionsPerIngress - 1];
    });
  }

  log(s: string): void {
    this.mesh.log(`  [${this.spec.name}] ${s}`);
  }

  /** A failed check of the scenario's own (reported with the others, the scenario goes on). */
  fail(message: string): void {
    this.ownFailures.push(message);
    this.log(`FAILED: ${message}`);
  }

  /** Shade [from, to] on the timeline with a label. */
  band(label: string, from: number, to: number): void {
    this.bands.push({ label, from, to });
  }

  /** Split a cloud's backend arrivals here: what follows is checked as another incarnation's deliveries. */
  async markBackend(cloud: Cloud): Promise<void> {
    const idx = await this.mesh.mark(cloud);
    const list = this.marks.get(cloud) ?? [];
    list.push(idx);
    this.marks.set(cloud, list);
  }

  private startTimeline(): void {
    this.timelineOn = true;
    this.timelineDone = (async () => {
      while (this.timelineOn && !this.mesh.isStopped) {
        const t = Date.now();
        try {
          const delivered = await this.delivered();
          const last = this.samples[this.samples.length - 1];
          this.timelineSamples.push({ t, accepted: last?.accepted ?? 0, delivered });
        } catch {
          /* the agents are gone (teardown); the run itself reports the cause */
        }
        await delay(Math.max(0, TIMELINE_MS - (Date.now() - t)));
      }
    })();
  }

  private async ingressCount(c: Cloud): Promise<number | undefined> {
    const s = await this.mesh.scrape(c);
    if (!s) return undefined;
    let v = 0;
    for (const x of s) if (x.name === 'udpmesh_ingress_datagrams_total') v += x.value;
    return v;
  }

  /** Accepted so far (sum over ingresses of the counter delta); the last known value for one that does not answer. */
  private async acceptedNow(): Promise<number> {
    let total = 0;
    for (const c of this.spec.ingresses) {
      const v = await this.ingressCount(c);
      if (v !== undefined) this.lastIngress.set(c, v);
      total += (this.lastIngress.get(c) ?? this.base.get(c)!) - this.base.get(c)!;
    }
    return total;
  }

  private startSampler(): void {
    this.sampling = true;
    this.samplerDone = (async () => {
      while (this.sampling && !this.mesh.isStopped) {
        const t = Date.now();
        try {
          this.samples.push({ t, accepted: await this.acceptedNow() });
        } catch {
          /* the client agent is gone (teardown); the run itself reports the cause */
        }
        await delay(Math.max(0, POLL_MS - (Date.now() - t)));
      }
    })();
  }

  /** Accepted count of the latest sample taken at or before t, if that sample is recent enough to judge by. */
  private acceptedAsOf(t: number): number | undefined {
    let v: Sample | undefined;
    for (const s of this.samples) {
      if (s.t <= t) v = s;
      else break;
    }
    // A starved sampler (heavily loaded machine) must not make an old, smaller count the reference.
    return v && t - v.t <= 4 * POLL_MS ? v.accepted : undefined;
  }

  private async delivered(): Promise<Record<Cloud, number>> {
    const out = {} as Record<Cloud, number>;
    await Promise.all(CLOUDS.map(async (c) => (out[c] = await this.mesh.distinct(c, this.ranges))));
    return out;
  }

  /** Poll until every cloud delivered what was accepted RECOVERY_LAG_MS ago; the recovery time, or undefined on timeout. */
  async waitRecovered(timeoutMs: number): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const t = Date.now();
      const ref = this.acceptedAsOf(t - RECOVERY_LAG_MS);
      if (ref !== undefined && ref > 0) {
        const d = await this.delivered();
        if (CLOUDS.every((c) => d[c] >= ref)) return t;
      }
      await delay(Math.max(0, POLL_MS - (Date.now() - t)));
    }
    return undefined;
  }

  /** Inject a fault, keep it for holdMs, heal it, and measure injection -> full recovery. */
  async fault(
    label: string,
    inject: () => Promise<void> | void,
    holdMs: number,
    heal: () => Promise<void> | void,
    opts: {
      draw?: boolean;
      /**
       * The mesh must recover while the fault is still held (a failover): the outage window ends at the
       * last catch-up during the hold, and a cloud still behind at its end is a failure (the window then
       * ends at the recovery after the heal, which is required either way).
       */
      recoverWhileHeld?: boolean;
      /** false: nothing should stall (e.g. a replay of old frames); not measured, not in the outage cell. */
      outage?: boolean;
    } = {},
  ): Promise<FaultWindow> {
    const injectedAt = Date.now();
    await inject();
    let heldRecoveredAt: number | undefined;
    if (opts.recoverWhileHeld) heldRecoveredAt = await this.watchOutage(injectedAt + holdMs);
    await delay(Math.max(0, holdMs - (Date.now() - injectedAt)));
    await heal();
    const healedAt = Date.now();
    const outage = opts.outage ?? true;
    const afterHeal = outage ? await this.waitRecovered(this.spec.recoveryTimeoutMs ?? 60_000) : undefined;
    let recoveredAt = afterHeal;
    if (opts.recoverWhileHeld) {
      if (heldRecoveredAt !== undefined) recoveredAt = heldRecoveredAt;
      else
        this.fail(
          `${label}: a cloud was still behind when the fault ended after ${holdMs / 1000} s (no failover while it was held)`,
        );
    }
    const w: FaultWindow = { label, injectedAt, healedAt, recoveredAt, drawn: opts.draw ?? true, outage };
    this.windows.push(w);
    this.log(
      `${label}: healed after ${((healedAt - injectedAt) / 1000).toFixed(1)} s, ` +
        (!outage
          ? 'no outage expected'
          : recoveredAt
            ? `full recovery ${((recoveredAt - injectedAt) / 1000).toFixed(1)} s after injection`
            : opts.recoverWhileHeld
              ? 'NOT RECOVERED while the fault was held'
              : 'NOT RECOVERED'),
    );
    return w;
  }

  /**
   * Poll until `until`: the time of the last catch-up (every cloud delivered what was accepted
   * RECOVERY_LAG_MS earlier, after having been behind), the injection time when it never fell behind, or
   * undefined when it is behind at the end.
   */
  private async watchOutage(until: number): Promise<number | undefined> {
    let caughtUpAt: number | undefined = Date.now();
    while (Date.now() < until) {
      const t = Date.now();
      const ref = this.acceptedAsOf(t - RECOVERY_LAG_MS);
      if (ref !== undefined) {
        const d = await this.delivered();
        const ok = CLOUDS.every((c) => d[c] >= ref);
        if (!ok) caughtUpAt = undefined;
        else caughtUpAt ??= t;
      }
      await delay(Math.max(0, POLL_MS - (Date.now() - t)));
    }
    return caughtUpAt;
  }

  /** SIGKILL a (non-ingress) replicator, keep it down downMs, restart it; its backend's deliveries are split at the restart. */
  async killReceiver(
    cloud: Cloud,
    downMs: number,
    label = `SIGKILL replicator ${cloud}`,
  ): Promise<FaultWindow> {
    if (this.spec.ingresses.includes(cloud))
      throw new Error(`scenario bug: ${cloud} is an ingress of ${this.spec.name}`);
    const node = this.mesh.node(cloud);
    return this.fault(
      label,
      async () => {
        await node.replicator.kill('SIGKILL');
        this.receiverKills++;
      },
      downMs,
      async () => {
        await this.markBackend(cloud);
        node.replicator.start();
        await this.mesh.waitReady(cloud, 30_000);
      },
    );
  }

  /** Retransmits, receiver-side duplicate drops and drops by reason, per replicator (undefined when it does not answer). */
  private async counters(): Promise<Map<Cloud, { starts: number; values: Map<string, number> } | undefined>> {
    const out = new Map<Cloud, { starts: number; values: Map<string, number> } | undefined>();
    for (const c of CLOUDS) {
      const starts = this.mesh.node(c).replicator.startCount;
      const s = await this.mesh.scrape(c);
      if (!s) {
        out.set(c, undefined);
        continue;
      }
      const values = new Map<string, number>();
      for (const x of s) {
        let key: string | undefined;
        if (x.name === 'udpmesh_retransmits_total') key = 'retransmits';
        else if (x.name === 'udpmesh_dropped_datagrams_total') key = `dropped{${x.labels.reason ?? ''}}`;
        else if (x.name === 'udpmesh_duplicates_dropped_total') key = 'duplicates dropped by receivers';
        if (key) values.set(key, (values.get(key) ?? 0) + x.value);
      }
      out.set(c, { starts, values });
    }
    return out;
  }

  /** udpmesh_abandoned_total at each ingress (the origins), by "peer reason". */
  private async abandonedCounts(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const c of this.spec.ingresses) {
      const s = await this.mesh.scrape(c);
      for (const x of s ?? [])
        if (x.name === 'udpmesh_abandoned_total') {
          const k = `${x.labels.peer ?? ''} ${x.labels.reason ?? ''}`;
          out.set(k, (out.get(k) ?? 0) + x.value);
        }
    }
    return out;
  }

  /** Counter increases during the scenario, summed over clouds. A replicator restarted meanwhile counts from 0
   * in its last incarnation only (what earlier incarnations counted after the first scrape is not included). */
  private static counterDeltas(
    before: Map<Cloud, { starts: number; values: Map<string, number> } | undefined>,
    after: Map<Cloud, { starts: number; values: Map<string, number> } | undefined>,
  ): string[] {
    const sum = new Map<string, number>();
    for (const c of CLOUDS) {
      const a = after.get(c);
      if (!a) continue;
      const b = before.get(c);
      const restarted = !b || b.starts !== a.starts;
      for (const [k, v] of a.values) {
        const d = restarted ? v : v - (b.values.get(k) ?? 0);
        if (d > 0) sum.set(k, (sum.get(k) ?? 0) + d);
      }
    }
    return [...sum].map(([k, v]) => `${k}=${v}`);
  }

  async run(): Promise<ScenarioResult> {
    const spec = this.spec;
    const started = Date.now();
    const failures: string[] = [];
    if (spec.prepare) await spec.prepare(this);
    const countersBefore = await this.counters();
    const abandonedBefore = await this.abandonedCounts();
    const backendDropsBefore = new Map<Cloud, number>();
    for (const c of CLOUDS) backendDropsBefore.set(c, (await this.mesh.stats(c)).kernelDrops);
    for (const c of spec.ingresses) {
      const v = await this.ingressCount(c);
      if (v === undefined) throw new Error(`ingress ${c} does not answer before ${spec.name}`);
      this.base.set(c, v);
    }
    const clientAddr = this.mesh.clientHost!.address;
    for (const [i, c] of spec.ingresses.entries()) {
      const id = `${spec.name}#${c}`;
      this.loadIds.push(id);
      await this.mesh.startLoad(id, {
        host: this.mesh.node(c).host.address,
        port: 7001,
        bindHost: clientAddr,
        sessions: spec.sessionsPerIngress,
        maxPerSession: 10_000_000,
        rate: spec.ratePerIngress,
        sessionBase: this.ranges[i]![0],
      });
    }
    this.loadStartedAt = Date.now();
    this.startSampler();
    this.startTimeline();
    let loads: LoadStatus[] = [];
    let faultError: Error | undefined;
    try {
      await delay(spec.warmupMs ?? 2000);
      try {
        await spec.faults(this);
      } catch (err) {
        faultError = err as Error;
        failures.push(`fault injection failed: ${faultError.message.split('\n')[0]}`);
        this.notes.push(`fault injection error: ${faultError.stack ?? faultError.message}`);
      }
      await delay(spec.cooldownMs ?? 1000);
    } finally {
      try {
        loads = await Promise.all(this.loadIds.map((id) => this.mesh.stopLoad(id)));
      } finally {
        if (loads.length === 0) {
          this.sampling = false;
          await this.samplerDone;
        }
      }
    }
    for (const [i, l] of loads.entries()) {
      const [lo, hi] = this.ranges[i]!;
      this.groups.push({ lo, hi, perSession: l.perSession });
    }
    const sent = loads.reduce((a, l) => a + l.sent, 0);
    // The ingress counters settle once the last datagrams are read.
    let accepted = -1;
    await waitFor(
      async () => {
        const a = await this.acceptedNow();
        const stable = a === accepted && a >= sent;
        accepted = a;
        return stable;
      },
      { timeoutMs: 3000, intervalMs: 300, what: 'ingress counters stable' },
    ).catch(() => undefined);
    this.sampling = false;
    await this.samplerDone;
    if (accepted !== sent)
      this.notes.push(
        `ingresses counted ${accepted} of ${sent} datagrams sent (the rest never reached an ingress socket)`,
      );
    // Every cloud has every accepted datagram (or the deadline passes: the loss is then reported).
    const finalWait = spec.recoveryTimeoutMs ?? 60_000;
    await waitFor(
      async () => {
        const d = await this.delivered();
        return CLOUDS.every((c) => d[c] >= accepted);
      },
      { timeoutMs: finalWait, intervalMs: 200, what: 'every cloud delivered every accepted datagram' },
    ).catch(() =>
      failures.push(`not every cloud had every accepted datagram ${finalWait / 1000} s after the load ended`),
    );
    await this.quiesce().catch((e: Error) => this.notes.push(e.message.split('\n')[0]!));
    this.timelineOn = false;
    await this.timelineDone;
    // What the origins gave up for each receiver cloud (a handover moves datagrams: not given up).
    const abandoned: Record<string, number> = Object.fromEntries(CLOUDS.map((c) => [c, 0]));
    let movedByHandover = 0;
    for (const [k, v] of await this.abandonedCounts()) {
      const d = v - (abandonedBefore.get(k) ?? 0);
      if (d <= 0) continue;
      const [peer, reason] = k.split(' ');
      this.notes.push(`origins abandoned ${d} datagrams for ${peer} (reason ${reason})`);
      if (reason === 'handover') movedByHandover += d;
      else {
        const cloud = (peer ?? '').split('/')[0]!;
        if (cloud in abandoned) abandoned[cloud]! += d;
      }
    }
    const clouds: CloudResult[] = [];
    for (const c of CLOUDS) {
      const analysis = await this.mesh.analyze(c, this.groups, this.marks.get(c) ?? []);
      const stats = await this.mesh.stats(c).catch(() => undefined);
      const backendKernelDrops = stats ? stats.kernelDrops - backendDropsBefore.get(c)! : 0;
      clouds.push({
        cloud: c,
        analysis,
        lost: Math.max(0, accepted - analysis.distinct),
        stats,
        backendKernelDrops,
      });
    }
    await Promise.all(this.loadIds.map((id) => this.mesh.closeLoad(id)));
    const deltas = ScenarioRun.counterDeltas(countersBefore, await this.counters());
    if (deltas.length) this.notes.push(`replicator counters during the scenario: ${deltas.join(' ')}`);
    const lost = clouds.reduce((a, c) => a + c.lost, 0);
    const duplicates = clouds.reduce((a, c) => a + c.analysis.duplicates, 0);
    const duplicatesWithinIncarnation = clouds.reduce((a, c) => a + c.analysis.duplicatesWithinSegment, 0);
    const orderViolations = clouds.reduce((a, c) => a + c.analysis.outOfOrder, 0);
    const totalRate = spec.ratePerIngress * spec.ingresses.length;
    const duplicateBudget = spec.killsReceivers
      ? Math.ceil(this.receiverKills * totalRate * (spec.duplicateBudgetSeconds ?? 1))
      : 0;

    for (const c of clouds) {
      if (c.lost > 0 || c.analysis.outOfOrder > 0 || c.analysis.duplicatesWithinSegment > 0) {
        const file = await this.mesh
          .dumpArrivals(c.cloud, this.groups, spec.name)
          .catch((e: Error) => `(dump failed: ${e.message})`);
        const marks = this.marks.get(c.cloud) ?? [];
        this.notes.push(
          `${c.cloud}: arrivals of this scenario's sessions in ${file}${marks.length ? `; restarts at arrival indexes ${marks.join(', ')}` : ''}`,
        );
      }
      const counted = abandoned[c.cloud] ?? 0;
      if (c.lost > 0 && c.lost <= counted)
        this.notes.push(
          `${c.cloud}: ${c.lost} datagrams missing, all counted abandoned at the origin (${counted})`,
        );
      else if (c.lost > 0) {
        const drops =
          c.backendKernelDrops > 0
            ? `; the kernel dropped ${c.backendKernelDrops} datagrams on the backend's socket (receive buffer full) meanwhile`
            : '';
        failures.push(
          `${c.cloud}: ${c.lost} of ${accepted} accepted datagrams never delivered` +
            `${counted > 0 ? ` (${counted} of them counted abandoned at the origin)` : ''}` +
            ` (${c.analysis.examples.slice(0, 3).join('; ')})${drops}`,
        );
      }
      if (c.analysis.unexpected > 0)
        failures.push(`${c.cloud}: ${c.analysis.unexpected} datagrams that were never sent`);
      if (c.stats && c.stats.invalid > 0)
        failures.push(
          `${c.cloud}: ${c.stats.invalid} corrupted datagrams (${c.stats.invalidExamples.slice(0, 2).join('; ')})`,
        );
    }
    if (orderViolations > 0) failures.push(`${orderViolations} per-session order violations`);
    if (spec.killsReceivers) {
      if (duplicatesWithinIncarnation > 0)
        failures.push(`${duplicatesWithinIncarnation} duplicates delivered by one replicator incarnation`);
      if (duplicates > duplicateBudget)
        failures.push(
          `${duplicates} duplicate deliveries around ${this.receiverKills} receiver kills > budget ${duplicateBudget}`,
        );
    } else if (duplicates > 0) failures.push(`${duplicates} duplicate deliveries (no receiver was killed)`);
    for (const w of this.windows)
      if (w.outage && w.recoveredAt === undefined)
        failures.push(
          `${w.label}: no full recovery within ${(spec.recoveryTimeoutMs ?? 60_000) / 1000} s of the heal`,
        );
    if (spec.maxOutageMs !== undefined)
      for (const w of this.windows)
        if (w.outage && w.recoveredAt !== undefined && w.recoveredAt - w.injectedAt > spec.maxOutageMs)
          failures.push(
            `${w.label}: outage ${((w.recoveredAt - w.injectedAt) / 1000).toFixed(1)} s > ${spec.maxOutageMs / 1000} s`,
          );
    if (this.windows.length === 0 && !faultError) failures.push('no fault was injected');
    failures.push(...this.ownFailures);
    if (spec.teardown)
      await spec
        .teardown(this)
        .catch((e: Error) => failures.push(`teardown failed: ${e.message.split('\n')[0]}`));
    for (const e of this.mesh.takeUnexpectedExits()) failures.push(e);
    const timeline: Timeline = {
      t0: this.loadStartedAt,
      samples: this.timelineSamples,
      windows: [
        ...this.windows
          .filter((w) => w.drawn)
          .map((w) => ({ label: w.label, from: w.injectedAt, to: w.healedAt })),
        ...this.bands,
      ],
      markers: this.windows.flatMap((w) =>
        w.recoveredAt === undefined ? [] : [{ at: w.recoveredAt, label: `${w.label}: recovered` }],
      ),
    };
    return {
      name: spec.name,
      sent,
      accepted,
      clouds,
      lost,
      duplicates,
      duplicatesWithinIncarnation,
      duplicateBudget,
      orderViolations,
      abandoned,
      movedByHandover,
      timeline,
      windows: this.windows,
      receiverKills: this.receiverKills,
      failures,
      notes: this.notes,
      durationMs: Date.now() - started,
    };
  }

  /** No replicator holds unacknowledged datagrams, no proxy holds delayed ones, backend counts are stable. */
  private async quiesce(): Promise<void> {
    let last = '';
    await waitFor(
      async () => {
        let lag = 0;
        for (const c of CLOUDS) {
          const s = await this.mesh.scrape(c);
          if (!s) return false;
          for (const x of s) if (x.name === 'udpmesh_replication_lag_datagrams') lag += x.value;
        }
        const stats = await Promise.all(CLOUDS.map((c) => this.mesh.stats(c)));
        const queued = stats.reduce((a, s) => a + s.proxyQueued, 0);
        const counts = stats.map((s) => s.count).join(',');
        const stable = counts === last;
        last = counts;
        return lag === 0 && queued === 0 && stable;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: 'replication lag 0 everywhere and backend counts stable' },
    );
  }
}
