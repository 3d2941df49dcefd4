import type { SqlDb } from './sql';

/** Limits of one repository (`repo:owner/name`) or organisation (`org:owner`); undefined fields: no limit. */
export interface Quota {
  concurrency?: number;
  minutesPerDay?: number;
  minutesPerMonth?: number;
}

export interface Usage {
  /** Job wall time today (UTC) and this month, in ms. */
  dayMs: number;
  monthMs: number;
  /** When the day and month counters reset (ISO, UTC). */
  dayResets: string;
  monthResets: string;
}

function periods(now: number): { day: string; month: string; dayResets: string; monthResets: string } {
  const d = new Date(now);
  const day = d.toISOString().slice(0, 10);
  const month = day.slice(0, 7);
  const nextDay = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1));
  const nextMonth = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1));
  return { day: `day:${day}`, month: `month:${month}`, dayResets: nextDay.toISOString(), monthResets: nextMonth.toISOString() };
}

/** Owner and repository names are case-insensitive on GitHub: scopes are stored and looked up in lower case. */
export function normScope(scope: string): string {
  return scope.toLowerCase();
}

/** Quotas, usage counters and admin tokens, in the same database as the queue (a restart keeps them). */
export class QuotaStore {
  /** Its tables are made by the database's migrations (migrations.ts, pg-migrations.ts). */
  constructor(private readonly db: SqlDb, private readonly now: () => number) {}

  async get(scope: string): Promise<Quota> {
    const r = await this.db.get<Row>('SELECT scope, concurrency, minutes_per_day AS d, minutes_per_month AS m FROM quotas WHERE scope = ?', [normScope(scope)]);
    return r ? quotaOf(r) : {};
  }

  /** Replaces the fields given (null clears one), in one statement: nothing is half-applied. */
  async set(scope: string, q: { [K in keyof Quota]?: number | null }): Promise<Quota> {
    scope = normScope(scope);
    const cur = await this.get(scope);
    const pick = (k: keyof Quota) => (k in q ? (q[k] ?? null) : (cur[k] ?? null));
    await this.db.run(
      'INSERT INTO quotas (scope, concurrency, minutes_per_day, minutes_per_month, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(scope) DO UPDATE SET concurrency = excluded.concurrency, minutes_per_day = excluded.minutes_per_day, minutes_per_month = excluded.minutes_per_month, updated_at = excluded.updated_at',
      [scope, pick('concurrency'), pick('minutesPerDay'), pick('minutesPerMonth'), this.now()],
    );
    return this.get(scope);
  }

  /**
   * Stored quotas of one owner (`org:OWNER` and every `repo:OWNER/…`, matched exactly, never by
   * prefix: `acme` does not see `acme-rival`), or of every scope when `owner` is undefined.
   */
  async list(owner?: string): Promise<Array<{ scope: string; quota: Quota }>> {
    const cols = 'SELECT scope, concurrency, minutes_per_day AS d, minutes_per_month AS m FROM quotas';
    const prefix = `repo:${(owner ?? '').toLowerCase()}/`;
    const rows = owner === undefined
      ? await this.db.all<Row>(`${cols} ORDER BY scope`)
      : await this.db.all<Row>(`${cols} WHERE scope = ? OR (substr(scope, 1, ?) = ? AND substr(scope, ?) NOT LIKE '%/%') ORDER BY scope`, [`org:${owner.toLowerCase()}`, prefix.length, prefix, prefix.length + 1]);
    return rows.map((r) => ({ scope: r.scope, quota: quotaOf(r) }));
  }

  /** Adds job time to each scope's day and month counters (inside the caller's transaction when given one). */
  async addUsage(scopes: string[], ms: number, db: SqlDb = this.db): Promise<void> {
    const p = periods(this.now());
    await db.tx(async (t) => {
      for (const s of scopes.map(normScope)) {
        for (const period of [p.day, p.month]) await t.run('INSERT INTO usage (scope, period, ms) VALUES (?, ?, ?) ON CONFLICT(scope, period) DO UPDATE SET ms = usage.ms + excluded.ms', [s, period, Math.round(ms)]);
      }
    });
  }

  async usage(scope: string): Promise<Usage> {
    scope = normScope(scope);
    const p = periods(this.now());
    const rows = await this.db.all<{ period: string; ms: number }>('SELECT period, ms FROM usage WHERE scope = ? AND period IN (?, ?)', [scope, p.day, p.month]);
    const get = (period: string) => rows.find((r) => r.period === period)?.ms ?? 0;
    return { dayMs: get(p.day), monthMs: get(p.month), dayResets: p.dayResets, monthResets: p.monthResets };
  }

  async addToken(hash: string, org: string): Promise<void> {
    await this.db.run('INSERT INTO admin_tokens (hash, org, created_at) VALUES (?, ?, ?)', [hash, org.toLowerCase(), this.now()]);
  }

  /** The organisation a token hash may administer ('*': all), or undefined. */
  async tokenScope(hash: string): Promise<string | undefined> {
    return (await this.db.get<{ org: string }>('SELECT org FROM admin_tokens WHERE hash = ?', [hash]))?.org;
  }
}

interface Row {
  scope: string;
  concurrency: number | null;
  d: number | null;
  m: number | null;
}

function quotaOf(r: Row): Quota {
  const q: Quota = {};
  if (r.concurrency !== null) q.concurrency = r.concurrency;
  if (r.d !== null) q.minutesPerDay = r.d;
  if (r.m !== null) q.minutesPerMonth = r.m;
  return q;
}
