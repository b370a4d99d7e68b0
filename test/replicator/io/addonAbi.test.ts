// A udp_batch binary built from other source than the JS (a checkout updated without rebuilding the
// addon) is refused with the reason: before this check such a binary loaded, and batched mode silently
// received nothing (found when a stale build on a developer machine gave 0 datagrams/s in the bench).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ADDON_ABI, loadAddon } from '../../../replicator/io/native.ts';

describe('io: the udp_batch addon matches the code that loads it', () => {
  const saved = process.env.UDPMESH_ADDON;
  let dir: string;
  before(() => (dir = mkdtempSync(path.join(tmpdir(), 'udpmesh-abi-'))));
  after(() => {
    if (saved === undefined) delete process.env.UDPMESH_ADDON;
    else process.env.UDPMESH_ADDON = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a binary of another ABI (here: one from before the ABI number existed) and says to rebuild', function () {
    if (process.platform !== 'linux') this.skip();
    const stale = path.join(dir, 'stale.js');
    writeFileSync(stale, 'module.exports = { counterSlots: 12, setup() {}, open() { return 0; } };\n');
    process.env.UDPMESH_ADDON = stale;
    const r = loadAddon();
    assert.equal(r.addon, undefined);
    assert.match((r as { reason: string }).reason, /built from other source .*npm run build:native/);
  });

  it('the built addon carries the ABI this code expects', function () {
    delete process.env.UDPMESH_ADDON;
    const r = loadAddon();
    if (!r.addon) {
      console.log(`      skipped: ${(r as { reason: string }).reason}`);
      this.skip();
    }
    assert.equal(r.addon.abi, ADDON_ABI);
  });
});
