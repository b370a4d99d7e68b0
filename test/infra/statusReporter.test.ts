import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStatusReporter } from '../../replicator/k8s/statusReporter.ts';

describe('replicator/k8s statusReporter', () => {
  let server: Server;
  let base: string;
  const seen: { method?: string; url?: string; headers: IncomingMessage['headers']; body: string }[] = [];
  let status = 200;
  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());
  beforeEach(() => {
    seen.length = 0;
    status = 200;
  });

  it('merge-patches the status subresource with the observed state and bearer token, periodically', async () => {
    const r = startStatusReporter({
      name: 'aws',
      namespace: 'udpmesh',
      apiBase: base,
      token: 't0ken',
      intervalMs: 20,
      reporter: 'pod-1',
      observe: () => ({ peers: [{ name: 'gcp', up: true, lagDatagrams: 3 }], sessions: 7, etcdUp: true }),
    });
    await new Promise((res) => setTimeout(res, 150));
    r.stop();
    assert.ok(seen.length >= 2, `expected periodic reports, got ${seen.length}`);
    const first = seen[0];
    assert.equal(first.method, 'PATCH');
    assert.equal(first.url, '/apis/udpmesh.io/v1alpha1/namespaces/udpmesh/udpreplicators/aws/status');
    assert.equal(first.headers['content-type'], 'application/merge-patch+json');
    assert.equal(first.headers.authorization, 'Bearer t0ken');
    const body = JSON.parse(first.body);
    assert.deepEqual(body.status.peers, [{ name: 'gcp', up: true, lagDatagrams: 3 }]);
    assert.equal(body.status.sessions, 7);
    assert.equal(body.status.etcdUp, true);
    assert.equal(body.status.reporter, 'pod-1');
    assert.ok(r.stats.ok >= 2);
  });

  it('logs and counts failures (HTTP errors, unreachable API, throwing observer) without throwing', async () => {
    const logs: string[] = [];
    status = 403;
    const r = startStatusReporter({
      name: 'gcp',
      namespace: 'n',
      apiBase: base,
      token: 'x',
      intervalMs: 60_000,
      log: (m, f) => logs.push(`${m} ${JSON.stringify(f)}`),
      observe: () => ({ peers: [], sessions: 0, etcdUp: false }),
    });
    assert.equal(await r.reportNow(), false);
    r.stop();
    const dead = startStatusReporter({
      name: 'gcp',
      namespace: 'n',
      apiBase: 'http://127.0.0.1:1',
      token: 'x',
      intervalMs: 60_000,
      log: (m) => logs.push(m),
      observe: () => ({ peers: [], sessions: 0, etcdUp: false }),
    });
    assert.equal(await dead.reportNow(), false);
    dead.stop();
    const throwing = startStatusReporter({
      name: 'gcp',
      namespace: 'n',
      apiBase: base,
      token: 'x',
      intervalMs: 60_000,
      log: (m) => logs.push(m),
      observe: () => {
        throw new Error('boom');
      },
    });
    assert.equal(await throwing.reportNow(), false);
    throwing.stop();
    assert.equal(r.stats.failed + dead.stats.failed + throwing.stats.failed, 3);
    assert.ok(logs.some((l) => l.includes('HTTP 403')));
  });
});
