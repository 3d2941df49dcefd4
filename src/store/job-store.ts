import { migrate } from './migrations';
import Database from 'better-sqlite3';
import { QuotaStore } from './quota-store';

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
}

/** A job as a delivery plans it, before it is stored. */
export type NewJob<S = unknown> = Pick<JobRow<S>, 'key' | 'deliveryGuid' | 'repository' | 'installationId' | 'headSha' | 'spec'> & {
  /** Higher starts first within a repository. @default 0 */
  priority?: number;
};

/**
 * The durable queue: deliveries are stored before the webhook is answered, jobs
 * are keyed so a replay or a second delivery of the same job runs once, and every
 * state change is a checked transition in one SQLite transaction.
 */
export class JobStore<S = unknown, R = unknown> {
  private readonly db: Database.Database;
  readonly quotas: QuotaStore;

  constructor(path: string, private readonly now: () => number = Date.now) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    // The schema by numbered migrations (migrations.ts), never altered ad hoc.
    migrate(this.db, path);
    this.quotas = new QuotaStore(this.db, now);
  }

  /** Stores a delivery; false when this GUID was stored before (a replay). */
  addDelivery(guid: string, event: string, payload: string): boolean {
    const r = this.db.prepare('INSERT OR IGNORE INTO deliveries (guid, event, payload, received_at) VALUES (?, ?, ?, ?)').run(guid, event, payload, this.now());
    return r.changes === 1;
  }

  getDelivery(guid: string): DeliveryRow | undefined {
    const d = this.db.prepare('SELECT guid, event, payload, received_at AS receivedAt, processed FROM deliveries WHERE guid = ?').get(guid) as DeliveryRow | undefined;
    return d && { ...d, processed: !!d.processed };
  }

  hasDelivery(guid: string): boolean {
    return !!this.db.prepare('SELECT 1 FROM deliveries WHERE guid = ?').get(guid);
  }

  unprocessedDeliveries(limit = 100): DeliveryRow[] {
    return (this.db.prepare('SELECT guid, event, payload, received_at AS receivedAt, processed FROM deliveries WHERE processed = 0 ORDER BY received_at LIMIT ?').all(limit) as DeliveryRow[]).map((d) => ({ ...d, processed: !!d.processed }));
  }

  /** Marks a delivery handled and inserts the jobs it produced (each at most once), atomically. */
  processDelivery(guid: string, jobs: NewJob<S>[]): string[] {
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO jobs (key, delivery_guid, repository, installation_id, head_sha, spec, state, created_at, updated_at, priority)
       VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?)`,
    );
    const added: string[] = [];
    this.db.transaction(() => {
      const t = this.now();
      for (const j of jobs) if (insert.run(j.key, j.deliveryGuid, j.repository, j.installationId, j.headSha, JSON.stringify(j.spec), t, t, j.priority ?? 0).changes === 1) added.push(j.key);
      this.db.prepare('UPDATE deliveries SET processed = 1 WHERE guid = ?').run(guid);
    })();
    return added;
  }

  get(key: string): JobRow<S, R> | undefined {
    return this.row(this.db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE key = ?`).get(key) as RawRow | undefined);
  }

  /** A job whose key starts with `prefix` that has not finished (accepted, queued or running). */
  activeWithPrefix(prefix: string): JobRow<S, R> | undefined {
    return this.row(
      this.db
        .prepare(`SELECT ${COLUMNS} FROM jobs WHERE substr(key, 1, ?) = ? AND state IN ('accepted', 'queued', 'running') LIMIT 1`)
        .get(prefix.length, prefix) as RawRow | undefined,
    );
  }

  /** Accepted jobs whose next attempt at creating their check run is due. */
  dueAccepted(limit = 1000): JobRow<S, R>[] {
    return this.rows(this.db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE state = 'accepted' AND github_next_at <= ? ORDER BY created_at LIMIT ?`).all(this.now(), limit) as RawRow[]);
  }

  inState(state: JobState, limit = 1000): JobRow<S, R>[] {
    return this.rows(this.db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE state = ? ORDER BY created_at LIMIT ?`).all(state, limit) as RawRow[]);
  }

  /** An owner's jobs in the given states (owner names match case-insensitively and exactly), newest first. */
  byOwner(owner: string, states: readonly JobState[], limit = 100): JobRow<S, R>[] {
    return this.rows(this.db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE lower(substr(repository, 1, length(?) + 1)) = lower(?) || '/' AND state IN (${states.map(() => '?').join(', ')}) ORDER BY updated_at DESC LIMIT ?`).all(owner, owner, ...states, limit) as RawRow[]);
  }

    counts(): Record<JobState, number> {
    const out = { accepted: 0, queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 } as Record<JobState, number>;
    for (const r of this.db.prepare('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as Array<{ state: JobState; n: number }>) out[r.state] = r.n;
    return out;
  }

  /** Moves a job to `to` if it is in a state allowed to go there; returns false otherwise (someone else moved it). */
  transition(key: string, to: JobState, fields: Partial<Pick<JobRow<S, R>, 'checkRunId' | 'result' | 'log'>> = {}): boolean {
    const allowedFrom = (Object.keys(NEXT) as JobState[]).filter((s) => NEXT[s].includes(to));
    const sets = ['state = ?', 'updated_at = ?'];
    const args: unknown[] = [to, this.now()];
    if (to === 'running') (sets.push('started_at = ?'), args.push(this.now()));
    if (to === 'queued') (sets.push('admitted_at = ?'), args.push(this.now()));
    if (fields.checkRunId !== undefined) (sets.push('check_run_id = ?'), args.push(fields.checkRunId));
    if (fields.result !== undefined) (sets.push('result = ?'), args.push(fields.result === null ? null : JSON.stringify(fields.result)));
    if (fields.log !== undefined) (sets.push('log = ?'), args.push(fields.log));
    const r = this.db.prepare(`UPDATE jobs SET ${sets.join(', ')} WHERE key = ? AND state IN (${allowedFrom.map(() => '?').join(', ')})`).run(...args, key, ...allowedFrom);
    return r.changes === 1;
  }

  /** Jobs of an installation admitted (accepted → queued) since `since`. */
  admittedSince(installationId: number, since: number): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM jobs WHERE installation_id = ? AND admitted_at >= ?').get(installationId, since) as { n: number }).n;
  }

  /** When each repository's most recent job started. */
  lastStarted(): Map<string, number> {
    const rows = this.db.prepare('SELECT repository, MAX(started_at) AS t FROM jobs WHERE started_at IS NOT NULL GROUP BY repository').all() as Array<{ repository: string; t: number }>;
    return new Map(rows.map((r) => [r.repository, r.t]));
  }

  /** Terminal jobs whose final check run update has not reached GitHub yet. */
  /** Finished jobs whose report GitHub has not taken yet and whose next attempt is due. */
  unreported(limit = 100): JobRow<S, R>[] {
    return this.rows(this.db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE reported = 0 AND state IN ('completed', 'failed', 'cancelled') AND github_next_at <= ? ORDER BY github_next_at, updated_at LIMIT ?`).all(this.now(), limit) as RawRow[]);
  }

  /** A GitHub write for this job failed: the attempt is counted and the next one put off until `nextAt`. */
  githubFailed(key: string, nextAt: number): void {
    this.db.prepare('UPDATE jobs SET github_attempts = github_attempts + 1, github_next_at = ? WHERE key = ?').run(nextAt, key);
  }

  /** GitHub kept refusing this job's report: given up (reported = 2), never tried again. */
  abandonReport(key: string): void {
    this.db.prepare('UPDATE jobs SET reported = 2, updated_at = ? WHERE key = ?').run(this.now(), key);
  }

  markReported(key: string): void {
    this.db.prepare('UPDATE jobs SET reported = 1, updated_at = ? WHERE key = ?').run(this.now(), key);
  }

  setCheckRun(key: string, id: number): void {
    this.db.prepare('UPDATE jobs SET check_run_id = ?, updated_at = ? WHERE key = ?').run(id, this.now(), key);
  }

  /**
   * Retention: the logs of finished, reported jobs older than `logsMs` are dropped (the result and
   * the step table stay), the jobs themselves after `jobsMs`, with the deliveries no job names any
   * more; quota usage older than 13 months goes. Then, while the database holds more than `maxBytes`,
   * the oldest finished jobs' logs and then the jobs go, 200 at a time. Never touches a job that
   * is not finished or whose report GitHub has not taken (reported = 0).
   */
  prune(p: RetentionPolicy): PruneCounts {
    const now = this.now();
    const done = `state IN ('completed', 'failed', 'cancelled') AND reported != 0`;
    const counts: PruneCounts = { logs: 0, jobs: 0, deliveries: 0, usage: 0, bytesBefore: this.bytes(), bytesAfter: 0 };
    this.db.transaction(() => {
      counts.logs += this.db.prepare(`UPDATE jobs SET log = NULL WHERE log IS NOT NULL AND ${done} AND updated_at < ?`).run(now - p.logsMs).changes;
      counts.jobs += this.db.prepare(`DELETE FROM jobs WHERE ${done} AND updated_at < ?`).run(now - p.jobsMs).changes;
      counts.deliveries += this.db.prepare('DELETE FROM deliveries WHERE processed = 1 AND received_at < ? AND guid NOT IN (SELECT delivery_guid FROM jobs)').run(now - p.jobsMs).changes;
      const d = new Date(now);
      const oldest = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 13, 1)).toISOString();
      counts.usage += this.db.prepare("DELETE FROM usage WHERE (period LIKE 'day:%' AND substr(period, 5) < ?) OR (period LIKE 'month:%' AND substr(period, 7) < ?)").run(oldest.slice(0, 10), oldest.slice(0, 7)).changes;
    })();
    if (p.maxBytes !== undefined) {
      for (let rounds = 0; this.bytes() > p.maxBytes && rounds < 10_000; rounds++) {
        const logs = this.db.prepare(`UPDATE jobs SET log = NULL WHERE key IN (SELECT key FROM jobs WHERE log IS NOT NULL AND ${done} ORDER BY updated_at LIMIT 200)`).run().changes;
        counts.logs += logs;
        if (logs) continue;
        // A job is its key's replay guard too: none younger than MIN_DELIVERY_KEEP_MS goes, whatever the size.
        const jobs = this.db.prepare(`DELETE FROM jobs WHERE key IN (SELECT key FROM jobs WHERE ${done} AND updated_at < ? ORDER BY updated_at LIMIT 200)`).run(now - MIN_DELIVERY_KEEP_MS).changes;
        counts.jobs += jobs;
        if (!jobs) break;
      }
      counts.deliveries += this.db.prepare('DELETE FROM deliveries WHERE processed = 1 AND guid NOT IN (SELECT delivery_guid FROM jobs) AND received_at < ?').run(now - MIN_DELIVERY_KEEP_MS).changes;
    }
    counts.bytesAfter = this.bytes();
    return counts;
  }

  private row(r: RawRow | undefined): JobRow<S, R> | undefined {
    return r && decode<S, R>(r);
  }

  private rows(rs: RawRow[]): JobRow<S, R>[] {
    return rs.map((r) => decode<S, R>(r));
  }

  /** Bytes the database's live pages hold (free pages are reused, not counted). */
  bytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    return (pages - free) * (this.db.pragma('page_size', { simple: true }) as number);
  }

  close(): void {
    this.db.close();
  }
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

/** A row as SQLite holds it: spec and result are JSON text. */
type RawRow = Omit<JobRow, 'spec' | 'result'> & { spec: string; result: string | null };

/**
 * The row with its spec and result parsed on first use, once: listing a long queue for the
 * scheduler parses nothing it does not read.
 */
function decode<S, R>(r: RawRow): JobRow<S, R> {
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

const COLUMNS = `key, delivery_guid AS deliveryGuid, repository, installation_id AS installationId, head_sha AS headSha, spec, state,
  check_run_id AS checkRunId, result, log, created_at AS createdAt, updated_at AS updatedAt, priority, started_at AS startedAt,
  github_attempts AS githubAttempts, github_next_at AS githubNextAt`;
