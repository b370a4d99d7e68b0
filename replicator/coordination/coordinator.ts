// The replicator's only conversation with etcd, off the per-datagram path: allocate an epoch (a txn fenced
// by the epoch key's revision that also writes our member record under our lease), keep the lease alive,
// watch the members and the dynamic config, and re-register when etcd comes back after an outage. While
// etcd is unreachable the data plane keeps the last membership it saw; `etcdUp` says so.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Etcd3, type Lease, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { keys, parseMemberRecord, type MemberRecord } from './keys.ts';

export interface CoordinatorOptions {
  mesh: string;
  cluster: string;
  instance: string;
  endpoints: string[];
  leaseTtlSeconds: number;
  dialTimeoutMs: number;
  tls?: { caFile: string; certFile?: string; keyFile?: string };
  /** The member record minus the epoch, which the coordinator allocates. */
  record: Omit<MemberRecord, 'epoch'>;
}

export interface CoordinatorEvents {
  members: [MemberRecord[]];
  /** The mesh's clusters (from the epoch keys), read with the members when the watches (re)start. */
  clusters: [string[]];
  config: [Record<string, unknown>];
  etcdUp: [boolean];
  /** A newer incarnation of this identity holds the epoch key: this process must stop replicating. */
  fenced: [number];
}

const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5000;

export class Coordinator extends EventEmitter<CoordinatorEvents> {
  epoch = 0;
  etcdUp = false;
  requests = 0;
  private readonly client: Etcd3;
  private lease: Lease | undefined;
  private stopped = false;
  private watchers: Watcher[] = [];
  private readonly members = new Map<string, MemberRecord>();
  private readonly configDocs = new Map<string, Record<string, unknown>>();
  private reregistering = false;
  /** Set once a newer incarnation of this identity exists (see reregister). */
  fenced = false;

  constructor(
    private readonly opts: CoordinatorOptions,
    private readonly log: Logger,
  ) {
    super();
    const tls = opts.tls;
    this.client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: opts.dialTimeoutMs,
      credentials: tls
        ? {
            rootCertificate: readFileSync(tls.caFile),
            privateKey: tls.keyFile ? readFileSync(tls.keyFile) : undefined,
            certChain: tls.certFile ? readFileSync(tls.certFile) : undefined,
          }
        : undefined,
    });
  }

  private get memberKey(): string {
    return keys.member(this.opts.mesh, this.opts.cluster, this.opts.instance);
  }

  /** Resolves once an epoch is held and the member record is written; retries until then (or stop()). */
  async start(): Promise<number> {
    let delay = RETRY_MIN_MS;
    while (!this.stopped) {
      try {
        await this.allocateEpoch();
        this.setUp(true);
        break;
      } catch (err) {
        this.setUp(false);
        this.log.warn(
          { err: (err as Error).message, retryInMs: delay },
          'etcd: cannot allocate an epoch yet',
        );
        await sleep(delay);
        delay = Math.min(RETRY_MAX_MS, delay * 2);
      }
    }
    if (this.stopped) return this.epoch;
    await this.startWatches();
    return this.epoch;
  }

  private newLease(): Lease {
    const lease = this.client.lease(this.opts.leaseTtlSeconds, { autoKeepAlive: true });
    lease.on('keepaliveFired', () => this.requests++);
    lease.on('keepaliveSucceeded', () => this.setUp(true));
    lease.on('keepaliveFailed', () => this.setUp(false));
    lease.on('lost', (err) => {
      if (this.stopped || lease !== this.lease) return;
      this.log.warn({ err: err.message }, 'etcd: lease lost; re-registering when etcd answers');
      this.setUp(false);
      void this.reregister();
    });
    return lease;
  }

  private async allocateEpoch(): Promise<void> {
    const epochKey = keys.epoch(this.opts.mesh, this.opts.cluster, this.opts.instance);
    for (;;) {
      this.requests++;
      const res = await this.client.get(epochKey).exec();
      const kv = res.kvs[0];
      const current = kv ? Number(kv.value.toString()) : 0;
      const modRevision = kv ? kv.mod_revision : '0';
      const next = (Number.isFinite(current) ? current : 0) + 1;
      const lease = this.lease ?? this.newLease();
      this.lease = lease;
      this.requests++;
      const leaseId = await lease.grant();
      const record: MemberRecord = { ...this.opts.record, epoch: next };
      this.requests++;
      // Fenced: succeeds only if nobody bumped the epoch since we read it, and binds the member record to
      // our lease in the same transaction. A concurrent incarnation loses and retries with a fresh read.
      const txn = await this.client
        .if(epochKey, 'Mod', '==', modRevision)
        .then(
          this.client.put(epochKey).value(String(next)),
          this.client.put(this.memberKey).value(JSON.stringify(record)).lease(leaseId),
        )
        .commit();
      if (txn.succeeded) {
        this.epoch = next;
        this.log.info({ epoch: next, leaseId }, 'etcd: epoch allocated and member registered');
        return;
      }
    }
  }

  /**
   * After a lost lease: a new lease, the same epoch, the member record written again — fenced by the same
   * rule as epoch allocation: only if the epoch key still holds our epoch. Otherwise a newer process of
   * this identity exists; writing our record over its would hide it (split brain), so we are fenced out.
   */
  private async reregister(): Promise<void> {
    if (this.reregistering) return;
    this.reregistering = true;
    let delay = RETRY_MIN_MS;
    try {
      while (!this.stopped) {
        try {
          const old = this.lease;
          this.lease = this.newLease();
          old?.release();
          this.requests += 2;
          const leaseId = await this.lease.grant();
          const epochKey = keys.epoch(this.opts.mesh, this.opts.cluster, this.opts.instance);
          this.requests++;
          const txn = await this.client
            .if(epochKey, 'Value', '==', String(this.epoch))
            .then(
              this.client
                .put(this.memberKey)
                .value(JSON.stringify({ ...this.opts.record, epoch: this.epoch }))
                .lease(leaseId),
            )
            .commit();
          if (!txn.succeeded) {
            this.fenced = true;
            this.stopped = true;
            const held = this.lease;
            this.lease = undefined;
            await held?.revoke().catch(() => {});
            this.log.error(
              { epoch: this.epoch },
              'etcd: a newer incarnation of this member exists: fenced out',
            );
            this.emit('fenced', this.epoch);
            return;
          }
          this.setUp(true);
          this.log.info({ epoch: this.epoch }, 'etcd: re-registered');
          return;
        } catch (err) {
          this.log.warn({ err: (err as Error).message, retryInMs: delay }, 'etcd: re-registration failed');
          await sleep(delay);
          delay = Math.min(RETRY_MAX_MS, delay * 2);
        }
      }
    } finally {
      this.reregistering = false;
    }
  }

  private async startWatches(): Promise<void> {
    const mesh = this.opts.mesh;
    const membersPrefix = keys.membersPrefix(mesh);
    const configPrefix = keys.config(mesh);
    let delay = RETRY_MIN_MS;
    while (!this.stopped) {
      try {
        this.requests += 3;
        const epochKeys = await this.client.getAll().prefix(keys.epochsPrefix(mesh)).keys();
        this.emit('clusters', clustersOfEpochKeys(epochKeys, keys.epochsPrefix(mesh)));
        const members = await this.client.getAll().prefix(membersPrefix).exec();
        for (const kv of members.kvs) this.onMemberPut(kv.key.toString(), kv.value.toString(), false);
        this.emit('members', [...this.members.values()]);
        const configs = await this.client.getAll().prefix(configPrefix).exec();
        for (const kv of configs.kvs) this.onConfigPut(kv.key.toString(), kv.value.toString(), false);
        this.emitConfig();
        const rev = String(Number(members.header.revision) + 1);
        this.requests += 2;
        const mw = await this.client.watch().prefix(membersPrefix).startRevision(rev).create();
        mw.on('put', (kv) => this.onMemberPut(kv.key.toString(), kv.value.toString(), true));
        mw.on('delete', (kv) => {
          if (this.members.delete(kv.key.toString())) this.emit('members', [...this.members.values()]);
        });
        const cw = await this.client
          .watch()
          .prefix(configPrefix)
          .startRevision(String(Number(configs.header.revision) + 1))
          .create();
        cw.on('put', (kv) => this.onConfigPut(kv.key.toString(), kv.value.toString(), true));
        cw.on('delete', (kv) => {
          if (this.configDocs.delete(kv.key.toString())) this.emitConfig();
        });
        for (const w of [mw, cw]) {
          w.on('disconnected', () => this.setUp(false));
          w.on('connected', () => this.requests++);
          w.on('error', (err) => this.log.warn({ err: err.message }, 'etcd: watch error'));
        }
        this.watchers = [mw, cw];
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'etcd: cannot start watches yet');
        await sleep(delay);
        delay = Math.min(RETRY_MAX_MS, delay * 2);
      }
    }
  }

  private onMemberPut(key: string, value: string, emit: boolean): void {
    const rec = parseMemberRecord(value);
    if (!rec) {
      this.log.warn({ key }, 'etcd: ignoring a malformed member record');
      return;
    }
    this.members.set(key, rec);
    if (emit) this.emit('members', [...this.members.values()]);
  }

  private onConfigPut(key: string, value: string, emit: boolean): void {
    try {
      const doc = JSON.parse(value) as unknown;
      if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not a JSON object');
      this.configDocs.set(key, doc as Record<string, unknown>);
      if (emit) this.emitConfig();
    } catch (err) {
      this.log.warn({ key, err: (err as Error).message }, 'etcd: ignoring malformed dynamic config');
    }
  }

  /** The global document, then this cluster's overrides on top. */
  private emitConfig(): void {
    const global = this.configDocs.get(keys.config(this.opts.mesh)) ?? {};
    const mine = this.configDocs.get(keys.clusterConfig(this.opts.mesh, this.opts.cluster)) ?? {};
    this.emit('config', deepMerge(global, mine));
  }

  private setUp(up: boolean): void {
    if (this.etcdUp === up) return;
    this.etcdUp = up;
    this.emit('etcdUp', up);
  }

  /** Leaves the membership at once (revokes the lease) so peers stop waiting for us. */
  /**
   * Leaves the membership now (revokes the lease: the member record vanishes) but keeps the client and
   * the watches: a draining replica stops being chosen for new sessions while it still answers for what
   * it holds. Never re-registers afterwards.
   */
  async leave(): Promise<void> {
    this.stopped = true;
    if (this.lease) await withTimeout(this.lease.revoke(), 1000).catch(() => {});
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.watchers) await w.cancel().catch(() => {});
    if (this.lease) await withTimeout(this.lease.revoke(), 1000).catch(() => {});
    this.client.close();
  }
}

export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      prev &&
      typeof prev === 'object' &&
      !Array.isArray(prev)
        ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, rej) => setTimeout(() => rej(new Error('timeout')), ms).unref()),
  ]);
}

/** `<prefix><cluster>/<instance>` keys to the distinct cluster names. */
export function clustersOfEpochKeys(epochKeys: string[], prefix: string): string[] {
  const out = new Set<string>();
  for (const k of epochKeys) {
    if (!k.startsWith(prefix)) continue;
    const cluster = k.slice(prefix.length).split('/')[0];
    if (cluster) out.add(cluster);
  }
  return [...out];
}
