// The mesh's inter-cluster frame key for a local stack, generated here (node:crypto) instead of with
// the random provider (no provider plugins on a local stack). Stored in the state as a secret output.
import { randomBytes } from 'node:crypto';
import type { DiffResult } from './common.ts';

export interface ClusterKeyInputs {
  /** Change it to rotate the key. */
  generation: number;
}

export interface ClusterKeyOutputs extends ClusterKeyInputs {
  key: string;
}

export function create(i: ClusterKeyInputs): { id: string; outs: ClusterKeyOutputs } {
  return { id: `cluster-key-${i.generation}`, outs: { ...i, key: randomBytes(32).toString('hex') } };
}

export function read(id: string, props: ClusterKeyOutputs): ClusterKeyOutputs {
  return props;
}

export function diff(_id: string, olds: ClusterKeyOutputs, news: ClusterKeyInputs): DiffResult {
  const changed = olds.generation !== news.generation;
  return { changes: changed, replaces: changed ? ['generation'] : [], deleteBeforeReplace: false };
}

export function update(_id: string, olds: ClusterKeyOutputs): { outs: ClusterKeyOutputs } {
  return { outs: olds };
}

export function remove(): void {
  /* nothing outside the state */
}
