// The etcd key layout, in one place. Members are leased (they vanish with their replicator); epochs are
// not (they must outlive every incarnation); dynamic config is written by operators or the platform.
import { PUBLIC_KEY_PATTERN } from '../protocol/memberKeys.ts';

export const keys = {
  root: (mesh: string) => `/udpmesh/${mesh}/`,
  membersPrefix: (mesh: string) => `/udpmesh/${mesh}/members/`,
  member: (mesh: string, cluster: string, instance: string) =>
    `/udpmesh/${mesh}/members/${cluster}/${instance}`,
  epoch: (mesh: string, cluster: string, instance: string) =>
    `/udpmesh/${mesh}/epochs/${cluster}/${instance}`,
  /** Every identity that ever registered has an epoch key: the mesh's clusters, even with no member up. */
  epochsPrefix: (mesh: string) => `/udpmesh/${mesh}/epochs/`,
  /** Global dynamic config; `${configPrefix}/<cluster>` overrides it for one cluster. */
  config: (mesh: string) => `/udpmesh/${mesh}/config`,
  clusterConfig: (mesh: string, cluster: string) => `/udpmesh/${mesh}/config/${cluster}`,
};

export interface MemberRecord {
  id: string;
  cluster: string;
  instance: string;
  /** Replication endpoint peers send to. */
  address: string;
  port: number;
  ingressPorts: number[];
  metricsPort: number;
  epoch: number;
  startedAt: string;
  /**
   * This incarnation's X25519 public key (protocol/memberKeys.ts): peers key their link to it with it, so
   * no other member can speak as this one. Absent in records of replicators older than link keys v3.
   */
  publicKey?: string;
}

export function parseMemberRecord(value: string): MemberRecord | undefined {
  try {
    const v = JSON.parse(value) as Partial<MemberRecord>;
    if (
      typeof v.id === 'string' &&
      typeof v.cluster === 'string' &&
      typeof v.address === 'string' &&
      typeof v.port === 'number' &&
      typeof v.epoch === 'number' &&
      // A key that cannot be one is refused with the record: a peer must never fall back to a weaker key.
      (v.publicKey === undefined || (typeof v.publicKey === 'string' && PUBLIC_KEY_PATTERN.test(v.publicKey)))
    ) {
      return v as MemberRecord;
    }
  } catch {
    /* fall through: a malformed record is ignored, not fatal */
  }
  return undefined;
}
