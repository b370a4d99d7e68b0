// Steps shared by the integration tests: wait (by polling, with deadlines) until backends have every
// datagram, until echo replies are back, until the mesh is quiet; then check and summarize.
import assert from 'node:assert/strict';
import { exactlyOnceInOrder, formatReport, type DeliveryReport } from './deliveryCheck.ts';
import type { LoadRun } from './loadClient.ts';
import type { Mesh } from './mesh.ts';
import { sumOf, tryScrape } from './metrics.ts';
import { waitFor } from './wait.ts';
import { dropsOnPorts } from './udpDrops.ts';

/**
 * The load every integration test sends: 200 sessions x 500 datagrams of 100 bytes into one ingress,
 * paced at 5,000 datagrams/s, and never more than 128 datagrams whose echo has not come back: the
 * client->ingress hop is the one link nothing can repair (a datagram the kernel drops there never
 * reached a replicator), so the client does not outrun the ingress socket's receive buffer when
 * the replicator is descheduled for a moment on a busy 2-core machine.
 */
export const STANDARD_LOAD = {
  sessions: 200,
  perSession: 500,
  payloadBytes: 100,
  rate: 5000,
  maxInFlight: 128,
} as const;

/** Where datagrams went missing, from the ingress counter and kernel socket drops. */
export async function attribution(mesh: Mesh, run: LoadRun, ingressCloud: string): Promise<string> {
  const n = mesh.node(ingressCloud);
  const s = await tryScrape(n.proc.metricsUrl);
  const ingress = s ? sumOf(s, 'udpmesh_ingress_datagrams_total') : undefined;
  const drops = dropsOnPorts([n.ingressPort])[n.ingressPort] ?? 0;
  return (
    `client sent ${run.sent}; ${ingressCloud} ingress counted ${ingress ?? '(no answer)'}; kernel dropped ${drops} at the ingress socket` +
    (drops > 0
      ? ' (its receive buffer overflowed: the replicator did not read it fast enough; these datagrams never reached the replicator)'
      : '')
  );
}

/** Wait until each listed cloud's backend has received every (session, seq) of the run at least once. */
export async function awaitDelivery(
  mesh: Mesh,
  run: LoadRun,
  clouds: string[],
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    async () => {
      for (const c of clouds) if ((await mesh.node(c).backend.stats()).distinct < run.total) return false;
      return true;
    },
    {
      timeoutMs,
      intervalMs: 250,
      what: `the backends of ${clouds.join(', ')} each have all ${run.total} datagrams`,
      detail: async () => {
        const lines: string[] = [];
        for (const c of clouds) {
          const b = mesh.node(c).backend;
          lines.push(formatReport(`${c} backend`, (await b.snapshot()).report(run.expected)));
          const drops = dropsOnPorts([b.port])[b.port] ?? 0;
          if (drops > 0) {
            lines.push(
              `    NOTE: the kernel dropped ${drops} datagrams at the ${c} test backend's own socket (receive buffer overflow): ` +
                `the replicator delivered them but the test backend could not read them in time (harness/host overload, not a replicator loss)`,
            );
          }
        }
        return `${lines.join('\n')}\n${await attribution(mesh, run, mesh.nodes[0]!.cloud)}\n${await mesh.diagnostics()}`;
      },
    },
  );
}

/** Wait until every echo reply came back to its client session. */
export async function awaitReplies(mesh: Mesh, run: LoadRun, timeoutMs: number): Promise<void> {
  await waitFor(() => run.replyReport().missing === 0, {
    timeoutMs,
    intervalMs: 250,
    what: `all ${run.total} echo replies reached their clients`,
    detail: async () => `${formatReport('echo replies', run.replyReport())}\n${await mesh.diagnostics()}`,
  });
}

/**
 * Wait until the mesh is quiet: no running replicator has unacknowledged datagrams for a peer
 * (udpmesh_replication_lag_datagrams == 0), no proxy holds delayed datagrams, and backend counts
 * did not change between two polls. Late duplicates would show up before this returns.
 */
export async function awaitQuiescence(mesh: Mesh, timeoutMs: number): Promise<void> {
  let last = '';
  await waitFor(
    async () => {
      let lag = 0;
      for (const n of mesh.nodes) {
        if (!n.proc.running) continue;
        const s = await tryScrape(n.proc.metricsUrl);
        if (!s) return false;
        lag += sumOf(s, 'udpmesh_replication_lag_datagrams');
      }
      const queued = mesh.nodes.reduce((a, n) => a + (n.proxy?.queued ?? 0), 0);
      const counts: number[] = [];
      for (const n of mesh.nodes) counts.push((await n.backend.stats()).count);
      const key = counts.join(',');
      const stable = key === last;
      last = key;
      return lag === 0 && queued === 0 && stable;
    },
    {
      timeoutMs,
      intervalMs: 300,
      what: 'replication lag is 0 everywhere and backend counts are stable',
      detail: () => mesh.diagnostics(),
    },
  );
}

export function assertExactlyOnceInOrder(label: string, r: DeliveryReport, diag: string): void {
  assert.ok(exactlyOnceInOrder(r), `${formatReport(label, r)}\n${diag}`);
}

/** A one-line-per-replicator summary of the counters, for the test output. */
export async function summary(mesh: Mesh): Promise<string> {
  const parts: string[] = [];
  for (const n of mesh.nodes) {
    const s = (await tryScrape(n.proc.metricsUrl)) ?? [];
    const b = await n.backend.stats().catch(() => n.backend.last);
    parts.push(
      `${n.cloud}: ingress=${sumOf(s, 'udpmesh_ingress_datagrams_total')} delivered=${sumOf(s, 'udpmesh_delivered_datagrams_total')} ` +
        `replicated=${sumOf(s, 'udpmesh_replicated_datagrams_total')} retransmits=${sumOf(s, 'udpmesh_retransmits_total')} ` +
        `dupDropped=${sumOf(s, 'udpmesh_duplicates_dropped_total')} dropped=${sumOf(s, 'udpmesh_dropped_datagrams_total')} backend=${b.count}` +
        (n.proxy
          ? ` proxy(dropped=${n.proxy.counters.dropped}/${n.proxy.counters.received} dup=${n.proxy.counters.duplicated} reord=${n.proxy.counters.reordered})`
          : ''),
    );
  }
  return parts.join('\n      ');
}

/**
 * afterEach for the integration tests: on failure print the diagnostics (metrics, counts, kernel drops)
 * while the processes still run, then stop everything (the graceful stop flushes the replicators'
 * logs), print the log tails, and remove the temp dir unless KEEP_TEST_LOGS=1.
 */
export async function finishTest(
  failed: boolean,
  mesh: Mesh | undefined,
  run: LoadRun | undefined,
): Promise<void> {
  if (failed && mesh) console.log(await mesh.diagnostics(0));
  await run?.close();
  if (!mesh) return;
  await mesh.stop(true);
  if (failed) console.log(mesh.launcher.logs(60));
  if (failed && process.env.KEEP_TEST_LOGS === '1') {
    mesh.launcher.keepDir();
    console.log(`replicator configs and logs kept in ${mesh.launcher.dir}`);
  } else mesh.launcher.removeDir();
}
