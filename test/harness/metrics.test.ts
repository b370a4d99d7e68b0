import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parsePrometheusText, scrapeMetrics, select, sumOf, valueOf } from './metrics.ts';

const TEXT = `# HELP udpmesh_delivered_datagrams_total Datagrams delivered to the local backend.
# TYPE udpmesh_delivered_datagrams_total counter
udpmesh_delivered_datagrams_total{origin="aws"} 1200
udpmesh_delivered_datagrams_total{origin="gcp"} 34

# TYPE udpmesh_sessions_active gauge
udpmesh_sessions_active 7
udpmesh_dropped_datagrams_total{reason="too \\"big\\"",note="a\\\\b\\nc"} 3 1700000000000
udpmesh_replication_rtt_seconds_bucket{peer="gcp",le="+Inf"} 5
udpmesh_replication_rtt_seconds_sum{peer="gcp"} 1.5e-3
weird_value{x="1"} NaN
prom_client_nan Nan
lower_inf +inf
neg_inf -Inf
labels_with_spaces{ a = "1" , b="2", } 1
`;

describe('harness: Prometheus text parser', () => {
  it('parses names, labels (with escapes), values and ignores comments and timestamps', () => {
    const s = parsePrometheusText(TEXT);
    assert.equal(s.length, 11);
    assert.deepEqual(s[0], {
      name: 'udpmesh_delivered_datagrams_total',
      labels: { origin: 'aws' },
      value: 1200,
    });
    assert.equal(valueOf(s, 'udpmesh_sessions_active'), 7);
    assert.deepEqual(select(s, 'udpmesh_dropped_datagrams_total')[0]!.labels, {
      reason: 'too "big"',
      note: 'a\\b\nc',
    });
    assert.equal(valueOf(s, 'udpmesh_dropped_datagrams_total'), 3);
    assert.equal(valueOf(s, 'udpmesh_replication_rtt_seconds_bucket', { le: '+Inf' }), 5);
    assert.equal(valueOf(s, 'udpmesh_replication_rtt_seconds_sum'), 0.0015);
    assert.ok(Number.isNaN(valueOf(s, 'weird_value')!));
    assert.equal(valueOf(s, 'neg_inf'), -Infinity);
    assert.ok(Number.isNaN(valueOf(s, 'prom_client_nan')!));
    assert.equal(valueOf(s, 'lower_inf'), Infinity);
    assert.deepEqual(select(s, 'labels_with_spaces')[0]!.labels, { a: '1', b: '2' });
  });

  it('sums and filters by labels', () => {
    const s = parsePrometheusText(TEXT);
    assert.equal(sumOf(s, 'udpmesh_delivered_datagrams_total'), 1234);
    assert.equal(sumOf(s, 'udpmesh_delivered_datagrams_total', { origin: 'gcp' }), 34);
    assert.equal(sumOf(s, 'udpmesh_delivered_datagrams_total', { origin: 'azure' }), 0);
    assert.equal(valueOf(s, 'udpmesh_nothing'), undefined);
  });

  it('rejects malformed lines with the line number', () => {
    assert.throws(() => parsePrometheusText('ok 1\nbad{x="1" 2\n'), /line 2/);
    assert.throws(() => parsePrometheusText('name notanumber'), /bad sample value/);
    assert.throws(() => parsePrometheusText('name{x=1} 2'), /expected "/);
  });

  it('scrapes over HTTP and fails on non-200', async () => {
    const srv = createServer((req, res) => {
      if (req.url === '/metrics') res.end('udpmesh_etcd_up 1\n');
      else res.writeHead(503).end('no');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as AddressInfo).port;
    try {
      assert.equal(valueOf(await scrapeMetrics(`http://127.0.0.1:${port}/metrics`), 'udpmesh_etcd_up'), 1);
      await assert.rejects(scrapeMetrics(`http://127.0.0.1:${port}/other`), /HTTP 503/);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
