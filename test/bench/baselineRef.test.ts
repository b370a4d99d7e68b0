// --baseline-ref (baselineRef.ts): the bench's generated replicator config, made acceptable to an older
// tree's own schema. Run here against this tree's schema (a tree is just a root with replicator/config):
// keys that schema does not know are dropped at every level, anything else wrong is a clear error.
import assert from 'node:assert/strict';
import { adaptConfig, cacheRoot, type BaselineTree } from './baselineRef.ts';
import { REPO_ROOT } from './procs.ts';

const tree: BaselineTree = {
  ref: 'HEAD',
  sha: '0'.repeat(40),
  short: '0000000',
  root: REPO_ROOT.replace(/\/$/, ''),
  mainPath: `${REPO_ROOT}replicator/./main.ts`,
  hasIo: true,
};

const base = {
  cluster: 'aws',
  instance: 'aws',
  mesh: 'bench',
  io: 'dgram',
  ingress: { ports: [7001], addresses: ['127.0.0.1'], mode: 'reply' },
  replication: { address: '127.0.0.1', port: 7946 },
  delivery: { backends: ['127.0.0.1:5353'] },
  metrics: { address: '127.0.0.1', port: 9100 },
};

describe('bench --baseline-ref: config adapted to the old tree', () => {
  it('a config the schema accepts comes back unchanged (a copy)', async () => {
    const out = await adaptConfig(tree, base);
    assert.deepEqual(out, base);
    assert.notEqual(out, base);
  });

  it('keys the schema does not know are dropped, top level and nested; the rest is kept', async () => {
    const cfg = { ...base, futureKey: 1, ingress: { ...base.ingress, futureNested: true } };
    const out = await adaptConfig(tree, cfg);
    assert.deepEqual(out, base);
    assert.equal('futureKey' in cfg, true, 'the input is not modified');
  });

  it('a wrong value is an error naming the field, not silently dropped', async () => {
    await assert.rejects(
      adaptConfig(tree, { ...base, ingress: { ...base.ingress, mode: 'sideways' } }),
      /ingress\.mode/,
    );
  });

  it('the cache lives outside the repository', () => {
    assert.ok(!cacheRoot().startsWith(REPO_ROOT), cacheRoot());
  });
});
