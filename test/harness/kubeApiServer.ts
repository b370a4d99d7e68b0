// A real kube-apiserver on loopback for the infra tests (no nodes, no controllers): the binary that
// scripts/install-kube-apiserver.sh builds from the Go module proxy, run against a real etcd, with
// certificates made here (openssl), RBAC authorization, a static admin token for setup and real
// ServiceAccount tokens (TokenRequest) for the code under test. Why a real server: mocks accept any
// manifest; only the API server's own validation, structural-schema pruning and RBAC prove them.
// The process runs in its own group and is tracked (replicator/local/children.ts): stop() ends it, and
// it is killed with its temp dir if the test process exits or dies of SIGTERM/SIGHUP first.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupOnSignals, stopChild, track, trackDir, untrackDir } from '../../replicator/local/children.ts';
import { freePort } from './freePort.ts';
import { waitFor } from './wait.ts';

const INSTALL_SCRIPT = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../scripts/install-kube-apiserver.sh',
);

/** The version the install script builds by default (read from the script: one place to change it). */
export function defaultKubeApiServerVersion(): string {
  const m = /^DEFAULT_VERSION=(v\d+\.\d+\.\d+)$/m.exec(readFileSync(INSTALL_SCRIPT, 'utf8'));
  if (!m) throw new Error(`no DEFAULT_VERSION=vX.Y.Z line in ${INSTALL_SCRIPT}`);
  return m[1];
}

/** Where the install script puts the binary (same rule: $XDG_CACHE_HOME or ~/.cache, keyed by version). */
export function kubeApiServerCachePath(version = defaultKubeApiServerVersion()): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'udpmesh', 'kube-apiserver', version, 'bin', 'kube-apiserver');
}

/** The binary ($KUBE_APISERVER_BIN, else the install script's cache path), or why there is none. */
export function findKubeApiServer(): { binary: string } | { missing: string } {
  const explicit = process.env.KUBE_APISERVER_BIN;
  if (explicit) {
    return existsSync(explicit)
      ? { binary: explicit }
      : { missing: `KUBE_APISERVER_BIN=${explicit} does not exist` };
  }
  const path = kubeApiServerCachePath();
  if (existsSync(path)) return { binary: path };
  return {
    missing: `kube-apiserver is not built (${path} is missing); build it with: npm run apiserver:install`,
  };
}

export interface KubeResponse {
  status: number;
  text: string;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  json: Record<string, unknown> | undefined;
}

export interface KubeRequestOptions {
  /** JSON-serialised unless a string. */
  body?: unknown;
  contentType?: string;
  /** Bearer token; defaults to the admin token. */
  token?: string;
}

export interface KubeApiServer {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** PEM of the CA that signed the serving certificate. */
  readonly ca: string;
  /** A static token in group system:masters, for setup only. */
  readonly adminToken: string;
  /** The audience ServiceAccount tokens are issued for. */
  readonly audience: string;
  request(method: string, path: string, opts?: KubeRequestOptions): Promise<KubeResponse>;
  /** A real ServiceAccount token (TokenRequest API). */
  serviceAccountToken(namespace: string, name: string): Promise<string>;
  logTail(lines?: number): string;
  /** Stops the process and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface KubeApiServerOptions {
  binary: string;
  etcdEndpoints: string[];
  /** How long to wait for /readyz (default 90 s: a loaded 2-core machine starts it in 5-30 s). */
  startTimeoutMs?: number;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`openssl is needed to make test certificates: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

export async function startKubeApiServer(opts: KubeApiServerOptions): Promise<KubeApiServer> {
  cleanupOnSignals();
  const dir = mkdtempSync(join(tmpdir(), 'udpmesh-kube-apiserver-'));
  trackDir(dir);
  let child: ChildProcess | undefined;
  const logFile = join(dir, 'kube-apiserver.log');
  const logTail = (lines = 40): string => {
    try {
      return readFileSync(logFile, 'utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '';
    }
  };
  const stop = async (): Promise<void> => {
    if (child) await stopChild(child, 'SIGTERM', 5000);
    child = undefined;
    if (process.env.KEEP_TEST_LOGS) {
      untrackDir(dir);
      process.stderr.write(`kube-apiserver test dir kept: ${dir}\n`);
      return;
    }
    rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
  };
  try {
    // A CA and a serving certificate for 127.0.0.1/localhost, valid one day.
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl(
      [
        'req',
        '-x509',
        ...ec,
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
        '-days',
        '1',
        '-subj',
        '/CN=udpmesh-test-ca',
      ],
      dir,
    );
    openssl(
      [
        'req',
        '-x509',
        ...ec,
        '-keyout',
        'serving.key',
        '-out',
        'serving.crt',
        '-days',
        '1',
        '-subj',
        '/CN=kube-apiserver',
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-addext',
        'basicConstraints=critical,CA:FALSE',
        '-addext',
        'extendedKeyUsage=serverAuth',
      ],
      dir,
    );
    // The ServiceAccount token signing key pair (ES256).
    const sa = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(join(dir, 'sa.key'), sa.privateKey.export({ type: 'sec1', format: 'pem' }), {
      mode: 0o600,
    });
    writeFileSync(join(dir, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
    const adminToken = randomBytes(24).toString('hex');
    writeFileSync(
      join(dir, 'tokens.csv'),
      `${adminToken},udpmesh-test-admin,udpmesh-test-admin,"system:masters"\n`,
      {
        mode: 0o600,
      },
    );
    const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const audience = 'https://kubernetes.default.svc.cluster.local';
    const args = [
      `--etcd-servers=${opts.etcdEndpoints.join(',')}`,
      `--bind-address=127.0.0.1`,
      `--advertise-address=127.0.0.1`,
      `--secure-port=${port}`,
      `--cert-dir=${dir}`,
      `--tls-cert-file=${join(dir, 'serving.crt')}`,
      `--tls-private-key-file=${join(dir, 'serving.key')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      `--authorization-mode=RBAC`,
      `--service-account-issuer=${audience}`,
      `--api-audiences=${audience}`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      // Only allocated, never routed: no node runs here.
      `--service-cluster-ip-range=10.96.0.0/16`,
      `--profiling=false`,
      `--v=1`,
    ];
    const fd = openSync(logFile, 'a');
    try {
      child = spawn(opts.binary, args, { detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    track(child);
    const proc = child;

    const request = (method: string, path: string, ro: KubeRequestOptions = {}): Promise<KubeResponse> =>
      new Promise((resolve, reject) => {
        const body =
          ro.body === undefined ? undefined : typeof ro.body === 'string' ? ro.body : JSON.stringify(ro.body);
        const headers: Record<string, string | number> = {
          accept: 'application/json',
          authorization: `Bearer ${ro.token ?? adminToken}`,
        };
        if (body !== undefined) {
          headers['content-type'] = ro.contentType ?? 'application/json';
          headers['content-length'] = Buffer.byteLength(body);
        }
        const req = httpsRequest(new URL(path, url), { method, headers, ca, timeout: 15_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: Record<string, unknown> | undefined;
            try {
              json = JSON.parse(text) as Record<string, unknown>;
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, text, json });
          });
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
        req.on('error', reject);
        req.end(body);
      });

    await waitFor(
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(`kube-apiserver exited (${proc.exitCode ?? proc.signalCode}):\n${logTail()}`);
        try {
          return (await request('GET', '/readyz')).status === 200;
        } catch {
          return false;
        }
      },
      {
        timeoutMs: opts.startTimeoutMs ?? 90_000,
        intervalMs: 250,
        what: `kube-apiserver on ${url} is ready (/readyz)`,
        detail: async () => {
          const r = await request('GET', '/readyz?verbose').catch((e: Error) => ({ text: e.message }));
          return `${r.text}\n${logTail()}`;
        },
      },
    );

    const serviceAccountToken = async (namespace: string, name: string): Promise<string> => {
      const r = await request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { audiences: [audience], expirationSeconds: 600 },
        },
      });
      const token = (r.json?.status as { token?: string } | undefined)?.token;
      if (r.status !== 201 || !token)
        throw new Error(`TokenRequest for ${namespace}/${name}: HTTP ${r.status} ${r.text}`);
      return token;
    };

    return { url, ca, adminToken, audience, request, serviceAccountToken, logTail, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
