// The OpenAPI document is generated from the route schemas (@fastify/swagger); the committed
// openapi.json must be that document (regenerate with `npm run openapi`), and it must describe what
// the service really answers: every authenticated route documents 401/403, every route taking a
// body documents 400/415, every engine read documents 502/503.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../automation/config.ts';
import { ScriptedEngine } from './support/scriptedEngine.ts';
import { api, startTestService } from './support/harness.ts';

type Op = { security?: unknown[]; requestBody?: unknown; responses: Record<string, unknown> };

describe('automation service: OpenAPI document', () => {
  it('the committed openapi.json is the served document (npm run openapi regenerates it)', async () => {
    const svc = await startTestService(new ScriptedEngine());
    try {
      const served = (await api(svc.url, 'GET', '/openapi.json')).json;
      const committed = JSON.parse(readFileSync(path.join(REPO_ROOT, 'openapi.json'), 'utf8'));
      assert.deepEqual(committed, served, 'openapi.json is stale: run npm run openapi');
    } finally {
      await svc.close();
    }
  });

  it('documents the errors each route can give', () => {
    const doc = JSON.parse(readFileSync(path.join(REPO_ROOT, 'openapi.json'), 'utf8'));
    const missing: string[] = [];
    for (const [p, item] of Object.entries(doc.paths as Record<string, Record<string, Op>>)) {
      for (const [method, op] of Object.entries(item)) {
        const need: string[] = [];
        if (!(Array.isArray(op.security) && op.security.length === 0)) need.push('401', '403', '429');
        if (op.requestBody) need.push('400', '415');
        if (/^\/v1\/stacks(\/\{stack\}\/(outputs|history))?$/.test(p)) need.push('502', '503');
        if (/\/(up|preview|refresh|destroy)$/.test(p)) need.push('409', '429', '503');
        for (const code of need)
          if (!op.responses[code]) missing.push(`${method.toUpperCase()} ${p} ${code}`);
      }
    }
    assert.deepEqual(missing, []);
    assert.ok(doc.components.schemas.StackConfig.properties.clouds, 'the infra schema is embedded');
  });
});
