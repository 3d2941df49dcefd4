import { addRunning, COLUMNS, decode, lastStarted, runningScopes, type JobRow, type RawRow } from './job-rows';
import type { SqlDb } from './sql';
import type { Running, Waiting } from '../common';

/** A host's limits as the claim sees them: concurrency per repository and organisation (undefined: none). */
export interface ClaimLimits {
  repository(repository: string): number | undefined;
  org(org: string): number | undefined;
}

/**
 * The scheduling rule the claim applies (queue/pick-next.ts's pickNext, passed in by the server so
 * the store depends on no policy): the next job among `waiting` given what runs, or undefined.
 */
export type PickNext = (waiting: readonly Waiting[], running: readonly Running[], limits: ClaimLimits & { host: number }, lastStarted: (repository: string) => number | undefined) => Waiting | undefined;

export interface HostRow {
  id: string;
  capacity: number;
  running: number;
  draining: boolean;
  startedAt: number;
  heartbeatAt: number;
}

/** What a host does with a running job whose host stopped renewing its lease. */
export type HostLossPolicy = 'fail' | 'requeue';

/**
 * Claims, leases and fencing: how several hosts share one queue. A host claims a job in one
 * transaction (its row locked with `FOR UPDATE SKIP LOCKED`, the repository's and organisation's
 * running counts locked and raised in the same transaction, so a quota holds across hosts), holds
 * a lease it renews while the job runs, and every later write carries the claim's fence (host,
 * attempt): once the lease expired and another host took the job over, those writes change nothing.
 */
export class Leases<S, R> {
  constructor(private readonly db: SqlDb, private readonly now: () => number) {}

  /**
   * The next queued job this host may start (fair across repositories, pick-next.ts), moved to
   * `running` under a lease of `leaseMs`; undefined when none may start now.
   */
  async claim(owner: string, leaseMs: number, limits: ClaimLimits, pickNext: PickNext): Promise<JobRow<S, R> | undefined> {
    return this.db.tx(async (t) => {
      let waiting: Waiting[] = (await t.all<{ key: string; repository: string; priority: number; createdAt: number }>(`SELECT key, repository, priority, created_at AS "createdAt" FROM jobs WHERE state = 'queued' ORDER BY created_at LIMIT 5000`)).map((w) => ({ ...w, org: w.repository.split('/')[0]! }));
      if (!waiting.length) return undefined;
      const running = (await t.all<{ repository: string }>(`SELECT repository FROM jobs WHERE state = 'running'`)).map((r) => ({ repository: r.repository, org: r.repository.split('/')[0]! }));
      const last = await lastStarted(t);
      for (let tries = 0; tries < 200 && waiting.length; tries++) {
        const next = pickNext(waiting, running, { host: Infinity, repository: limits.repository, org: limits.org }, (r) => last.get(r));
        if (!next) return undefined;
        // Another host may hold this row right now (claiming it too): skip it rather than wait.
        if (!(await t.get(`SELECT key FROM jobs WHERE key = ? AND state = 'queued' FOR UPDATE SKIP LOCKED`, [next.key]))) {
          waiting = waiting.filter((w) => w.key !== next.key);
          continue;
        }
        // The counts as committed by every host, locked until this transaction ends (always org, then repo).
        const [orgScope, repoScope] = runningScopes(next.repository);
        for (const s of [orgScope, repoScope]) await t.run('INSERT INTO running_counts (scope, n) VALUES (?, 0) ON CONFLICT (scope) DO NOTHING', [s]);
        const n = new Map((await t.all<{ scope: string; n: number }>('SELECT scope, n FROM running_counts WHERE scope IN (?, ?) ORDER BY scope FOR UPDATE', [orgScope, repoScope])).map((r) => [r.scope, r.n]));
        const orgLimit = limits.org(next.org);
        const repoLimit = limits.repository(next.repository);
        if (orgLimit !== undefined && (n.get(orgScope) ?? 0) >= orgLimit) {
          waiting = waiting.filter((w) => w.org.toLowerCase() !== next.org.toLowerCase());
          continue;
        }
        if (repoLimit !== undefined && (n.get(repoScope) ?? 0) >= repoLimit) {
          waiting = waiting.filter((w) => w.repository.toLowerCase() !== next.repository.toLowerCase());
          continue;
        }
        const now = this.now();
        await t.run(`UPDATE jobs SET state = 'running', started_at = ?, updated_at = ?, lease_owner = ?, lease_until = ?, attempt = attempt + 1 WHERE key = ?`, [now, now, owner, now + leaseMs, next.key]);
        await addRunning(t, next.repository, +1);
        return decode<S, R>((await t.get<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE key = ?`, [next.key]))!);
      }
      return undefined;
    });
  }

  /** Renews this host's leases; returns the jobs whose lease it no longer holds (another host took them over). */
  async renew(owner: string, leaseMs: number, held: ReadonlyArray<{ key: string; attempt: number }>): Promise<string[]> {
    const lost: string[] = [];
    const until = this.now() + leaseMs;
    for (const h of held) {
      const n = await this.db.run(`UPDATE jobs SET lease_until = ? WHERE key = ? AND state = 'running' AND lease_owner = ? AND attempt = ?`, [until, h.key, owner, h.attempt]);
      if (n !== 1) lost.push(h.key);
    }
    return lost;
  }

  /** Asks whichever host runs `key` to cancel it (it sees the request at its next renewal); false when it is not running. */
  async requestCancel(key: string): Promise<boolean> {
    return (await this.db.run(`UPDATE jobs SET cancel_requested = 1 WHERE key = ? AND state = 'running'`, [key])) === 1;
  }

  /** This host's running jobs someone asked to cancel. */
  async cancelRequested(owner: string): Promise<string[]> {
    return (await this.db.all<{ key: string }>(`SELECT key FROM jobs WHERE state = 'running' AND lease_owner = ? AND cancel_requested = 1`, [owner])).map((r) => r.key);
  }

  /**
   * Takes an accepted job for creating its check run (one host at a time, for `leaseMs`); the
   * claim's attempt, or undefined when another host holds it. An attempt above 1 means an earlier
   * claim may have created the check run already.
   */
  async claimAccept(key: string, owner: string, leaseMs: number): Promise<number | undefined> {
    const now = this.now();
    const n = await this.db.run(`UPDATE jobs SET lease_owner = ?, lease_until = ?, attempt = attempt + 1 WHERE key = ? AND state = 'accepted' AND (lease_until IS NULL OR lease_until < ?)`, [owner, now + leaseMs, key, now]);
    if (n !== 1) return undefined;
    return (await this.db.get<{ attempt: number }>('SELECT attempt FROM jobs WHERE key = ?', [key]))?.attempt;
  }

  /**
   * Confirms (and extends) an accept claim right before the check run is created: false when the
   * claim passed to another host meanwhile (this host was paused or slow), which then creates or
   * finds the check run itself.
   */
  async renewAccept(key: string, owner: string, attempt: number, leaseMs: number): Promise<boolean> {
    return (await this.db.run(`UPDATE jobs SET lease_until = ? WHERE key = ? AND state = 'accepted' AND lease_owner = ? AND attempt = ?`, [this.now() + leaseMs, key, owner, attempt])) === 1;
  }

  /** Saves the check run an accept claim created, unless a later claim of the job exists (a cancel meanwhile still gets it). */
  async saveCheckRun(key: string, attempt: number, id: number): Promise<boolean> {
    return (await this.db.run('UPDATE jobs SET check_run_id = ?, updated_at = ? WHERE key = ? AND attempt = ?', [id, this.now(), key, attempt])) === 1;
  }

  /**
   * Running jobs whose host let the lease run out: each failed with `result(row)` ("the runner host
   * stopped"), or queued again by policy while it has run fewer than `maxAttempts` times, in one
   * transaction per job that re-checks the lease. Returns what was done.
   */
  async takeOverExpired(policy: HostLossPolicy, maxAttempts: number, result: (row: JobRow<S, R>) => R): Promise<Array<{ key: string; owner: string | null; to: 'failed' | 'queued' }>> {
    const now = this.now();
    const expired = await this.db.all<{ key: string }>(`SELECT key FROM jobs WHERE state = 'running' AND lease_until IS NOT NULL AND lease_until < ? ORDER BY lease_until LIMIT 100`, [now]);
    const done: Array<{ key: string; owner: string | null; to: 'failed' | 'queued' }> = [];
    for (const { key } of expired) {
      const r = await this.db.tx(async (t) => {
        const raw = await t.get<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE key = ? AND state = 'running' AND lease_until < ? FOR UPDATE SKIP LOCKED`, [key, now]);
        if (!raw) return undefined;
        const row = decode<S, R>(raw);
        const to = policy === 'requeue' && row.attempt < maxAttempts ? 'queued' : 'failed';
        if (to === 'queued') await t.run(`UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE key = ?`, [now, key]);
        else await t.run(`UPDATE jobs SET state = 'failed', result = ?, lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE key = ?`, [JSON.stringify(result(row)), now, key]);
        await addRunning(t, row.repository, -1);
        return { key, owner: row.leaseOwner, to } as const;
      });
      if (r) done.push(r);
    }
    return done;
  }

  /**
   * The report outbox: the terminal transition stored the result with `reported = 0` in its own
   * transaction; a host takes the job's report for `leaseMs` before sending it, so two hosts never
   * send the same report at once. False: another host has it.
   */
  async claimReport(key: string, owner: string, leaseMs: number): Promise<boolean> {
    const now = this.now();
    return (await this.db.run(`UPDATE jobs SET report_owner = ?, report_until = ? WHERE key = ? AND reported = 0 AND (report_until IS NULL OR report_until < ?)`, [owner, now + leaseMs, key, now])) === 1;
  }

  /** GitHub took the report's first `batches` annotation batches: a host that resumes the report sends only the rest. */
  async reportProgress(key: string, batches: number): Promise<void> {
    await this.db.run('UPDATE jobs SET report_batches = ? WHERE key = ?', [batches, key]);
  }

  async heartbeat(h: Omit<HostRow, 'heartbeatAt'>): Promise<void> {
    await this.db.run(
      'INSERT INTO hosts (id, capacity, running, draining, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET capacity = excluded.capacity, running = excluded.running, draining = excluded.draining, heartbeat_at = excluded.heartbeat_at',
      [h.id, h.capacity, h.running, h.draining ? 1 : 0, h.startedAt, this.now()],
    );
  }

  async hosts(): Promise<HostRow[]> {
    return (await this.db.all<Omit<HostRow, 'draining'> & { draining: number }>('SELECT id, capacity, running, draining, started_at AS "startedAt", heartbeat_at AS "heartbeatAt" FROM hosts ORDER BY id')).map((h) => ({ ...h, draining: !!h.draining }));
  }

  /** A host that stopped cleanly leaves the fleet view; one unheard of for `staleMs` is dropped from it. */
  async removeHost(id: string): Promise<void> {
    await this.db.run('DELETE FROM hosts WHERE id = ?', [id]);
  }

  async dropStaleHosts(staleMs: number): Promise<number> {
    return this.db.run('DELETE FROM hosts WHERE heartbeat_at < ?', [this.now() - staleMs]);
  }

  /** The running counters, for /metrics and the fleet test (each is back at 0 once nothing runs). */
  async runningCounts(): Promise<Map<string, number>> {
    return new Map((await this.db.all<{ scope: string; n: number }>('SELECT scope, n FROM running_counts ORDER BY scope')).map((r) => [r.scope, r.n]));
  }
}
