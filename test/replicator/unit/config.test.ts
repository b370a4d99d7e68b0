// Config loading (config/load.ts + config/schema.ts): defaults, YAML and JSON files, env overrides
// (UDPMESH_SECTION__KEY, comma lists, numbers), and validation messages that name the offending key.
// Property: arbitrary JSON-ish documents, files and env maps either load or throw ConfigError — nothing else.
//
// Longer on-demand fuzz:  FUZZ_RUNS=100000 npx mocha test/replicator/unit/config.test.ts
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import {
  ConfigError,
  applyEnvOverrides,
  envKeyToPath,
  loadConfig,
  validateConfig,
} from '../../../replicator/config/load.ts';
import { fuzz, fuzzTimeout } from './fuzzRuns.ts';

const minimal = { cluster: 'aws', delivery: { backends: ['127.0.0.1:5353'] } };

/** The problems of a ConfigError thrown by fn (fails if anything else happens). */
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(
      err instanceof ConfigError,
      `expected ConfigError, got ${(err as Error)?.stack ?? String(err)}`,
    );
    assert.ok(err.message.includes(err.problems[0]));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

function invalid(doc: unknown): string[] {
  return problems(() => validateConfig(doc));
}

/** Asserts one problem names `key` (at the start, as "key: ...") and matches `what`. */
function assertNames(ps: string[], key: string, what?: RegExp): void {
  const hit = ps.find((p) => p.startsWith(`${key}: `));
  assert.ok(hit, `no problem names ${key}: ${JSON.stringify(ps)}`);
  if (what) assert.match(hit, what);
}

describe('config: load and validate', function () {
  this.timeout(fuzzTimeout(60_000));

  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'udpmesh-config-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };

  describe('defaults and files', () => {
    it('a minimal config gets every default', () => {
      const c = validateConfig(minimal);
      assert.equal(c.cluster, 'aws');
      assert.equal(c.mesh, 'default');
      assert.deepEqual(c.ingress.ports, [7001]);
      assert.equal(c.ingress.mode, 'reply');
      assert.equal(c.replication.port, 7946);
      assert.equal(c.replication.maxFrameBytes, 1352); // delivery/payloadBudget.ts: Azure 1400 - IPv6 - UDP
      assert.equal(c.ingress.maxPayloadBytes, 1158); // 1352 - 194 (largest v2 DATA header, record, trailer)
      assert.equal(c.replication.auth.insecure, false);
      assert.equal(c.delivery.gapTimeoutMs, 2000);
      assert.equal(c.metrics.port, 9100);
      assert.equal(c.log.level, 'info');
      assert.equal(c.etcd, undefined);
    });

    it('loads YAML and JSON files', () => {
      const y = file(
        'r.yaml',
        [
          'cluster: gcp',
          'ingress:',
          '  ports: [7001, 7002]',
          'delivery:',
          '  dns: echo.default.svc:5353',
          'etcd:',
          '  endpoints: [http://127.0.0.1:2379]',
        ].join('\n'),
      );
      const c = loadConfig(y, {});
      assert.equal(c.cluster, 'gcp');
      assert.deepEqual(c.ingress.ports, [7001, 7002]);
      assert.equal(c.delivery.dns, 'echo.default.svc:5353');
      assert.deepEqual(c.etcd?.endpoints, ['http://127.0.0.1:2379']);
      const j = file('r.json', JSON.stringify({ ...minimal, replication: { port: 8000 } }));
      assert.equal(loadConfig(j, {}).replication.port, 8000);
    });

    it('an empty YAML file is an empty document (then the required keys are reported)', () => {
      const ps = problems(() => loadConfig(file('empty.yaml', ''), {}));
      assertNames(ps, 'cluster');
    });

    it('unreadable or missing files name the file and the cause', () => {
      const missing = path.join(dir, 'nope.yaml');
      const ps = problems(() => loadConfig(missing, {}));
      assert.match(ps[0], /cannot read the config file: ENOENT/);
      assert.throws(
        () => loadConfig(missing, {}),
        (err: ConfigError) => err.source === missing,
      );
      assert.match(problems(() => loadConfig(dir, {}))[0], /cannot read the config file: EISDIR/);
      if (process.getuid?.() !== 0) {
        const locked = file('locked.yaml', 'cluster: aws');
        chmodSync(locked, 0o000);
        assert.match(problems(() => loadConfig(locked, {}))[0], /cannot read the config file: EACCES/);
      }
    });

    it('invalid YAML/JSON and non-mapping documents are rejected with a clear message', () => {
      assert.match(problems(() => loadConfig(file('bad.yaml', 'cluster: [aws\n'), {}))[0], /not valid YAML/);
      assert.match(problems(() => loadConfig(file('bad.json', '{"cluster": '), {}))[0], /not valid JSON/);
      for (const [n, t] of [
        ['list.yaml', '- aws\n- gcp\n'],
        ['scalar.yaml', 'just a string\n'],
        ['num.json', '42'],
        ['arr.json', '[]'],
      ]) {
        assert.match(problems(() => loadConfig(file(n, t), {}))[0], /^\(root\): expected a mapping/, n);
      }
    });
  });

  describe('validation messages name the key', () => {
    it('unknown keys, at the root and in sections', () => {
      assertNames(invalid({ ...minimal, clustr: 'x' }), '(root)', /unknown key\(s\) "clustr"/);
      assertNames(invalid({ ...minimal, ingress: { port: 7001 } }), 'ingress', /unknown key\(s\) "port"/);
      assertNames(
        invalid({
          ...minimal,
          replication: { peers: [{ cluster: 'gcp', address: 'a', port: 1, extra: 1 }] },
        }),
        'replication.peers.0',
        /"extra"/,
      );
    });

    it('wrong types say what was expected', () => {
      assertNames(
        invalid({ ...minimal, ingress: { maxPayloadBytes: '1400' } }),
        'ingress.maxPayloadBytes',
        /expected number.*set ingress.maxPayloadBytes to a number/,
      );
      assertNames(
        invalid({ ...minimal, ingress: { ports: 7001 } }),
        'ingress.ports',
        /set ingress.ports to an array/,
      );
      assertNames(invalid({ ...minimal, ingress: 'x' }), 'ingress', /object/);
      assertNames(invalid({ ...minimal, ingress: { maxSessions: 1.5 } }), 'ingress.maxSessions');
      assertNames(invalid({ ...minimal, ingress: { mode: 'both' } }), 'ingress.mode', /reply|oneway/);
    });

    it('bad ports, in every place a port appears', () => {
      assertNames(invalid({ ...minimal, ingress: { ports: [7001, 70000] } }), 'ingress.ports.1');
      assertNames(invalid({ ...minimal, ingress: { ports: [0] } }), 'ingress.ports.0');
      assertNames(invalid({ ...minimal, replication: { port: 65536 } }), 'replication.port');
      assertNames(invalid({ ...minimal, metrics: { port: -1 } }), 'metrics.port');
      assertNames(
        invalid({ ...minimal, delivery: { backends: ['10.0.0.1:99999'] } }),
        'delivery.backends.0',
        /port must be 1-65535/,
      );
      assertNames(
        invalid({ ...minimal, delivery: { backends: ['10.0.0.1:0'] } }),
        'delivery.backends.0',
        /port must be 1-65535/,
      );
      assertNames(
        invalid({ ...minimal, delivery: { dns: 'echo.svc:65536' } }),
        'delivery.dns',
        /port must be 1-65535/,
      );
      assertNames(
        invalid({ ...minimal, delivery: { backends: ['10.0.0.1'] } }),
        'delivery.backends.0',
        /expected host:port/,
      );
      assert.deepEqual(
        validateConfig({ ...minimal, delivery: { backends: ['[::1]:65535', 'h:1'] } }).delivery.backends,
        ['[::1]:65535', 'h:1'],
      );
    });

    it('bad cluster names', () => {
      for (const bad of ['AWS', '-aws', 'aws-', 'a_b', '', 'x'.repeat(33), 'aws cloud']) {
        assertNames(invalid({ ...minimal, cluster: bad }), 'cluster', /lowercase letters, digits or dashes/);
      }
      assertNames(invalid({ delivery: minimal.delivery }), 'cluster');
      for (const ok of ['a', 'aws', 'gcp-eu-1', 'x'.repeat(32)])
        assert.equal(validateConfig({ ...minimal, cluster: ok }).cluster, ok);
    });

    it('missing backends: delivery.backends or delivery.dns must be set', () => {
      assertNames(
        invalid({ cluster: 'aws' }),
        'delivery.backends',
        /set delivery.backends .* or delivery.dns/,
      );
      assertNames(invalid({ cluster: 'aws', delivery: { backends: [] } }), 'delivery.backends');
      assert.doesNotThrow(() => validateConfig({ cluster: 'aws', delivery: { dns: 'echo:53' } }));
    });

    it('several problems are all reported at once', () => {
      const ps = invalid({ cluster: 'AWS', ingress: { ports: ['x'] }, bogus: 1 });
      assertNames(ps, 'cluster');
      assertNames(ps, 'ingress.ports.0');
      assertNames(ps, '(root)', /"bogus"/);
    });
  });

  describe('environment overrides', () => {
    it('maps UDPMESH_SECTION__SNAKE_KEY to section.camelKey', () => {
      assert.deepEqual(envKeyToPath('UDPMESH_INGRESS__MAX_PAYLOAD_BYTES'), ['ingress', 'maxPayloadBytes']);
      assert.deepEqual(envKeyToPath('UDPMESH_CLUSTER'), ['cluster']);
      assert.deepEqual(envKeyToPath('UDPMESH_REPLICATION__AUTH__RELOAD_MS'), [
        'replication',
        'auth',
        'reloadMs',
      ]);
    });

    it('env alone is a complete config source: numbers, comma lists, single-item lists', () => {
      const c = loadConfig(undefined, {
        UDPMESH_CLUSTER: 'azure',
        UDPMESH_INGRESS__PORTS: '7001,7002',
        UDPMESH_INGRESS__MAX_PAYLOAD_BYTES: '1100',
        UDPMESH_DELIVERY__BACKENDS: '10.0.0.1:53',
        UDPMESH_ETCD__ENDPOINTS: 'http://a:2379, http://b:2379',
        UDPMESH_REPLICATION__AUTH__ALLOW_UNSIGNED: 'true',
        PATH: '/usr/bin',
        OTHER_UDPMESH_X: '1',
      });
      assert.equal(c.cluster, 'azure');
      assert.deepEqual(c.ingress.ports, [7001, 7002]);
      assert.equal(c.ingress.maxPayloadBytes, 1100);
      assert.deepEqual(c.delivery.backends, ['10.0.0.1:53']);
      assert.deepEqual(c.etcd?.endpoints, ['http://a:2379', 'http://b:2379']);
      assert.equal(c.replication.auth.allowUnsigned, true);
    });

    it('the examples documented in main.ts and the README load', () => {
      const c = loadConfig(undefined, {
        UDPMESH_CLUSTER: 'aws',
        UDPMESH_INGRESS__PORTS: '7001,7002',
        UDPMESH_ETCD__ENDPOINTS: 'http://etcd:2379',
        UDPMESH_DELIVERY__DNS: 'echo.svc:5353',
      });
      assert.deepEqual(c.ingress.ports, [7001, 7002]);
      assert.deepEqual(c.etcd?.endpoints, ['http://etcd:2379']);
    });

    it('string keys keep their text even when it looks like JSON; JSON arrays are accepted for lists', () => {
      const c = loadConfig(undefined, {
        ...{
          UDPMESH_CLUSTER: '123',
          UDPMESH_INSTANCE: '42',
          UDPMESH_DELIVERY__BACKENDS: '["10.0.0.1:53","10.0.0.2:53"]',
        },
        UDPMESH_INGRESS__PORTS: '[9000]',
      });
      assert.equal(c.cluster, '123');
      assert.equal(c.instance, '42');
      assert.deepEqual(c.delivery.backends, ['10.0.0.1:53', '10.0.0.2:53']);
      assert.deepEqual(c.ingress.ports, [9000]);
    });

    it('env overrides the file; secrets and UDPMESH_CONFIG are not config keys', () => {
      const f = file(
        'base.yaml',
        'cluster: aws\ndelivery:\n  backends: ["127.0.0.1:1"]\ningress:\n  ports: [1000]\n',
      );
      const c = loadConfig(f, {
        UDPMESH_INGRESS__PORTS: '2000,3000',
        UDPMESH_CONFIG: f,
        UDPMESH_CLUSTER_KEY: 'secret',
        UDPMESH_CLUSTER_KEY_PREVIOUS: 'old',
      });
      assert.deepEqual(c.ingress.ports, [2000, 3000]);
      assert.deepEqual(c.delivery.backends, ['127.0.0.1:1']);
    });

    it('bad env values are reported under the config key they override', () => {
      assertNames(
        problems(() => loadConfig(undefined, { ...env(minimal), UDPMESH_INGRESS__PORTS: '7001,abc' })),
        'ingress.ports.1',
      );
      assertNames(
        problems(() => loadConfig(undefined, { ...env(minimal), UDPMESH_INGRESS__MAX_PAYLOAD_BYTES: 'big' })),
        'ingress.maxPayloadBytes',
      );
      assertNames(
        problems(() => loadConfig(undefined, { ...env(minimal), UDPMESH_INGRES__PORTS: '1' })),
        '(root)',
        /"ingres"/,
      );
      assertNames(
        problems(() => loadConfig(undefined, { ...env(minimal), UDPMESH_METRICS__PORT: '99999' })),
        'metrics.port',
      );
    });

    it('applyEnvOverrides does not modify its input', () => {
      const base = { ingress: { ports: [1] } };
      const out = applyEnvOverrides(base, { UDPMESH_INGRESS__PORTS: '2' });
      assert.deepEqual(base, { ingress: { ports: [1] } });
      assert.deepEqual(out, { ingress: { ports: [2] } });
    });
  });

  describe('properties', () => {
    const isConfigOrConfigError = (fn: () => unknown): void => {
      try {
        const c = fn() as { cluster?: unknown };
        assert.equal(typeof c.cluster, 'string');
      } catch (err) {
        if (!(err instanceof ConfigError))
          assert.fail(`threw something other than ConfigError: ${(err as Error)?.stack ?? String(err)}`);
        assert.ok(
          err.problems.length > 0 && err.problems.every((p) => typeof p === 'string' && p.length > 0),
        );
      }
    };

    // Config-shaped documents: real keys with random values, so validation goes deep, plus random junk.
    const keys = [
      'cluster',
      'instance',
      'mesh',
      'ingress',
      'replication',
      'delivery',
      'etcd',
      'metrics',
      'log',
      'drain',
      'workers',
    ];
    const sectionKeys = [
      'ports',
      'addresses',
      'backends',
      'dns',
      'port',
      'peers',
      'auth',
      'endpoints',
      'level',
      'rateLimit',
      'allowCidrs',
      'mode',
      'tls',
    ];
    const leaf = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(
        'aws',
        '127.0.0.1:53',
        '10.0.0.0/8',
        'http://a:2379',
        7001,
        0,
        -1,
        1e308,
        [],
        {},
        null,
        '__proto__',
      ),
    );
    const section = fc.dictionary(
      fc.oneof(fc.constantFrom(...sectionKeys), fc.string({ maxLength: 8 })),
      leaf,
      { maxKeys: 5 },
    );
    const doc = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      fc.anything({
        maxDepth: 3,
        withNullPrototype: true,
        withMap: true,
        withSet: true,
        withDate: true,
        withTypedArray: true,
        withBigInt: true,
      }),
      fc.dictionary(fc.constantFrom(...keys), fc.oneof(leaf, section), { maxKeys: 8 }),
      fc
        .dictionary(fc.constantFrom(...keys), fc.oneof(leaf, section), { maxKeys: 8 })
        .map((d) => ({ ...minimal, ...d })),
    );

    it('validateConfig on arbitrary values returns a config or throws ConfigError', () => {
      fc.assert(
        fc.property(doc, (d) => isConfigOrConfigError(() => validateConfig(d))),
        fuzz(500),
      );
    });

    const envName = fc.oneof(
      fc.constantFrom(
        'UDPMESH_CLUSTER',
        'UDPMESH_INGRESS__PORTS',
        'UDPMESH_INGRESS__RATE_LIMIT__BURST',
        'UDPMESH_DELIVERY__BACKENDS',
        'UDPMESH_DELIVERY',
        'UDPMESH_ETCD__ENDPOINTS',
        'UDPMESH_REPLICATION__PEERS',
        'UDPMESH_REPLICATION__PEERS__0',
        'UDPMESH_',
        'UDPMESH___',
        'UDPMESH_CONSTRUCTOR__PROTOTYPE',
        'UDPMESH___PROTO____X',
        'UDPMESH_TO_STRING',
      ),
      fc.string({ maxLength: 20 }).map((s) => `UDPMESH_${s}`),
    );
    const envValue = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? ''),
      fc.constantFrom('1,2', ',', '[', 'null', '7001'),
    );

    it('loadConfig with arbitrary env overrides over a valid base returns or throws ConfigError', () => {
      const base = file('prop-base.json', JSON.stringify(minimal));
      fc.assert(
        fc.property(fc.dictionary(envName, envValue, { maxKeys: 6 }), (e) => {
          isConfigOrConfigError(() => loadConfig(base, e));
          isConfigOrConfigError(() => loadConfig(undefined, e));
        }),
        fuzz(300),
      );
      // No override ever reaches Object.prototype.
      assert.equal(({} as Record<string, unknown>).x, undefined);
      assert.equal(Object.prototype.toString.call({}), '[object Object]');
    });

    it('loadConfig on arbitrary YAML/JSON file text returns or throws ConfigError', () => {
      let n = 0;
      const text = fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ''),
        fc.constantFrom(
          'a: &x [1]\nb: *x\n',
          '%YAML 1.1\n---\nd: 2001-12-14\ns: !!set {a, b}\n',
          'k: !!binary aGk=\n',
          '? [a]\n: 1\n',
          'a: *nope\n',
        ),
      );
      // The yaml parser reports odd-but-valid input (unknown directives, collection keys) as process
      // warnings; keep them out of the test output while fuzzing.
      const emitWarning = process.emitWarning;
      process.emitWarning = () => {};
      try {
        fc.assert(
          fc.property(text, fc.constantFrom('.yaml', '.json', '.yml'), (t, ext) => {
            const f = file(`prop-${n++ % 8}${ext}`, t);
            isConfigOrConfigError(() => loadConfig(f, {}));
          }),
          fuzz(300),
        );
      } finally {
        process.emitWarning = emitWarning;
      }
    });
  });
});

/** A config as UDPMESH_* variables (JSON values), for tests that layer one more override on top. */
function env(c: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(c)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v))
        out[`UDPMESH_${k.toUpperCase()}__${k2.replace(/[A-Z]/g, (m) => `_${m}`).toUpperCase()}`] =
          JSON.stringify(v2);
    } else out[`UDPMESH_${k.toUpperCase()}`] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}
