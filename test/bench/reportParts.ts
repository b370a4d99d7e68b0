// Printed tables of the peers and scaling parts.
import { fmtInt, fmtPct, fmtUs, table } from './format.ts';
import type { PeersDoc } from './peers.ts';
import type { ScalingDoc } from './scaling.ts';

const fmtCores = (v: number | null): string => (v === null ? '-' : v.toFixed(2));

export function renderPeers(doc: PeersDoc): string {
  const out: string[] = [];
  for (const path of ['reply', 'oneway'] as const) {
    const rows = doc.rows.filter((r) => r.path === path);
    if (rows.length === 0) continue;
    const paced = rows.find((r) => !r.skipped)?.pacedRate ?? rows[0]!.pacedRate;
    out.push(
      path === 'reply'
        ? `PEERS, reply-relay echo path (client -> relay -> sink-aws -> relay -> client): dgram/s = replies back at the client at open loop; latency = client round trip`
        : `PEERS, one-way fan-out path (client -> ingress -> sinks of aws, gcp, azure): dgram/s = delivered to all three at open loop; latency = client -> sink`,
      `cores = CPU of the relay's process tree (nginx master + worker, socat + children, udpmesh ingress replicator incl. its replication; sys = all its processes); per core = dgram/s / cores;`,
      `left: open loop (max); right: paced at ${fmtInt(paced)}/s (latency without queueing, and CPU per datagram without drops)`,
    );
    out.push(
      table(
        [
          [
            'system',
            'dgram/s',
            'loss%',
            'p50',
            'p99',
            'cores',
            'per core',
            'sys cores',
            'per sys core',
            `p50@${fmtInt(paced)}`,
            `p99@${fmtInt(paced)}`,
            'loss%',
            'cores',
            'per core',
          ],
        ],
        rows.map((r) =>
          r.skipped
            ? [r.system, r.skipped]
            : [
                r.system,
                fmtInt(r.maxPerSec),
                fmtPct(r.maxLossPct),
                fmtUs(r.latencyMaxUs?.p50),
                fmtUs(r.latencyMaxUs?.p99),
                fmtCores(r.relayCores),
                fmtInt(r.perCore),
                fmtCores(r.systemCores),
                fmtInt(r.perCoreSystem),
                fmtUs(r.latencyPacedUs?.p50),
                fmtUs(r.latencyPacedUs?.p99),
                fmtPct(r.pacedLossPct),
                fmtCores(r.pacedCores),
                fmtInt(r.perCorePaced),
              ],
        ),
      ),
      '',
    );
  }
  const rt = doc.rows.filter((r) => r.runtime);
  if (rt.length > 0) {
    out.push(
      'UDPMESH INGRESS RUNTIME over the open-loop step (its /metrics): GC ms per 1M client datagrams, heap and RSS after the step, datagrams per syscall',
      table(
        [
          [
            'path',
            'system',
            'datagrams',
            'GC ms/1M',
            'GC pauses',
            'heap used MB',
            'heap total MB',
            'RSS MB',
            'per recv',
            'per send',
            'GSO sends',
          ],
        ],
        rt.map((r) => {
          const x = r.runtime!;
          return [
            r.path,
            r.system,
            fmtInt(x.ingressDatagrams),
            x.gcMsPer1M === null ? '-' : x.gcMsPer1M.toFixed(1),
            fmtInt(x.gcPauses),
            x.heapUsedMb.toFixed(1),
            x.heapTotalMb.toFixed(1),
            x.rssMb.toFixed(1),
            x.datagramsPerRecvSyscall === null ? '-' : x.datagramsPerRecvSyscall.toFixed(2),
            x.datagramsPerSendSyscall === null ? '-' : x.datagramsPerSendSyscall.toFixed(2),
            fmtInt(x.gsoMessages),
          ];
        }),
      ),
      '',
    );
  }
  if (doc.tools.installed) out.push(`(installed for this run: ${doc.tools.installed})`);
  return out.join('\n').trimEnd();
}

export function renderScaling(doc: ScalingDoc): string {
  return [
    `SCALING: udpmesh one-way at open loop, ingress replicator with N workers (SO_REUSEPORT, ${doc.sessions} client sessions), ${doc.hostCpus} CPUs on this host`,
    `cores = CPU used (1 = one core busy): ingress = primary + workers, receivers = gcp + azure replicators; machine% = all cores;`,
    `split % = share of the datagrams each ingress worker accepted (from the primary's /status)`,
    table(
      [
        [
          'workers',
          'offered/s',
          'deliv/s',
          'ratio',
          'loss%',
          'ingress cores',
          'split %',
          'ing-µs',
          'receiver cores',
          'loadgen cores',
          'sink cores',
          'machine%',
          'other%',
        ],
      ],
      doc.rows.map((r) => [
        String(r.workers),
        fmtInt(r.offeredPerSec),
        fmtInt(r.deliveredPerSec),
        r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
        fmtPct(r.lossPct),
        fmtCores(r.ingressCores),
        r.workerSharePct.map((v) => v.toFixed(0)).join('/'),
        fmtUs(r.ingressCpuUsPerDatagram),
        fmtCores(r.receiverCores),
        fmtCores(r.loadgenCores),
        fmtCores(r.sinkCores),
        fmtInt(r.machineBusyPct),
        fmtInt(r.foreignCpuPct),
      ]),
    ),
  ].join('\n');
}
