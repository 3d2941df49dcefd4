import type { SqlDb } from './sql';

/** States an accepted job walks through; every one ends in a terminal state with a reported check run. */
export type JobState = 'accepted' | 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

export const NEXT: Record<JobState, JobState[]> = {
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

/** When each repository's most recent job started (the round-robin of pick-next among equals). */
export async function lastStarted(db: SqlDb): Promise<Map<string, number>> {
  const rows = await db.all<{ repository: string; t: number }>('SELECT repository, MAX(started_at) AS t FROM jobs WHERE started_at IS NOT NULL GROUP BY repository');
  return new Map(rows.map((r) => [r.repository, r.t]));
}
