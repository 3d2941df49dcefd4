import type Database from 'better-sqlite3';
import { StockadeError } from '../common';

/**
 * The server database's schema, as numbered migrations: each runs once, in order, in its own
 * transaction, and the version reached is kept in SQLite's `user_version`. No table is altered on
 * start-up outside this list; a database written by a newer Stockade (a higher version) is refused
 * rather than half understood.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'deliveries and the job queue',
    sql: `CREATE TABLE deliveries (
        guid TEXT PRIMARY KEY, event TEXT NOT NULL, payload TEXT NOT NULL,
        received_at INTEGER NOT NULL, processed INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE jobs (
        key TEXT PRIMARY KEY, delivery_guid TEXT NOT NULL, repository TEXT NOT NULL,
        installation_id INTEGER NOT NULL, head_sha TEXT NOT NULL, spec TEXT NOT NULL,
        state TEXT NOT NULL, check_run_id INTEGER, result TEXT, log TEXT, reported INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE INDEX jobs_state ON jobs(state, created_at);`,
  },
  { version: 2, name: 'job priority', sql: 'ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0' },
  { version: 3, name: 'when a job started and was admitted', sql: 'ALTER TABLE jobs ADD COLUMN started_at INTEGER; ALTER TABLE jobs ADD COLUMN admitted_at INTEGER' },
  { version: 4, name: 'GitHub write backoff', sql: 'ALTER TABLE jobs ADD COLUMN github_attempts INTEGER NOT NULL DEFAULT 0; ALTER TABLE jobs ADD COLUMN github_next_at INTEGER NOT NULL DEFAULT 0' },
  {
    version: 5,
    name: 'quotas, usage and admin tokens',
    sql: `CREATE TABLE IF NOT EXISTS quotas (scope TEXT PRIMARY KEY, concurrency INTEGER, minutes_per_day INTEGER, minutes_per_month INTEGER, updated_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS usage (scope TEXT NOT NULL, period TEXT NOT NULL, ms INTEGER NOT NULL, PRIMARY KEY (scope, period));
      CREATE TABLE IF NOT EXISTS admin_tokens (hash TEXT PRIMARY KEY, org TEXT NOT NULL, created_at INTEGER NOT NULL);`,
  },
  {
    version: 6,
    name: 'leases, fencing, the report outbox, running counts and hosts',
    sql: `ALTER TABLE jobs ADD COLUMN lease_owner TEXT; ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
      ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN report_owner TEXT; ALTER TABLE jobs ADD COLUMN report_until INTEGER;
      ALTER TABLE jobs ADD COLUMN report_batches INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX IF NOT EXISTS jobs_delivery ON jobs(delivery_guid);
      CREATE TABLE running_counts (scope TEXT PRIMARY KEY, n INTEGER NOT NULL);
      INSERT INTO running_counts (scope, n) SELECT 'repo:' || lower(repository), COUNT(*) FROM jobs WHERE state = 'running' GROUP BY lower(repository);
      INSERT INTO running_counts (scope, n) SELECT 'org:' || lower(substr(repository, 1, instr(repository, '/') - 1)), COUNT(*) FROM jobs WHERE state = 'running' GROUP BY 1;
      CREATE TABLE hosts (id TEXT PRIMARY KEY, capacity INTEGER NOT NULL, running INTEGER NOT NULL, draining INTEGER NOT NULL,
        started_at INTEGER NOT NULL, heartbeat_at INTEGER NOT NULL);`,
  },
  { version: 7, name: 'cancelling a job that runs on another host', sql: 'ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0' },
];

export const SCHEMA_VERSION = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]!.version;

/**
 * Which migrations a database made before versions were kept (user_version 0, tables there) already
 * has, from its columns: those are recorded as done, the rest run.
 */
function adoptedVersion(db: Database.Database): number {
  const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((t) => t.name));
  if (!tables.has('jobs')) return 0;
  const cols = new Set((db.prepare('PRAGMA table_info(jobs)').all() as Array<{ name: string }>).map((c) => c.name));
  if (!cols.has('priority')) return 1;
  if (!cols.has('started_at') || !cols.has('admitted_at')) {
    // Older releases added these two one by one: finish the pair here, then continue from 3.
    if (!cols.has('started_at')) db.exec('ALTER TABLE jobs ADD COLUMN started_at INTEGER');
    if (!cols.has('admitted_at')) db.exec('ALTER TABLE jobs ADD COLUMN admitted_at INTEGER');
  }
  if (!cols.has('github_attempts') || !cols.has('github_next_at')) {
    if (!cols.has('github_attempts')) db.exec('ALTER TABLE jobs ADD COLUMN github_attempts INTEGER NOT NULL DEFAULT 0');
    if (!cols.has('github_next_at')) db.exec('ALTER TABLE jobs ADD COLUMN github_next_at INTEGER NOT NULL DEFAULT 0');
  }
  return 4;
}

/** Brings the database to SCHEMA_VERSION; returns the versions it went from and to. */
export function migrate(db: Database.Database, file: string): { from: number; to: number } {
  let from = db.pragma('user_version', { simple: true }) as number;
  if (from > SCHEMA_VERSION) throw new StockadeError('CONFIG_INVALID', `${file}: schema version ${from} is newer than this Stockade's (${SCHEMA_VERSION}): it was written by a newer release; run that release, or restore a backup`);
  if (from === 0) {
    const adopted = db.transaction(() => adoptedVersion(db))();
    if (adopted) db.pragma(`user_version = ${adopted}`);
    from = adopted;
  }
  for (const m of SQLITE_MIGRATIONS.filter((x) => x.version > from)) {
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  return { from, to: SCHEMA_VERSION };
}
