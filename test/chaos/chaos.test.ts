// The chaos suite's short profile in CI (see test/chaos/chaos.ts and profiles.ts): three replicators in
// their own network namespaces, a 3-member etcd, a load client; a 10 s partition, a SIGKILL loop, an etcd
// leader kill and link impairment, each checked for loss, duplicates and order. Skipped (with the reason)
// where network namespaces are not available (not root, no iproute2).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { outcomeText, runChaos } from './chaos.ts';
import { netnsUnavailableReason } from './netns.ts';

describe('chaos (short profile: namespaces, partition, SIGKILL loop, etcd kill, impairment)', function () {
  it('keeps every accepted datagram, in order, without duplicates beyond receiver crashes', async function () {
    const reason = netnsUnavailableReason();
    if (reason) {
      process.stdout.write(`      skipped: ${reason}\n`);
      this.skip();
    }
    // The run tears itself down when its budget is spent, so mocha's timeout never fires with the mesh
    // still running (it would keep running next to the following tests).
    this.timeout(200_000);
    const outcome = await runChaos({
      profile: 'short',
      budgetMs: 170_000,
      log: (l) => process.stdout.write(`      ${l}\n`),
      resultsDir: join('chaos-results', `short-${new Date().toISOString().replace(/[:.]/g, '-')}`),
    });
    process.stdout.write(`\n${outcomeText(outcome)}\n`);
    const why = [
      outcome.error ? `ERROR: ${outcome.error}` : '',
      outcome.logsDir ? `logs: ${outcome.logsDir}` : '',
    ]
      .filter(Boolean)
      .join('\n');
    assert.ok(outcome.ok, `chaos short profile failed\n${outcome.table}\n${why}`);
  });
});
