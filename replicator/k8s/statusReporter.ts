// Reports the replicator's observed state into its UdpReplicator resource's status subresource
// (JSON merge patch), using the in-cluster service-account credentials by default. Failures are
// logged and counted, never thrown: status reporting must not take the data path down.
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';

export interface ObservedState {
  peers: { name: string; up: boolean; lagDatagrams: number }[];
  sessions: number;
  etcdUp: boolean;
}

export interface StatusReporterOptions {
  /** UdpReplicator resource name (the cluster/cloud name). */
  name: string;
  observe: () => ObservedState;
  intervalMs?: number;
  /** Defaults to https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
  apiBase?: string;
  namespace?: string;
  token?: string;
  ca?: string | Buffer;
  reporter?: string;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface StatusReporter {
  stop(): void;
  readonly stats: { ok: number; failed: number };
  /** Sends one report now (also used by the timer). */
  reportNow(): Promise<boolean>;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function startStatusReporter(opts: StatusReporterOptions): StatusReporter {
  const apiBase =
    opts.apiBase ??
    `https://${process.env.KUBERNETES_SERVICE_HOST ?? 'kubernetes.default.svc'}:${process.env.KUBERNETES_SERVICE_PORT ?? '443'}`;
  const namespace = opts.namespace ?? readOr(`${SA_DIR}/namespace`) ?? process.env.POD_NAMESPACE ?? 'default';
  const ca = opts.ca ?? (opts.apiBase ? undefined : readOr(`${SA_DIR}/ca.crt`));
  const log = opts.log ?? ((msg, fields) => console.error(JSON.stringify({ msg, ...fields })));
  const stats = { ok: 0, failed: 0 };
  const url = new URL(
    `${apiBase}/apis/udpmesh.io/v1alpha1/namespaces/${namespace}/udpreplicators/${opts.name}/status`,
  );
  let inFlight = false;

  const reportNow = (): Promise<boolean> =>
    new Promise((resolve) => {
      const fail = (reason: string) => {
        stats.failed++;
        log('status report failed', { reason, failed: stats.failed });
        resolve(false);
      };
      let body: string;
      try {
        const s = opts.observe();
        body = JSON.stringify({
          status: {
            ...s,
            reporter: opts.reporter ?? process.env.HOSTNAME ?? 'unknown',
            observedAt: new Date().toISOString(),
          },
        });
      } catch (err) {
        fail(`observe() threw: ${(err as Error).message}`);
        return;
      }
      const token = opts.token ?? readOr(`${SA_DIR}/token`);
      const headers: Record<string, string | number> = {
        'content-type': 'application/merge-patch+json',
        'content-length': Buffer.byteLength(body),
        accept: 'application/json',
      };
      if (token) headers.authorization = `Bearer ${token}`;
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
        url,
        { method: 'PATCH', headers, ca, timeout: 5000 },
        (res) => {
          res.resume();
          res.on('end', () => {
            if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) {
              stats.ok++;
              resolve(true);
            } else fail(`HTTP ${res.statusCode}`);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => fail(err.message));
      req.end(body);
    });

  const timer = setInterval(() => {
    if (inFlight) return;
    inFlight = true;
    void reportNow().finally(() => (inFlight = false));
  }, opts.intervalMs ?? 15_000);
  timer.unref();
  return { stop: () => clearInterval(timer), stats, reportNow };
}
