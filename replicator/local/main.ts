// Local mode: the whole mesh on one machine, on loopback.
//   npm run local [-- --backend [cloud=]host:port ...] [--session-identity M] [--base-port N] [--no-dashboard]
// Starts a 3-member etcd cluster, an echo backend per cloud (or your UDP service, per cloud),
// and three replicators named aws, gcp and azure; shows live counts until Ctrl-C or SIGTERM, then
// stops everything it started and removes its temp dir. If any child dies, it says so and shuts down.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEtcdCluster, type EtcdCluster } from './etcdCluster.ts';
import { startEchoBackend, type EchoBackend } from './echoBackend.ts';
import { isPortFree } from './freePort.ts';
import { ReplicatorProcess } from './replicatorProcess.ts';
import { localReplicatorConfig } from './localNode.ts';
import { trackDir, untrackDir } from './children.ts';
import { scrapeMetrics, sumOf, select, type Sample } from './promText.ts';
import { CLOUDS, parseBackends, type LocalCloud } from './backendOption.ts';

const HOST = '127.0.0.1';

const USAGE = `usage: npm run local -- [options]

Runs udpmesh on this machine: a 3-member etcd cluster, three replicators (aws, gcp, azure) on
127.0.0.1 and an echo backend behind each, until Ctrl-C.

Options:
  --backend [cloud=]host:port
                        deliver to this UDP service instead of an echo backend: cloud=host:port for one
                        cloud (aws, gcp or azure; repeat the option per cloud), host:port for every cloud
                        (one service behind three clouds then receives every datagram three times)
  --session-identity socket|proxy-v2|none
                        delivery.sessionIdentity of every replicator (default socket): how a backend tells
                        client sessions apart; proxy-v2 needs a backend that accepts PROXY v2 over UDP
  --base-port N         port base (default 7000): ingress N+1..N+3, replication N+946..N+948,
                        metrics N+2101..N+2103, echo backends N+201..N+203
  --no-dashboard        do not print live counts
  -h, --help            show this help
`;

const IDENTITIES = ['socket', 'proxy-v2', 'none'] as const;

interface Options {
  /** Per cloud: the UDP service to deliver to; a cloud without one gets an echo backend. */
  backends: Partial<Record<LocalCloud, string>>;
  sessionIdentity: (typeof IDENTITIES)[number];
  basePort: number;
  dashboard: boolean;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', multiple: true, default: [] },
      'session-identity': { type: 'string', default: 'socket' },
      'base-port': { type: 'string', default: '7000' },
      'no-dashboard': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  const basePort = Number(values['base-port']);
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + 2103 > 65535) {
    throw new Error(
      `--base-port: expected an integer between 1024 and ${65535 - 2103}, got ${values['base-port']}`,
    );
  }
  const identity = values['session-identity'];
  if (!(IDENTITIES as readonly string[]).includes(identity))
    throw new Error(`--session-identity: expected socket, proxy-v2 or none, got ${identity}`);
  return {
    backends: parseBackends(values.backend),
    sessionIdentity: identity as Options['sessionIdentity'],
    basePort,
    dashboard: !values['no-dashboard'],
  };
}

interface Node {
  cloud: string;
  ingressPort: number;
  replicationPort: number;
  metricsPort: number;
  backend: string;
  echo: EchoBackend | undefined;
  proc: ReplicatorProcess;
}

function fmt(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

interface Row {
  cloud: string;
  state: string;
  ingress: number;
  delivered: number;
  replicated: number;
  retransmits: number;
  dups: number;
  dropped: number;
  sessions: number;
  lag: number;
  peersUp: string;
  etcd: string;
  backend: number | undefined;
}

async function rowFor(n: Node): Promise<Row> {
  let samples: Sample[] | undefined;
  let ready: number | undefined;
  if (n.proc.running) {
    try {
      samples = await scrapeMetrics(n.proc.metricsUrl, 900);
    } catch {
      samples = undefined;
    }
    ready = await n.proc.httpStatus('/readyz');
  }
  const s = samples ?? [];
  const peers = select(s, 'udpmesh_peer_up');
  const etcdUp = select(s, 'udpmesh_etcd_up')[0]?.value;
  return {
    cloud: n.cloud,
    state: !n.proc.running ? 'down' : ready === 200 ? 'ready' : ready === undefined ? 'no http' : `not ready`,
    ingress: sumOf(s, 'udpmesh_ingress_datagrams_total'),
    delivered: sumOf(s, 'udpmesh_delivered_datagrams_total'),
    replicated: sumOf(s, 'udpmesh_replicated_datagrams_total'),
    retransmits: sumOf(s, 'udpmesh_retransmits_total'),
    dups: sumOf(s, 'udpmesh_duplicates_dropped_total'),
    dropped: sumOf(s, 'udpmesh_dropped_datagrams_total'),
    sessions: sumOf(s, 'udpmesh_sessions_active'),
    lag: sumOf(s, 'udpmesh_replication_lag_datagrams'),
    peersUp: samples ? `${peers.filter((p) => p.value === 1).length}/${peers.length}` : '-',
    etcd: etcdUp === undefined ? '-' : etcdUp === 1 ? 'up' : 'down',
    backend: n.echo?.received,
  };
}

const COLUMNS: [keyof Row, string, number][] = [
  ['cloud', 'cloud', 6],
  ['state', 'state', 9],
  ['ingress', 'ingress', 8],
  ['delivered', 'delivered', 10],
  ['replicated', 'replicated', 11],
  ['retransmits', 'retrans', 8],
  ['dups', 'dup-drop', 9],
  ['dropped', 'dropped', 8],
  ['sessions', 'sessions', 9],
  ['lag', 'lag', 6],
  ['peersUp', 'peers', 6],
  ['etcd', 'etcd', 5],
  ['backend', 'backend', 8],
];

function tableLines(rows: Row[], etcdLine: string): string[] {
  const cell = (v: unknown, w: number): string =>
    (typeof v === 'number' || v === undefined ? fmt(v as number | undefined) : String(v)).padStart(w);
  const head = COLUMNS.map(([, h, w]) => h.padStart(w)).join(' ');
  const lines = [head];
  for (const r of rows) lines.push(COLUMNS.map(([k, , w]) => cell(r[k], w)).join(' '));
  lines.push(etcdLine);
  return lines;
}

async function main(): Promise<number> {
  let opts: Options | undefined;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (!opts) return 0;
  const B = opts.basePort;
  const nodes: Node[] = [];
  let etcd: EtcdCluster | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'udpmesh-local-'));
  trackDir(dir);
  let shuttingDown: Promise<void> | undefined;
  let exitCode = 0;
  let dashboardTimer: NodeJS.Timeout | undefined;
  const log = (msg: string): void => void process.stdout.write(`${msg}\n`);

  const shutdown = (reason: string): Promise<void> => {
    if (shuttingDown) return shuttingDown;
    shuttingDown = (async () => {
      if (dashboardTimer) clearInterval(dashboardTimer);
      log(`\nstopping (${reason}) ...`);
      await Promise.all(
        nodes.map(async (n) => {
          const info = await n.proc.stop(8000);
          if (info) log(`  ${n.cloud}: exited (${info.signal ?? `code ${info.code}`})`);
        }),
      );
      await Promise.all(nodes.map((n) => n.echo?.close()));
      if (etcd) await etcd.stop();
      rmSync(dir, { recursive: true, force: true });
      untrackDir(dir);
      log('stopped; nothing left running.');
    })();
    return shuttingDown;
  };

  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupts++;
    if (interrupts > 1) {
      log(`${sig} again: killing everything now`);
      process.exit(130); // the exit hook in children.ts SIGKILLs every child group
    }
    void shutdown(sig).then(() => process.exit(exitCode));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const plan = CLOUDS.map((cloud, i) => ({
      cloud,
      ingressPort: B + 1 + i,
      replicationPort: B + 946 + i,
      metricsPort: B + 2101 + i,
      echoPort: B + 201 + i,
    }));
    const wanted = plan.flatMap((p) => [
      p.ingressPort,
      p.replicationPort,
      p.metricsPort,
      ...(opts.backends[p.cloud] ? [] : [p.echoPort]),
    ]);
    const busy: number[] = [];
    for (const port of wanted) if (!(await isPortFree(port, HOST))) busy.push(port);
    if (busy.length)
      throw new Error(
        `port(s) ${busy.join(', ')} on ${HOST} are in use; pick other ports with --base-port N`,
      );

    log('starting a 3-member etcd cluster ...');
    etcd = await startEtcdCluster({ size: 3, namePrefix: 'etcd' });
    log(`  etcd: ${etcd.endpoints.join(', ')}`);

    for (const p of plan) {
      const given = opts.backends[p.cloud];
      const echo = given ? undefined : await startEchoBackend({ host: HOST, port: p.echoPort });
      const backend = given ?? echo!.endpoint;
      const config = localReplicatorConfig({
        cloud: p.cloud,
        mesh: 'local',
        address: HOST,
        ingressPorts: [p.ingressPort],
        replicationPort: p.replicationPort,
        metricsPort: p.metricsPort,
        backend,
        sessionIdentity: opts.sessionIdentity,
        etcdEndpoints: etcd.endpoints,
      });
      const proc = new ReplicatorProcess({ name: p.cloud, config, dir });
      const node: Node = { ...p, backend, echo, proc };
      proc.onExit((info, expected) => {
        if (expected || shuttingDown) return;
        exitCode = 1;
        log(
          `\nreplicator ${p.cloud} died (${info.signal ?? `exit code ${info.code}`}); last log lines:\n${proc.logTail(25)}`,
        );
        void shutdown(`replicator ${p.cloud} died`).then(() => process.exit(exitCode));
      });
      nodes.push(node);
    }
    log('starting replicators aws, gcp, azure ...');
    for (const n of nodes) n.proc.start();
    await Promise.all(nodes.map((n) => n.proc.waitReady(45_000)));

    log('');
    log('udpmesh is running locally:');
    for (const n of nodes) {
      log(
        `  ${n.cloud.padEnd(6)} ingress udp ${HOST}:${n.ingressPort}  replication udp ${HOST}:${n.replicationPort}  ` +
          `metrics http://${HOST}:${n.metricsPort}/metrics  backend ${n.backend}${n.echo ? ' (echo)' : ''}`,
      );
    }
    log(`  etcd   ${etcd.endpoints.join(' ')}`);
    log(`  logs   ${dir} (removed on exit)`);
    log('');
    log(
      `try: nc -u ${HOST} ${nodes[0]!.ingressPort}   (type a line: it is echoed back and delivered to every cloud's backend)`,
    );
    log('Ctrl-C stops everything.');
    log('');

    const tty = process.stdout.isTTY === true;
    let drawn = 0;
    let tick = 0;
    const watch = async (): Promise<void> => {
      if (shuttingDown) return;
      const down = etcd!.members.filter((m) => !m.running);
      if (down.length) {
        exitCode = 1;
        log(
          `\netcd member ${down.map((m) => m.name).join(', ')} died; last log lines:\n${down[0]!.logTail(15)}`,
        );
        void shutdown('etcd member died').then(() => process.exit(exitCode));
        return;
      }
      if (!opts.dashboard) return;
      const rows = await Promise.all(nodes.map(rowFor));
      if (shuttingDown) return;
      tick++;
      if (tty) {
        const lines = tableLines(
          rows,
          `etcd members up: ${etcd!.members.filter((m) => m.running).length}/3   (refreshed every second; Ctrl-C to stop)`,
        );
        if (drawn) process.stdout.write(`\x1b[${drawn}A`);
        process.stdout.write(lines.map((l) => `\x1b[2K${l}\n`).join(''));
        drawn = lines.length;
      } else {
        const parts = rows.map(
          (r) =>
            `${r.cloud}[${r.state}] in=${fmt(r.ingress)} deliv=${fmt(r.delivered)} repl=${fmt(r.replicated)} retx=${fmt(r.retransmits)} ` +
            `dup=${fmt(r.dups)} drop=${fmt(r.dropped)} sess=${fmt(r.sessions)} lag=${fmt(r.lag)} peers=${r.peersUp}` +
            (r.backend !== undefined ? ` backend=${fmt(r.backend)}` : ''),
        );
        log(`t=${tick}s ${parts.join(' | ')}`);
      }
    };
    let busyTick = false;
    dashboardTimer = setInterval(() => {
      if (busyTick) return;
      busyTick = true;
      watch()
        .catch((err: unknown) => log(`dashboard: ${String(err)}`))
        .finally(() => {
          busyTick = false;
        });
    }, 1000);
    await new Promise<never>(() => {
      /* run until a signal or a crash calls shutdown */
    });
    return 0;
  } catch (err) {
    exitCode = 1;
    process.stderr.write(`local mode failed: ${err instanceof Error ? err.message : String(err)}\n`);
    await shutdown('start-up failed');
    return 1;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
