import { QuotaStore } from './quota-store';
import { SqliteDb } from './sqlite-db';
import { PostgresDb } from './postgres-db';
import type { SqlDb } from './sql';
import { Leases } from './leases';
import type { Logger } from '../common';

/** States an accepted job walks through; every one ends in a terminal state with a reported check run. */
export type JobState = 'accepted' | 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

const NEXT: Record<JobState, JobState[]> = {
  accepted: ['queued', 'failed', 'cancelled'],
  queued: ['running', 'failed', 'cancelled'],
  running: ['completed', 'failed', 'cancelled', 'queued'],
  completed: [],
  failed: [],
  cancelled: [],
};

export interface DeliveryRow {
  guid: string;
  event: string;
  payload: string;
  receivedAt: number;
  processed: boolean;
}

/**
 * A stored job with its spec and result as values: the store parses them once when it reads the row
 * and serialises them when it writes, so no caller handles JSON. `S` and `R` are the server's types
 * (the store does not know them).
 */
export interface JobRow<S = unknown, R = unknown> {
  /** `<repository>/<kind>/<id>/<attempt>`: the same job from two deliveries has the same key. */
  key: string;
  deliveryGuid: string;
  repository: string;
  installationId: number;
  headSha: string;
  /** What to run (mode, workflow path, job name, event…). */
  spec: S;
  state: JobState;
  checkRunId: number | null;
  /** Final result. */
  result: R | null;
  /** Masked full log. */
  log: string | null;
  createdAt: number;
  updatedAt: number;
  priority: number;
  startedAt: number | null;
  /** GitHub writes for this job that failed so far (check-run creation or report). */
  githubAttempts: number;
  /** The next GitHub write is not tried before this (ms since the epoch). */
  githubNextAt: number;
  /** The host holding the job (accepting or running it), while its lease lasts. */
  leaseOwner: string | null;
  leaseUntil: number | null;
  /** Claims of this job so far: the fencing token of the current one. */
  attempt: number;
  /** Annotation batches of the final report GitHub has taken. */
  reportBatches: number;
}

/** What a host proves it still holds a job with: a write carrying it changes nothing once another host took over. */
export interface Fence {
  owner: string;
  attempt: number;
}

/** A job as a delivery plans it, before it is stored. */
export type NewJob<S = unknown> = Pick<JobRow<S>, 'key' | 'deliveryGuid' | 'repository' | 'installationId' | 'headSha' | 'spec'> & {
  /** Higher starts first within a repository. @default 0 */
  priority?: number;
};

/**
 * The durable queue: deliveries are stored before the webhook is answered, jobs are keyed so a
 * replay or a second delivery of the same job runs once, and every state change is a checked
 * transition in one transaction. The same statements run on SQLite (one host) and PostgreSQL (a
 * fleet); fleet-store.ts adds the claims, leases and hosts on top.
 */
export class JobStore<S = unknown, R = unknown> {
  readonly quotas: QuotaStore;
  readonly leases: Leases<S, R>;

  constructor(readonly db: SqlDb, protected readonly now: () => number = Date.now) {
    this.quotas = new QuotaStore(db, now);
    this.leases = new Leases<S, R>(db, now);
  }

  /** A SQLite file path, or a `postgres://` / `postgresql://` URL. */
  static async open<S, R>(location: string, o: { logger?: Logger; now?: () => number } = {}): Promise<JobStore<S, R>> {
    const db = isPostgresUrl(location) ? await PostgresDb.open(location, o.logger) : new SqliteDb(location);
    return new JobStore<S, R>(db, o.now);
  }

  /** Stores a delivery; false when this GUID was stored before (a replay). */
  async addDelivery(guid: string, event: string, payload: string): Promise<boolean> {
    return (await this.db.run('INSERT INTO deliveries (guid, event, payload, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (guid) DO NOTHING', [guid, event, payload, this.now()])) === 1;
  }

  async getDelivery(guid: string): Promise<DeliveryRow | undefined> {
    const d = await this.db.get<DeliveryRow>(`SELECT ${DELIVERY} FROM deliveries WHERE guid = ?`, [guid]);
    return d && { ...d, processed: !!d.processed };
  }

  async hasDelivery(guid: string): Promise<boolean> {
    return !!(await this.db.get('SELECT 1 AS x FROM deliveries WHERE guid = ?', [guid]));
  }

  async unprocessedDeliveries(limit = 100): Promise<DeliveryRow[]> {
    return (await this.db.all<DeliveryRow>(`SELECT ${DELIVERY} FROM deliveries WHERE processed = 0 ORDER BY received_at LIMIT ?`, [limit])).map((d) => ({ ...d, processed: !!d.processed }));
  }

  /** Marks a delivery handled and inserts the jobs it produced (each at most once, whichever host gets there first), atomically. */
  async processDelivery(guid: string, jobs: NewJob<S>[]): Promise<string[]> {
    return this.db.tx(async (t) => {
      const added: string[] = [];
      const now = this.now();
      for (const j of jobs) {
        const n = await t.run(
          `INSERT INTO jobs (key, delivery_guid, repository, installation_id, head_sha, spec, state, created_at, updated_at, priority)
           VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
          [j.key, j.deliveryGuid, j.repository, j.installationId, j.headSha, JSON.stringify(j.spec), now, now, j.priority ?? 0],
        );
        if (n === 1) added.push(j.key);
      }
      await t.run('UPDATE deliveries SET processed = 1 WHERE guid = ?', [guid]);
      return added;
    });
  }

  async get(key: string): Promise<JobRow<S, R> | undefined> {
    return this.row(await this.db.get<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE key = ?`, [key]));
  }

  /** A job whose key starts with `prefix` that has not finished (accepted, queued or running). */
  async activeWithPrefix(prefix: string): Promise<JobRow<S, R> | undefined> {
    return this.row(await this.db.get<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE substr(key, 1, ?) = ? AND state IN ('accepted', 'queued', 'running') LIMIT 1`, [prefix.length, prefix]));
  }

  /** Accepted jobs whose next attempt at creating their check run is due and that no host is accepting. */
  async dueAccepted(limit = 1000): Promise<JobRow<S, R>[]> {
    const now = this.now();
    return this.rows(await this.db.all<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE state = 'accepted' AND github_next_at <= ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY created_at LIMIT ?`, [now, now, limit]));
  }

  async inState(state: JobState, limit = 1000): Promise<JobRow<S, R>[]> {
    return this.rows(await this.db.all<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE state = ? ORDER BY created_at LIMIT ?`, [state, limit]));
  }

  /** An owner's jobs in the given states (owner names match case-insensitively and exactly), newest first. */
  async byOwner(owner: string, states: readonly JobState[], limit = 100): Promise<JobRow<S, R>[]> {
    const prefix = `${owner.toLowerCase()}/`;
    return this.rows(await this.db.all<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE lower(substr(repository, 1, ?)) = ? AND state IN (${states.map(() => '?').join(', ')}) ORDER BY updated_at DESC LIMIT ?`, [prefix.length, prefix, ...states, limit]));
  }

  async counts(): Promise<Record<JobState, number>> {
    const out = { accepted: 0, queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 } as Record<JobState, number>;
    for (const r of await this.db.all<{ state: JobState; n: number }>('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state')) out[r.state] = r.n;
    return out;
  }

  /**
   * Moves a job to `to` if it is in a state allowed to go there (and, given a fence, only while that
   * host's claim is still the job's current one); false otherwise: someone else moved it. Leaving
   * `running` releases the lease and the running counts in the same transaction; `usage` (job time)
   * is counted in it too, so a write that is refused counts nothing.
   */
  async transition(key: string, to: JobState, fields: Partial<Pick<JobRow<S, R>, 'checkRunId' | 'result' | 'log'>> & { usage?: { scopes: string[]; ms: number } } = {}, fence?: Fence): Promise<boolean> {
    return this.db.tx(async (t) => {
      const cur = await t.get<{ state: JobState; repository: string; leaseOwner: string | null; attempt: number }>('SELECT state, repository, lease_owner AS "leaseOwner", attempt FROM jobs WHERE key = ? FOR UPDATE', [key]);
      if (!cur || !NEXT[cur.state].includes(to)) return false;
      if (fence && (cur.state !== 'running' || cur.leaseOwner !== fence.owner || cur.attempt !== fence.attempt)) return false;
      const now = this.now();
      const sets = ['state = ?', 'updated_at = ?'];
      const args: unknown[] = [to, now];
      if (to === 'running') (sets.push('started_at = ?'), args.push(now));
      if (to === 'queued') (sets.push('admitted_at = ?'), args.push(now));
      if (to !== 'running') sets.push('lease_owner = NULL', 'lease_until = NULL');
      if (fields.checkRunId !== undefined) (sets.push('check_run_id = ?'), args.push(fields.checkRunId));
      if (fields.result !== undefined) (sets.push('result = ?'), args.push(fields.result === null ? null : JSON.stringify(fields.result)));
      if (fields.log !== undefined) (sets.push('log = ?'), args.push(fields.log));
      if ((await t.run(`UPDATE jobs SET ${sets.join(', ')} WHERE key = ? AND state = ?`, [...args, key, cur.state])) !== 1) return false;
      if (cur.state === 'running') await addRunning(t, cur.repository, -1);
      if (to === 'running') await addRunning(t, cur.repository, +1);
      if (fields.usage) await this.quotas.addUsage(fields.usage.scopes, fields.usage.ms, t);
      return true;
    });
  }

  /** Jobs of an installation admitted (accepted → queued) since `since`. */
  async admittedSince(installationId: number, since: number): Promise<number> {
    return (await this.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM jobs WHERE installation_id = ? AND admitted_at >= ?', [installationId, since]))!.n;
  }

  /** When each repository's most recent job started. */
  async lastStarted(db: SqlDb = this.db): Promise<Map<string, number>> {
    const rows = await db.all<{ repository: string; t: number }>('SELECT repository, MAX(started_at) AS t FROM jobs WHERE started_at IS NOT NULL GROUP BY repository');
    return new Map(rows.map((r) => [r.repository, r.t]));
  }

  /** Finished jobs whose report GitHub has not taken yet, whose next attempt is due and that no host is sending. */
  async unreported(limit = 100): Promise<JobRow<S, R>[]> {
    const now = this.now();
    return this.rows(await this.db.all<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE reported = 0 AND state IN ('completed', 'failed', 'cancelled') AND github_next_at <= ? AND (report_until IS NULL OR report_until < ?) ORDER BY github_next_at, updated_at LIMIT ?`, [now, now, limit]));
  }

  /** A GitHub write for this job failed: the attempt is counted and the next one put off until `nextAt`. */
  async githubFailed(key: string, nextAt: number): Promise<void> {
    await this.db.run('UPDATE jobs SET github_attempts = github_attempts + 1, github_next_at = ?, report_owner = NULL, report_until = NULL WHERE key = ?', [nextAt, key]);
  }

  /** GitHub kept refusing this job's report: given up (reported = 2), never tried again. */
  async abandonReport(key: string): Promise<void> {
    await this.db.run('UPDATE jobs SET reported = 2, report_owner = NULL, report_until = NULL, updated_at = ? WHERE key = ?', [this.now(), key]);
  }

  async markReported(key: string): Promise<void> {
    await this.db.run('UPDATE jobs SET reported = 1, report_owner = NULL, report_until = NULL, updated_at = ? WHERE key = ?', [this.now(), key]);
  }

  async setCheckRun(key: string, id: number): Promise<void> {
    await this.db.run('UPDATE jobs SET check_run_id = ?, updated_at = ? WHERE key = ?', [id, this.now(), key]);
  }

  /**
   * Retention: the logs of finished, reported jobs older than `logsMs` are dropped (the result and
   * the step table stay), the jobs themselves after `jobsMs`, with the deliveries no job names any
   * more; quota usage older than 13 months goes. Then, while the database holds more than `maxBytes`,
   * the oldest finished jobs' logs and then the jobs go, 200 at a time. Never touches a job that
   * is not finished or whose report GitHub has not taken (reported = 0).
   */
  async prune(p: RetentionPolicy): Promise<PruneCounts> {
    const now = this.now();
    const done = `state IN ('completed', 'failed', 'cancelled') AND reported != 0`;
    const orphan = 'processed = 1 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.delivery_guid = deliveries.guid)';
    const counts: PruneCounts = { logs: 0, jobs: 0, deliveries: 0, usage: 0, bytesBefore: await this.db.bytes(), bytesAfter: 0 };
    await this.db.tx(async (t) => {
      counts.logs += await t.run(`UPDATE jobs SET log = NULL WHERE log IS NOT NULL AND ${done} AND updated_at < ?`, [now - p.logsMs]);
      counts.jobs += await t.run(`DELETE FROM jobs WHERE ${done} AND updated_at < ?`, [now - p.jobsMs]);
      counts.deliveries += await t.run(`DELETE FROM deliveries WHERE ${orphan} AND received_at < ?`, [now - p.jobsMs]);
      const d = new Date(now);
      const oldest = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 13, 1)).toISOString();
      counts.usage += await t.run("DELETE FROM usage WHERE (period LIKE 'day:%' AND substr(period, 5) < ?) OR (period LIKE 'month:%' AND substr(period, 7) < ?)", [oldest.slice(0, 10), oldest.slice(0, 7)]);
    });
    if (p.maxBytes !== undefined) {
      for (let rounds = 0; (await this.db.bytes()) > p.maxBytes && rounds < 10_000; rounds++) {
        const logs = await this.db.run(`UPDATE jobs SET log = NULL WHERE key IN (SELECT key FROM jobs WHERE log IS NOT NULL AND ${done} ORDER BY updated_at LIMIT 200)`);
        counts.logs += logs;
        if (logs) continue;
        // A job is its key's replay guard too: none younger than MIN_DELIVERY_KEEP_MS goes, whatever the size.
        const jobs = await this.db.run(`DELETE FROM jobs WHERE key IN (SELECT key FROM jobs WHERE ${done} AND updated_at < ? ORDER BY updated_at LIMIT 200)`, [now - MIN_DELIVERY_KEEP_MS]);
        counts.jobs += jobs;
        if (!jobs) break;
      }
      counts.deliveries += await this.db.run(`DELETE FROM deliveries WHERE ${orphan} AND received_at < ?`, [now - MIN_DELIVERY_KEEP_MS]);
    }
    counts.bytesAfter = await this.db.bytes();
    return counts;
  }

  protected row(r: RawRow | undefined): JobRow<S, R> | undefined {
    return r && decode<S, R>(r);
  }

  protected rows(rs: RawRow[]): JobRow<S, R>[] {
    return rs.map((r) => decode<S, R>(r));
  }

  bytes(): Promise<number> {
    return this.db.bytes();
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** Running counts per repository and organisation (scopes in lower case), kept in the transaction that moves a job in or out of `running`. */
export async function addRunning(t: SqlDb, repository: string, delta: number): Promise<void> {
  for (const scope of runningScopes(repository)) {
    await t.run('INSERT INTO running_counts (scope, n) VALUES (?, 0) ON CONFLICT (scope) DO NOTHING', [scope]);
    await t.run('UPDATE running_counts SET n = n + ? WHERE scope = ?', [delta, scope]);
  }
}

/** The counter scopes of a repository, in the order every transaction locks them (no deadlock between hosts). */
export function runningScopes(repository: string): [string, string] {
  const r = repository.toLowerCase();
  return [`org:${r.split('/')[0]}`, `repo:${r}`];
}

export interface RetentionPolicy {
  /** Finished jobs (and their deliveries) are kept this long. @default 90 days */
  jobsMs: number;
  /** Their logs are kept this long. @default 30 days */
  logsMs: number;
  /** Past this size the oldest finished jobs' logs, then the jobs, go first. */
  maxBytes?: number;
}

export interface PruneCounts {
  logs: number;
  jobs: number;
  deliveries: number;
  usage: number;
  bytesBefore: number;
  bytesAfter: number;
}

const DAY = 86_400_000;
export const DEFAULT_RETENTION: RetentionPolicy = { jobsMs: 90 * DAY, logsMs: 30 * DAY, maxBytes: 1024 ** 3 };
/**
 * A delivery is the replay guard of its GUID: GitHub redelivers for days (the reconciler reads the
 * last few days of deliveries), so none is removed younger than this, whatever the size.
 */
export const MIN_DELIVERY_KEEP_MS = 14 * DAY;
/** The shortest retention the server accepts: shorter would let a late redelivery run a job twice. */
export const MIN_JOB_RETENTION_MS = MIN_DELIVERY_KEEP_MS;

/** A row as the database holds it: spec and result are JSON text. */
export type RawRow = Omit<JobRow, 'spec' | 'result'> & { spec: string; result: string | null };

/**
 * The row with its spec and result parsed on first use, once: listing a long queue for the
 * scheduler parses nothing it does not read.
 */
export function decode<S, R>(r: RawRow): JobRow<S, R> {
  const parse = <T>(what: string, text: string): T => {
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new Error(`job ${r.key}: the stored ${what} is not JSON (${(e as Error).message})`);
    }
  };
  const row = { ...r } as unknown as JobRow<S, R>;
  let spec: { v: S } | undefined;
  let result: { v: R | null } | undefined;
  Object.defineProperty(row, 'spec', { enumerable: true, get: () => (spec ??= { v: parse<S>('spec', r.spec) }).v });
  Object.defineProperty(row, 'result', { enumerable: true, get: () => (result ??= { v: r.result === null ? null : parse<R>('result', r.result) }).v });
  return row;
}

/** Aliases are quoted: PostgreSQL folds unquoted names to lower case. */
export const COLUMNS = `key, delivery_guid AS "deliveryGuid", repository, installation_id AS "installationId", head_sha AS "headSha", spec, state,
  check_run_id AS "checkRunId", result, log, created_at AS "createdAt", updated_at AS "updatedAt", priority, started_at AS "startedAt",
  github_attempts AS "githubAttempts", github_next_at AS "githubNextAt", lease_owner AS "leaseOwner", lease_until AS "leaseUntil", attempt,
  report_batches AS "reportBatches"`;
const DELIVERY = 'guid, event, payload, received_at AS "receivedAt", processed';
