// The service's SQLite database (node:sqlite): jobs, their events, the audit log and API tokens.
import { mkdirSync } from 'node:fs';
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

/** Opens (creating if needed) the database; `:memory:` is allowed for throwaway use. */
export function openDatabase(file: string): DatabaseSync {
  if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;');
  db.exec(SCHEMA);
  return db;
}
