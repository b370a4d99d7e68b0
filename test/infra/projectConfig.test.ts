// Pulumi.yaml's config declarations are derived from the zod schema (infra/config/projectConfig.ts): this
// fails when someone edits one without the other. The real CLI's acceptance of them is checked in
// test/infra/realEngine.test.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { projectConfigDeclarations, syncProjectFile } from '../../infra/config/projectConfig.ts';
import { parseStackConfig, stackConfigSchema } from '../../infra/config/schema.ts';
import { REPO_ROOT } from '../harness/pulumiEngine.ts';

const projectFile = path.join(REPO_ROOT, 'Pulumi.yaml');

describe('Pulumi.yaml config declarations', () => {
  it('are exactly the ones derived from the stack config schema (run `npm run config:sync` to fix)', () => {
    const text = readFileSync(projectFile, 'utf8');
    const declared = (YAML.parse(text) as { config: unknown }).config;
    assert.deepEqual(declared, projectConfigDeclarations(), 'Pulumi.yaml is out of sync with infra/config/schema.ts');
    // The rewrite keeps everything else in the file.
    const { config: _a, ...rest } = YAML.parse(text) as Record<string, unknown>;
    const { config: _b, ...restAfter } = YAML.parse(syncProjectFile(text)) as Record<string, unknown>;
    assert.deepEqual(restAfter, rest);
  });

  it('declare every schema key, and only the CLI-supported types', () => {
    const decl = projectConfigDeclarations();
    assert.deepEqual(
      Object.keys(decl).sort(),
      Object.keys(stackConfigSchema.shape)
        .map((k) => `udpmesh:${k}`)
        .sort(),
    );
    for (const [key, d] of Object.entries(decl)) {
      if (d.type !== undefined) assert.ok(['string', 'integer', 'boolean', 'array'].includes(d.type), key);
      if (d.type === 'array') assert.ok(d.items, `${key}: arrays need items`);
      // Only `clouds` may be required: every other key must be optional for the CLI (default present).
      if (key !== 'udpmesh:clouds') assert.ok('default' in d, `${key} would be required by the CLI`);
    }
    assert.ok(
      !('default' in decl['udpmesh:clouds']!),
      'clouds must stay required: a stack chooses its clouds',
    );
  });

  it('scalar defaults equal the schema defaults, and the declared defaults parse to the schema defaults', () => {
    const decl = projectConfigDeclarations();
    const parsed = parseStackConfig({ clouds: ['aws'] });
    assert.equal(decl['udpmesh:mesh']!.default, parsed.mesh);
    assert.equal(decl['udpmesh:namespace']!.default, parsed.namespace);
    // What the CLI hands the program when a stack sets nothing but clouds:
    const raw: Record<string, unknown> = { clouds: ['aws'] };
    for (const [key, d] of Object.entries(decl))
      if ('default' in d) raw[key.slice('udpmesh:'.length)] = d.default;
    assert.deepEqual(parseStackConfig(raw), parsed);
  });

  it('every example stack sets only declared udpmesh keys', () => {
    const decl = projectConfigDeclarations();
    for (const stack of ['dev', 'prod']) {
      const file = YAML.parse(readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as {
        config: Record<string, unknown>;
      };
      for (const key of Object.keys(file.config)) {
        if (key.startsWith('udpmesh:')) assert.ok(decl[key], `Pulumi.${stack}.yaml sets undeclared ${key}`);
      }
    }
  });
});
