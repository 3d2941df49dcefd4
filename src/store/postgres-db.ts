import { Pool, types, type PoolClient, type QueryResultRow } from 'pg';
import type { Logger } from '../common';
import { migratePostgres } from './pg-migrations';
import { numberPlaceholders, type SqlDb } from './sql';

// Counts, sums and millisecond timestamps are BIGINT/NUMERIC: read as numbers (all stay below 2^53).
types.setTypeParser(20, (v) => Number(v));
types.setTypeParser(1700, (v) => Number(v));

/** PostgreSQL's codes for a transaction that may simply be run again. */
const RETRYABLE = new Set(['40001', '40P01']);

interface Queryable {
  query<R extends QueryResultRow>(sql: string, args?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

function surface(q: Queryable, tx: SqlDb['tx'], bytes: SqlDb['bytes'], close: SqlDb['close']): SqlDb {
  const exec = <R extends QueryResultRow>(sql: string, args: readonly unknown[] = []) => q.query<R>(numberPlaceholders(sql), [...args]);
  return {
    dialect: 'postgres',
    all: async <T>(sql: string, args?: readonly unknown[]) => (await exec(sql, args)).rows as T[],
    get: async <T>(sql: string, args?: readonly unknown[]) => (await exec(sql, args)).rows[0] as T | undefined,
    run: async (sql: string, args?: readonly unknown[]) => (await exec(sql, args)).rowCount ?? 0,
    tx,
    bytes,
    close,
  };
}

/**
 * PostgreSQL behind the SqlDb surface, through a `pg` pool. A lost connection fails the statements
 * it carried (the callers retry on their next pass); it never takes the process down.
 */
export class PostgresDb implements SqlDb {
  readonly dialect = 'postgres';
  private readonly pool: Pool;
  private readonly root: SqlDb;

  private constructor(url: string, private readonly logger?: Logger) {
    this.pool = new Pool({ connectionString: url, max: 8, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30_000, application_name: 'stockade' });
    // An idle connection the server dropped (a restart) is reported here; without a listener it would crash the process.
    this.pool.on('error', (e) => logger?.warn({ err: e }, 'PostgreSQL connection lost; the pool reconnects'));
    this.root = surface(this.pool as unknown as Queryable, (fn) => this.tx(fn), () => this.bytes(), () => this.close());
  }

  /** Connects and brings the schema to the current version (pg-migrations.ts). */
  static async open(url: string, logger?: Logger): Promise<PostgresDb> {
    const db = new PostgresDb(url, logger);
    try {
      await migratePostgres(db, redact(url));
    } catch (e) {
      await db.close();
      throw e;
    }
    return db;
  }

  all<T>(sql: string, args?: readonly unknown[]): Promise<T[]> {
    return this.root.all<T>(sql, args);
  }

  get<T>(sql: string, args?: readonly unknown[]): Promise<T | undefined> {
    return this.root.get<T>(sql, args);
  }

  run(sql: string, args?: readonly unknown[]): Promise<number> {
    return this.root.run(sql, args);
  }

  async tx<T>(fn: (db: SqlDb) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client: PoolClient = await this.pool.connect();
      let broken = false;
      // A checked-out client whose connection the server ends (a restart) emits 'error': without a
      // listener that would take the process down. The statement in flight fails, and the client is
      // discarded on release.
      const onError = (e: Error) => {
        broken = true;
        this.logger?.warn({ err: e }, 'PostgreSQL connection lost in a transaction');
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        // A transaction inside the transaction is the same one.
        const inner: SqlDb = surface(client as unknown as Queryable, (f) => f(inner), () => this.bytes(), () => this.close());
        const v = await fn(inner);
        await client.query('COMMIT');
        return v;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => (broken = true));
        const code = (e as { code?: string }).code;
        if (code && RETRYABLE.has(code) && attempt < 5) continue;
        throw e;
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    }
  }

  async bytes(): Promise<number> {
    const r = await this.get<{ n: number | null }>("SELECT SUM(pg_total_relation_size(c.oid)) AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = current_schema() AND c.relkind = 'r'");
    return r?.n ?? 0;
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}
