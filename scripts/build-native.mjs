// Builds the batched-I/O addon (replicator/io/native) at install time with node-gyp, from the headers that
// the `node` devDependency ships (node_modules/node/node_modules/node-<platform>/include/node): nothing is
// downloaded. It never fails `npm ci`: when it cannot build (no compiler, no headers, not Linux), it says
// why and `io: auto` falls back to dgram. CI asserts the addon exists instead (test/replicator/io).
/* global process, console */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addonDir = join(root, 'replicator', 'io', 'native');
const strict = process.argv.includes('--strict');

function fail(why) {
  console.warn(`udpmesh: batched I/O addon not built (${why}); io: auto will use dgram`);
  process.exit(strict ? 1 : 0);
}

if (process.platform !== 'linux') fail(`${process.platform} is not Linux`);

/** A directory holding include/node/node_api.h + common.gypi: node-gyp's --nodedir. */
function findNodeDir() {
  const candidates = [];
  const nested = join(root, 'node_modules', 'node', 'node_modules');
  for (const base of [nested, join(root, 'node_modules')]) {
    if (!existsSync(base)) continue;
    for (const name of readdirSync(base))
      if (/^node-(linux|darwin|win)/.test(name)) candidates.push(join(base, name));
  }
  return candidates.find(
    (d) =>
      existsSync(join(d, 'include', 'node', 'node_api.h')) &&
      existsSync(join(d, 'include', 'node', 'common.gypi')),
  );
}

const nodedir = findNodeDir();
if (!nodedir) fail('no node headers under node_modules/node (is the node devDependency installed?)');
const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
if (!existsSync(gyp)) fail('node-gyp is not installed (a production-only install)');

const r = spawnSync(
  process.execPath,
  [gyp, 'rebuild', `--nodedir=${nodedir}`, '--release', '--loglevel=warn'],
  {
    cwd: addonDir,
    stdio: 'inherit',
    env: { ...process.env, npm_config_nodedir: nodedir },
  },
);
if (r.status !== 0) fail(`node-gyp exited with ${r.status ?? r.signal}`);
console.log(`udpmesh: batched I/O addon built (${join(addonDir, 'build', 'Release', 'udp_batch.node')})`);
