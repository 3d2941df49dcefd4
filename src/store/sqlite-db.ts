import Database from 'better-sqlite3';
import { resolve } from 'node:path';
import { migrate } from './migrations';
import { withoutRowLocks, type SqlDb } from './sql';

/**
 * SQLite behind the SqlDb surface. better-sqlite3 is synchronous, so a statement runs whole when
 * called; a transaction spans awaits, so while one is open every other caller waits its turn
 * (nothing from outside slips into it).
 */
export class SqliteDb implements SqlDb {
  readonly dialect = 'sqlite';
  private readonly db: Database.Database;
  private readonly cache = new Map<string, Database.Statement>();
  /** Whose turn it is: shared by every connection of this process to the same file (see gates). */
  private readonly gate: Gate;

  constructor(readonly path: string) {
    this.gate = gateOf(path);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    // The schema by numbered migrations (migrations.ts), never altered ad hoc.
    migrate(this.db, path);
  }

  private stmt(sql: string): Database.Statement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(withoutRowLocks(sql));
      if (this.cache.size > 500) this.cache.clear();
      this.cache.set(sql, s);
    }
    return s;
  }

  private readonly direct: SqlDb = {
    dialect: 'sqlite',
    all: async <T>(sql: string, args: readonly unknown[] = []) => this.stmt(sql).all(...args) as T[],
    get: async <T>(sql: string, args: readonly unknown[] = []) => this.stmt(sql).get(...args) as T | undefined,
    run: async (sql: string, args: readonly unknown[] = []) => this.stmt(sql).run(...args).changes,
    tx: <T>(fn: (db: SqlDb) => Promise<T>) => fn(this.direct),
    bytes: () => this.bytes(),
    close: () => this.close(),
  };

  async all<T>(sql: string, args?: readonly unknown[]): Promise<T[]> {
    // Checked and run in one continuation: no transaction can open between the check and the statement.
    while (this.gate.locked) await this.gate.turn;
    return this.direct.all<T>(sql, args);
  }

  async get<T>(sql: string, args?: readonly unknown[]): Promise<T | undefined> {
    while (this.gate.locked) await this.gate.turn;
    return this.direct.get<T>(sql, args);
  }

  async run(sql: string, args?: readonly unknown[]): Promise<number> {
    while (this.gate.locked) await this.gate.turn;
    return this.direct.run(sql, args);
  }

  async tx<T>(fn: (db: SqlDb) => Promise<T>): Promise<T> {
    while (this.gate.locked) await this.gate.turn;
    this.gate.locked = true;
    let release!: () => void;
    this.gate.turn = new Promise<void>((r) => (release = r));
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const v = await fn(this.direct);
        this.db.exec('COMMIT');
        return v;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
    } finally {
      this.gate.locked = false;
      release();
    }
  }

  /** Bytes the database's live pages hold (free pages are reused, not counted). */
  async bytes(): Promise<number> {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    return (pages - free) * (this.db.pragma('page_size', { simple: true }) as number);
  }

  async close(): Promise<void> {
    while (this.gate.locked) await this.gate.turn;
    this.db.close();
  }
}

interface Gate {
  /** A transaction is open: other callers wait for `turn`. */
  locked: boolean;
  /** Settles when the open transaction ends. */
  turn: Promise<void>;
}

/**
 * One gate per file per process: two connections of one process to one file would otherwise
 * deadlock (the second's BEGIN waits synchronously for a lock the first can only release once
 * the event loop runs). Processes wait for each other through SQLite's busy timeout.
 */
const gates = new Map<string, Gate>();
function gateOf(path: string): Gate {
  if (path === ':memory:' || path === '') return { locked: false, turn: Promise.resolve() };
  const key = resolve(path);
  let g = gates.get(key);
  if (!g) gates.set(key, (g = { locked: false, turn: Promise.resolve() }));
  return g;
}
