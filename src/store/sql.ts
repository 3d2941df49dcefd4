/**
 * The one SQL surface both databases offer the stores: statements are written once, with `?`
 * placeholders and the subset of SQL that SQLite and PostgreSQL share (`ON CONFLICT … DO NOTHING`,
 * `substr`, `lower`, quoted aliases). Each adapter bridges the rest: PostgreSQL numbers the
 * placeholders and honours `FOR UPDATE SKIP LOCKED`; SQLite, one writer at a time, drops the
 * row-locking clauses (its transactions already run alone).
 */
export interface SqlDb {
  readonly dialect: 'sqlite' | 'postgres';
  all<T>(sql: string, args?: readonly unknown[]): Promise<T[]>;
  get<T>(sql: string, args?: readonly unknown[]): Promise<T | undefined>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, args?: readonly unknown[]): Promise<number>;
  /**
   * Runs `fn` in one transaction on one connection: everything it does commits together or not at
   * all. PostgreSQL's serialisation failures and deadlocks are retried (fn must be safe to re-run).
   */
  tx<T>(fn: (db: SqlDb) => Promise<T>): Promise<T>;
  /** Bytes the database's tables hold. */
  bytes(): Promise<number>;
  close(): Promise<void>;
}

/** `?` → `$1, $2, …`, leaving quoted strings and identifiers alone. */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  let out = '';
  let quote: string | undefined;
  for (const ch of sql) {
    if (quote) {
      if (ch === quote) quote = undefined;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else out += ch === '?' ? `$${++n}` : ch;
  }
  return out;
}

/** SQLite has no row locks (a transaction holds the whole database): the clause goes. */
export function withoutRowLocks(sql: string): string {
  return sql.replace(/\s+FOR UPDATE( SKIP LOCKED)?/g, '');
}
