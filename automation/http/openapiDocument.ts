// The OpenAPI document as the service serves it, built without a network or an engine: for the
// committed openapi.json (`npm run openapi`) and the test that keeps the two identical.
import type { StackEngine } from '../engine.ts';
import { TokenStore } from '../auth/tokens.ts';
import { openDatabase } from '../jobs/db.ts';
import { JobRunner } from '../jobs/jobRunner.ts';
import { JobStore } from '../jobs/jobStore.ts';
import { buildApp } from './app.ts';

const unused = (): never => {
  throw new Error('no engine while generating the OpenAPI document');
};
const NO_ENGINE: StackEngine = {
  up: unused,
  preview: unused,
  refresh: unused,
  destroy: unused,
  outputs: unused,
  listStacks: unused,
  history: unused,
};

export async function openApiDocument(): Promise<unknown> {
  const db = openDatabase(':memory:');
  const store = new JobStore(db);
  const runner = new JobRunner(store, NO_ENGINE, { maxConcurrent: 1 });
  const app = await buildApp({ engine: NO_ENGINE, store, runner, tokens: new TokenStore(db) });
  await app.ready();
  const doc = app.swagger();
  await app.close();
  db.close();
  return doc;
}

/** The committed document's text: stable key order as generated, 2-space JSON, final newline. */
export async function openApiText(): Promise<string> {
  return `${JSON.stringify(await openApiDocument(), null, 2)}\n`;
}
