import type Database from 'better-sqlite3';

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
  /** Its tables are made by the database's migrations (migrations.ts). */
  constructor(private readonly db: Database.Database, private readonly now: () => number) {}

  get(scope: string): Quota {
    scope = normScope(scope);
    const r = this.db.prepare('SELECT concurrency, minutes_per_day AS d, minutes_per_month AS m FROM quotas WHERE scope = ?').get(scope) as { concurrency: number | null; d: number | null; m: number | null } | undefined;
    if (!r) return {};
    const q: Quota = {};
    if (r.concurrency !== null) q.concurrency = r.concurrency;
    if (r.d !== null) q.minutesPerDay = r.d;
    if (r.m !== null) q.minutesPerMonth = r.m;
    return q;
  }

  /** Replaces the fields given (null clears one), in one statement: nothing is half-applied. */
  set(scope: string, q: { [K in keyof Quota]?: number | null }): Quota {
    scope = normScope(scope);
    const cur = this.get(scope);
    const pick = (k: keyof Quota) => (k in q ? (q[k] ?? null) : (cur[k] ?? null));
    this.db
      .prepare('INSERT INTO quotas (scope, concurrency, minutes_per_day, minutes_per_month, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(scope) DO UPDATE SET concurrency = excluded.concurrency, minutes_per_day = excluded.minutes_per_day, minutes_per_month = excluded.minutes_per_month, updated_at = excluded.updated_at')
      .run(scope, pick('concurrency'), pick('minutesPerDay'), pick('minutesPerMonth'), this.now());
    return this.get(scope);
  }

  /**
   * Stored quotas of one owner (`org:OWNER` and every `repo:OWNER/…`, matched exactly, never by
   * prefix: `acme` does not see `acme-rival`), or of every scope when `owner` is undefined.
   */
  list(owner?: string): Array<{ scope: string; quota: Quota }> {
    const rows = (owner === undefined
      ? this.db.prepare('SELECT scope FROM quotas ORDER BY scope').all()
      : this.db.prepare("SELECT scope FROM quotas WHERE scope = ? OR (substr(scope, 1, ?) = ? AND instr(substr(scope, ?), '/') = 0) ORDER BY scope").all(`org:${owner.toLowerCase()}`, `repo:${owner}/`.length, `repo:${owner.toLowerCase()}/`, `repo:${owner}/`.length + 1)) as Array<{ scope: string }>;
    return rows.map((r) => ({ scope: r.scope, quota: this.get(r.scope) }));
  }

  addUsage(scopes: string[], ms: number): void {
    const p = periods(this.now());
    const up = this.db.prepare('INSERT INTO usage (scope, period, ms) VALUES (?, ?, ?) ON CONFLICT(scope, period) DO UPDATE SET ms = ms + excluded.ms');
    this.db.transaction(() => {
      for (const s of scopes.map(normScope)) {
        up.run(s, p.day, Math.round(ms));
        up.run(s, p.month, Math.round(ms));
      }
    })();
  }

  usage(scope: string): Usage {
    scope = normScope(scope);
    const p = periods(this.now());
    const get = (period: string) => (this.db.prepare('SELECT ms FROM usage WHERE scope = ? AND period = ?').get(scope, period) as { ms: number } | undefined)?.ms ?? 0;
    return { dayMs: get(p.day), monthMs: get(p.month), dayResets: p.dayResets, monthResets: p.monthResets };
  }

  addToken(hash: string, org: string): void {
    this.db.prepare('INSERT INTO admin_tokens (hash, org, created_at) VALUES (?, ?, ?)').run(hash, org.toLowerCase(), this.now());
  }

  /** The organisation a token hash may administer ('*': all), or undefined. */
  tokenScope(hash: string): string | undefined {
    return (this.db.prepare('SELECT org FROM admin_tokens WHERE hash = ?').get(hash) as { org: string } | undefined)?.org;
  }
}
