// Backend pool: host:port parsing, static and DNS-resolved backends, dedupe, version bumps, and picking.
import assert from 'node:assert/strict';
import { BackendPool, parseHostPort, type Backend } from '../../../replicator/delivery/backendPool.ts';

describe('delivery/backendPool', function () {
  this.timeout(30_000);

  describe('parseHostPort', () => {
    it('parses IPv4, names and bracketed IPv6', () => {
      assert.deepEqual(parseHostPort('10.0.0.5:5353'), { host: '10.0.0.5', port: 5353 });
      assert.deepEqual(parseHostPort('echo.default.svc:53'), { host: 'echo.default.svc', port: 53 });
      assert.deepEqual(parseHostPort('[::1]:7001'), { host: '::1', port: 7001 });
      assert.deepEqual(parseHostPort('[fd00::a:1]:65535'), { host: 'fd00::a:1', port: 65535 });
      assert.deepEqual(parseHostPort('localhost:1'), { host: 'localhost', port: 1 });
    });

    it('rejects missing or out-of-range ports and unbracketed IPv6, naming the input', () => {
      for (const bad of [
        '10.0.0.5',
        '10.0.0.5:',
        ':53',
        '::1:53',
        'host:abc',
        'a:b:c',
        '',
        '[::1]',
        '[::1]53',
      ]) {
        assert.throws(
          () => parseHostPort(bad),
          new RegExp(`expected host:port, got "${bad.replace(/[[\]]/g, '\\$&')}"`),
          bad,
        );
      }
      for (const bad of ['h:0', 'h:65536', '[::1]:99999'])
        assert.throws(() => parseHostPort(bad), /port out of range/, bad);
    });
  });

  describe('BackendPool', () => {
    let pool: BackendPool | undefined;
    afterEach(() => pool?.stop());

    it('static IP backends: deduplicated, sorted, and every pick is one of them', async () => {
      const errors: string[] = [];
      pool = new BackendPool((m) => errors.push(m));
      await pool.configure(['10.0.0.2:53', '10.0.0.1:53', '10.0.0.2:53', '[::1]:53'], undefined, 10_000);
      assert.deepEqual(errors, []);
      assert.deepEqual(
        pool.backends.map((b) => `${b.family}/${b.address}:${b.port}`),
        ['6/::1:53', '4/10.0.0.1:53', '4/10.0.0.2:53'], // sorted by address:port text
      );
      assert.equal(pool.version, 1);
      const seen = new Set<string>();
      for (let k = 0; k < 2000; k++) seen.add(pool.pick(k)!.address);
      assert.equal(seen.size, 3);
    });

    it('set() bumps the version only when the set changes', () => {
      pool = new BackendPool();
      const a: Backend = { address: '10.0.0.1', port: 1, family: 4 };
      const b: Backend = { address: '10.0.0.2', port: 1, family: 4 };
      pool.set([a, b]);
      assert.equal(pool.version, 1);
      pool.set([b, a, a]);
      assert.equal(pool.version, 1);
      pool.set([a]);
      assert.equal(pool.version, 2);
      pool.set([]);
      assert.equal(pool.version, 3);
      assert.equal(pool.pick(1), undefined);
    });

    it('a DNS name (localhost) resolves to its addresses with the given port', async () => {
      pool = new BackendPool();
      await pool.configure([], 'localhost:5353', 60_000);
      assert.ok(pool.backends.length >= 1);
      for (const b of pool.backends) {
        assert.equal(b.port, 5353);
        assert.ok(['127.0.0.1', '::1'].includes(b.address), b.address);
        assert.equal(b.family, b.address.includes(':') ? 6 : 4);
      }
      assert.equal(pool.lastError, undefined);
    });

    it('static host names are resolved too, merged with IP backends', async () => {
      pool = new BackendPool();
      await pool.configure(['localhost:7000', '10.9.9.9:7000'], undefined, 60_000);
      assert.ok(pool.backends.some((b) => b.address === '10.9.9.9'));
      assert.ok(pool.backends.some((b) => b.address === '127.0.0.1' || b.address === '::1'));
    });

    it('a resolution failure is reported, not thrown, and leaves the pool empty', async () => {
      const errors: string[] = [];
      pool = new BackendPool((m) => errors.push(m));
      await pool.configure([], 'no-such-host.invalid:53', 60_000);
      assert.equal(pool.backends.length, 0);
      assert.equal(errors.length, 1);
      assert.match(errors[0], /backend resolution failed/);
      assert.ok(pool.lastError);
    });

    it('a malformed or out-of-range host:port is reported through onError, and configure() still resolves', async () => {
      // configure() is fired and forgotten when dynamic config changes: a rejection would be unhandled.
      for (const bad of ['10.0.0.1', '10.0.0.1:99999', '10.0.0.1:0']) {
        const errors: string[] = [];
        pool?.stop();
        pool = new BackendPool((m) => errors.push(m));
        await pool.configure([bad], undefined, 60_000);
        assert.equal(errors.length, 1, bad);
        assert.match(errors[0], /backend resolution failed: (expected host:port|port out of range)/);
        assert.equal(pool.backends.length, 0);
      }
    });
  });
});
