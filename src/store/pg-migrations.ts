import { StockadeError } from '../common';
import type { Migration } from './migrations';
import type { SqlDb } from './sql';

/**
 * The PostgreSQL schema, as numbered migrations, the same tables and columns as SQLite's at the
 * same version (migrations.ts): version 6 is SQLite's 1–6 in one, and later versions match SQLite's one by one. Hosts of a fleet start together,
 * so migrating is serialised by an advisory lock, and a database newer than this release is refused.
 */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 6,
    name: 'deliveries, the job queue with leases, quotas, usage, admin tokens, running counts and hosts',
    sql: `CREATE TABLE deliveries (
        guid TEXT PRIMARY KEY, event TEXT NOT NULL, payload TEXT NOT NULL,
        received_at BIGINT NOT NULL, processed INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX deliveries_unprocessed ON deliveries(received_at) WHERE processed = 0;
      CREATE TABLE jobs (
        key TEXT PRIMARY KEY, delivery_guid TEXT NOT NULL, repository TEXT NOT NULL,
        installation_id BIGINT NOT NULL, head_sha TEXT NOT NULL, spec TEXT NOT NULL,
        state TEXT NOT NULL, check_run_id BIGINT, result TEXT, log TEXT, reported INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, priority INTEGER NOT NULL DEFAULT 0,
        started_at BIGINT, admitted_at BIGINT,
        github_attempts INTEGER NOT NULL DEFAULT 0, github_next_at BIGINT NOT NULL DEFAULT 0,
        lease_owner TEXT, lease_until BIGINT, attempt INTEGER NOT NULL DEFAULT 0,
        report_owner TEXT, report_until BIGINT, report_batches INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX jobs_state ON jobs(state, created_at);
      CREATE INDEX jobs_delivery ON jobs(delivery_guid);
      CREATE TABLE quotas (scope TEXT PRIMARY KEY, concurrency INTEGER, minutes_per_day INTEGER, minutes_per_month INTEGER, updated_at BIGINT NOT NULL);
      CREATE TABLE usage (scope TEXT NOT NULL, period TEXT NOT NULL, ms BIGINT NOT NULL, PRIMARY KEY (scope, period));
      CREATE TABLE admin_tokens (hash TEXT PRIMARY KEY, org TEXT NOT NULL, created_at BIGINT NOT NULL);
      CREATE TABLE running_counts (scope TEXT PRIMARY KEY, n INTEGER NOT NULL);
      CREATE TABLE hosts (id TEXT PRIMARY KEY, capacity INTEGER NOT NULL, running INTEGER NOT NULL, draining INTEGER NOT NULL,
        started_at BIGINT NOT NULL, heartbeat_at BIGINT NOT NULL);`,
  },
  { version: 7, name: 'cancelling a job that runs on another host', sql: 'ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0' },
];

export const POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]!.version;

/** An arbitrary constant: the advisory lock every Stockade host takes while it migrates. */
const MIGRATION_LOCK = 0x5707cade;

export async function migratePostgres(db: SqlDb, where: string): Promise<{ from: number; to: number }> {
  return db.tx(async (t) => {
    await t.run('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
    await t.run('CREATE TABLE IF NOT EXISTS stockade_schema (version INTEGER NOT NULL, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const from = (await t.get<{ v: number | null }>('SELECT MAX(version) AS v FROM stockade_schema'))?.v ?? 0;
    if (from > POSTGRES_SCHEMA_VERSION) throw new StockadeError('CONFIG_INVALID', `${where}: schema version ${from} is newer than this Stockade's (${POSTGRES_SCHEMA_VERSION}): it was written by a newer release; run that release on every host`);
    for (const m of POSTGRES_MIGRATIONS.filter((x) => x.version > from)) {
      for (const stmt of m.sql.split(/;\s*(?:\n|$)/).map((x) => x.trim()).filter(Boolean)) await t.run(stmt);
      await t.run('INSERT INTO stockade_schema (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, Date.now()]);
    }
    return { from, to: POSTGRES_SCHEMA_VERSION };
  });
}
