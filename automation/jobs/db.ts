// The service's SQLite database (node:sqlite): jobs, their events, the audit log, API tokens, the
// stored stack specs and the per-stack locks. The CLI opens the same file, so every operation,
// whatever its entry point, goes through one job store and one lock. The file and its directory are
// private to the service user (they hold the audit log, token hashes and specs).
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id           TEXT PRIMARY KEY,
  stack        TEXT NOT NULL,
  operation    TEXT NOT NULL,
  status       TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  message      TEXT,
  options_json TEXT NOT NULL DEFAULT '{}',
  created_at   TEXT NOT NULL,
  started_at   TEXT,
  finished_at  TEXT,
  result_json  TEXT,
  error_json   TEXT,
  event_count  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_stack ON jobs(stack);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status);
CREATE TABLE IF NOT EXISTS job_events (
  job_id    TEXT NOT NULL REFERENCES jobs(id),
  seq       INTEGER NOT NULL,
  time      TEXT NOT NULL,
  type      TEXT NOT NULL,
  data_json TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  time    TEXT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  stack   TEXT,
  job_id  TEXT,
  result  TEXT NOT NULL,
  detail  TEXT
);
CREATE TABLE IF NOT EXISTS stack_locks (
  stack       TEXT PRIMARY KEY,
  job_id      TEXT NOT NULL,
  owner       TEXT NOT NULL,
  acquired_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS specs (
  stack      TEXT PRIMARY KEY,
  spec_json  TEXT NOT NULL,
  version    INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stack_settings (
  stack      TEXT PRIMARY KEY,
  protected  INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
  token_id   TEXT NOT NULL,
  key        TEXT NOT NULL,
  route      TEXT NOT NULL,
  body_hash  TEXT NOT NULL,
  job_id     TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (token_id, key)
);
CREATE TABLE IF NOT EXISTS tokens (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  role         TEXT NOT NULL,
  hash         TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  revoked_at   TEXT,
  last_used_at TEXT
);
`;

/** Columns added after the first release: added in place to an existing database. */
const COLUMNS: [table: string, column: string, decl: string][] = [
  ['jobs', 'owner', 'TEXT'],
  ['tokens', 'expires_at', 'TEXT'],
  ['tokens', 'stacks', 'TEXT'],
];

/** Opens (creating if needed) the database; `:memory:` is allowed for throwaway use. */
export function openDatabase(file: string): DatabaseSync {
  if (file !== ':memory:') {
    const dir = path.dirname(path.resolve(file));
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    }
  }
  const db = new DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;');
  db.exec(SCHEMA);
  for (const [table, column, decl] of COLUMNS) {
    const cols = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
    if (!cols.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${decl}`);
  }
  if (file !== ':memory:') {
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
  }
  return db;
}

/**
 * The key that seals stored specs: `<db file>.key` (32 random bytes, mode 0600, created on first
 * use, shared by the service and the CLI), or UDPMESH_SPEC_KEY (64 hex characters) when set.
 */
export function specKeyFor(file: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const fromEnv = env.UDPMESH_SPEC_KEY;
  if (fromEnv) {
    if (!/^[0-9a-f]{64}$/i.test(fromEnv)) throw new Error('UDPMESH_SPEC_KEY: 64 hex characters (32 bytes)');
    return Buffer.from(fromEnv, 'hex');
  }
  if (file === ':memory:') return randomBytes(32);
  const keyFile = `${path.resolve(file)}.key`;
  if (!existsSync(keyFile)) {
    try {
      writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const hex = readFileSync(keyFile, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`${keyFile}: not a spec key (64 hex characters)`);
  return Buffer.from(hex, 'hex');
}
