import { QuotaStore } from './quota-store';
import { SqliteDb } from './sqlite-db';
import { PostgresDb } from './postgres-db';
import type { SqlDb } from './sql';
import { Leases } from './leases';
import { addRunning, COLUMNS, decode, NEXT, type Fence, type JobRow, type JobState, type NewJob, type RawRow, type DeliveryRow } from './job-rows';
export { addRunning, runningScopes, COLUMNS, decode, TERMINAL_STATES, type DeliveryRow, type Fence, type JobRow, type JobState, type NewJob, type RawRow } from './job-rows';
import type { Logger } from '../common';

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

  /** How many jobs each repository has in each of the given states (one grouped count: /metrics reads it on every scrape). */
  async countsByRepository(states: readonly JobState[]): Promise<Array<{ repository: string; state: JobState; n: number }>> {
    const rows = await this.db.all<{ repository: string; state: JobState; n: number | string }>(`SELECT repository, state, COUNT(*) AS n FROM jobs WHERE state IN (${states.map(() => '?').join(', ')}) GROUP BY repository, state`, [...states]);
    return rows.map((r) => ({ repository: r.repository, state: r.state, n: Number(r.n) }));
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

  /** Finished jobs whose report GitHub has not taken yet, whose next attempt is due and that no host is sending. */
  async unreported(limit = 100): Promise<JobRow<S, R>[]> {
    const now = this.now();
    return this.rows(await this.db.all<RawRow>(`SELECT ${COLUMNS} FROM jobs WHERE reported = 0 AND state IN ('completed', 'failed', 'cancelled') AND github_next_at <= ? AND (report_until IS NULL OR report_until < ?) ORDER BY github_next_at, updated_at LIMIT ?`, [now, now, limit]));
  }

  /** A GitHub write for this job failed: the attempt is counted and the next one put off until `nextAt`. */
  async githubFailed(key: string, nextAt: number): Promise<void> {
    // The claim on its accept or report is released with it: the next attempt waits for the backoff, not for the claim to lapse.
    await this.db.run(
      `UPDATE jobs SET github_attempts = github_attempts + 1, github_next_at = ?, report_owner = NULL, report_until = NULL,
         lease_owner = CASE WHEN state = 'accepted' THEN NULL ELSE lease_owner END, lease_until = CASE WHEN state = 'accepted' THEN NULL ELSE lease_until END
       WHERE key = ?`,
      [nextAt, key],
    );
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

const DELIVERY = 'guid, event, payload, received_at AS "receivedAt", processed';
