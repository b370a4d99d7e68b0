// The automation service for API fuzzing (scripts/run-schemathesis.sh): a real service on
// 127.0.0.1:<free port> with a file database in a temporary directory, one token per role, and the
// real Pulumi engine (file backend, the cloud-free inline test program) when it is installed, else
// the scripted engine. Prints one JSON line {url, operate, read, engine} and runs until SIGTERM.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { StackEngine } from '../../../automation/engine.ts';
import { PulumiEngine } from '../../../automation/pulumiEngine.ts';
import { startService } from '../../../automation/service.ts';
import { inlineProgram } from '../fixtures/inlineProgram.ts';
import { ScriptedEngine } from './scriptedEngine.ts';
import { engineEnv, findPulumiEngine } from './realEngine.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'udpmesh-fuzz-'));
const found = findPulumiEngine();
let engine: StackEngine;
let kind: string;
if ('reason' in found) {
  engine = new ScriptedEngine();
  kind = `scripted (${found.reason})`;
} else {
  mkdirSync(path.join(dir, 'backend'));
  engine = new PulumiEngine({
    stateDir: path.join(dir, 'state'),
    projectDir: path.join(import.meta.dirname, '..', 'fixtures', 'project'),
    backendUrl: `file://${path.join(dir, 'backend')}`,
    pulumiHome: path.join(dir, 'pulumi-home'),
    pulumiRoot: found.root,
    envVars: engineEnv(found),
    program: inlineProgram({ slowMs: 10 }),
  });
  kind = `pulumi ${found.version}`;
}
const service = await startService({
  engine,
  dbFile: path.join(dir, 'db', 'automation.db'),
  maxConcurrent: 2,
  logger: pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2)),
});
const operate = service.tokens.create('fuzz-operate', 'operate').token;
const read = service.tokens.create('fuzz-read', 'read').token;
process.stdout.write(`${JSON.stringify({ url: service.url, operate, read, engine: kind })}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    void service.close({ jobTimeoutMs: 5000 }).finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    });
  });
