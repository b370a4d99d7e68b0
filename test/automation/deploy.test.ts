// The service as it ships: the compiled entry point (tsc -> dist/) runs as the image runs it, node
// directly, and stops cleanly on SIGTERM; the Dockerfile runs that, non-root, state on a volume, the
// engine inside and no dev tools; the Kubernetes manifest is valid (kubernetes-models) and probes
// routes the service really serves.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import YAML from 'yaml';
import { REPO_ROOT } from '../../automation/config.ts';
import { api, tempDir } from './support/harness.ts';

const read = (f: string) => readFileSync(path.join(REPO_ROOT, f), 'utf8');

describe('automation: deployable', function () {
  this.timeout(120_000);

  it('the compiled service starts with node directly and stops on SIGTERM (exit 0, port free)', async () => {
    const build = spawnSync(
      process.execPath,
      ['node_modules/typescript/bin/tsc', '-p', 'automation/tsconfig.build.json'],
      {
        cwd: REPO_ROOT,
        encoding: 'utf8',
      },
    );
    assert.equal(build.status, 0, build.stdout + build.stderr);
    const tmp = tempDir();
    try {
      const child = spawn(process.execPath, ['dist/automation/server.js'], {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          UDPMESH_PORT: '0',
          UDPMESH_STATE_DIR: tmp.dir,
          UDPMESH_PULUMI_ROOT: path.join(tmp.dir, 'none'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let log = '';
      child.stdout.on('data', (d) => (log += d));
      child.stderr.on('data', (d) => (log += d));
      const url = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(log)), 30_000);
        child.stdout.on('data', () => {
          const m = /"url":"(http:\/\/[^"]+)"/.exec(log);
          if (m) {
            clearTimeout(t);
            resolve(m[1]!);
          }
        });
      });
      assert.equal((await api(url, 'GET', '/healthz')).status, 200);
      assert.doesNotMatch(log, /ExperimentalWarning/);
      const exited = new Promise<number | null>((r) => child.on('exit', r));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, log);
      assert.match(log, /"msg":"stopped"/);
      await assert.rejects(fetch(`${url}/healthz`));
    } finally {
      tmp.cleanup();
    }
  });

  it('the Dockerfile runs compiled JS with node as non-root, state on a volume, the engine inside, no dev tools shipped', () => {
    const df = read('automation/Dockerfile');
    const final = df.slice(df.lastIndexOf('\nFROM '));
    assert.match(final, /ENTRYPOINT \["node", "dist\/automation\/server\.js"\]/);
    assert.doesNotMatch(final, /npm (run|start)|tsx/);
    assert.match(final, /USER 10001:10001/);
    assert.match(final, /VOLUME \["\/var\/lib\/udpmesh"\]/);
    assert.match(final, /UDPMESH_STATE_DIR=\/var\/lib\/udpmesh/);
    assert.match(final, /COPY --from=engine \/opt\/pulumi\/bin \/opt\/pulumi\/bin/);
    assert.match(final, /UDPMESH_PULUMI_ROOT=\/opt\/pulumi/);
    assert.doesNotMatch(final, /COPY (\S+ )*scripts/);
    assert.match(final, /EXPOSE 8080\/tcp/);
  });

  it('the Kubernetes manifest is valid and probes routes the service serves', () => {
    const docs = YAML.parseAllDocuments(read('automation/deploy/kubernetes.yaml')).map((d) => d.toJS());
    const byKind = Object.fromEntries(docs.map((d) => [d.kind, d]));
    new Deployment(byKind.Deployment).validate();
    new Service(byKind.Service).validate();
    new PersistentVolumeClaim(byKind.PersistentVolumeClaim).validate();
    const dep = byKind.Deployment;
    assert.equal(dep.spec.replicas, 1, 'one writer of the SQLite database');
    assert.equal(dep.spec.strategy.type, 'Recreate');
    assert.equal(dep.spec.template.spec.securityContext.runAsNonRoot, true);
    const c = dep.spec.template.spec.containers[0];
    assert.equal(c.ports[0].containerPort, 8080);
    assert.equal(
      c.volumeMounts.find((m: { name: string }) => m.name === 'state').mountPath,
      '/var/lib/udpmesh',
    );
    const paths = JSON.parse(read('openapi.json')).paths;
    assert.ok(paths[c.livenessProbe.httpGet.path], c.livenessProbe.httpGet.path);
    assert.ok(paths[c.readinessProbe.httpGet.path], c.readinessProbe.httpGet.path);
    assert.ok(dep.spec.template.spec.terminationGracePeriodSeconds > 30, 'longer than the job drain');
  });
});
