import { parseOptions } from './parse-options';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseDuration, parseSize, StockadeError } from '../common';
import { resolveHostConfig, resultsSettings } from '../host';
import { DEFAULT_RETENTION, MIN_JOB_RETENTION_MS, redactDatabaseUrl, type PruneCounts, type RetentionPolicy } from '../store';
import { openServerStore } from './server-store';
import { actionFetcher } from './remote-actions';

export const PRUNE_USAGE = `usage: stockade prune [--job-retention 90d] [--log-retention 30d] [--max-database-size 1g]
                      [--actions-unused-for 30d] [--state-dir DIR | --database postgres://…] [--json]
  Removes what retention has passed: finished jobs and their deliveries, their logs (sooner), quota
  usage past 13 months; past --max-database-size the oldest logs, then jobs, go first. Caches and
  artifacts of the results service by their own retention, fetched actions unused for the given time.
  Never a job that is not finished or whose report GitHub has not taken. serve does the same every hour.`;

export const PRUNE_OPTIONS = {
  'job-retention': { type: 'string' },
  'log-retention': { type: 'string' },
  'max-database-size': { type: 'string' },
  'actions-unused-for': { type: 'string' },
  'state-dir': { type: 'string' },
  database: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** The retention policy from its three settings (flags or config); shorter than MIN_JOB_RETENTION_MS is refused. */
export function retentionFrom(v: { 'job-retention'?: string; 'log-retention'?: string; 'max-database-size'?: string }): RetentionPolicy {
  const days = (flag: string, text: string | undefined, def: number, min: number) => {
    if (text === undefined) return def;
    const ms = parseDuration(text);
    if (ms === undefined || ms < min) throw new StockadeError('USAGE', `--${flag} '${text}' is not a duration of at least ${min / 86_400_000} days (like 90d)`);
    return ms;
  };
  const jobsMs = days('job-retention', v['job-retention'], DEFAULT_RETENTION.jobsMs, MIN_JOB_RETENTION_MS);
  const logsMs = days('log-retention', v['log-retention'], DEFAULT_RETENTION.logsMs, 86_400_000);
  const size = v['max-database-size'];
  const maxBytes = size === undefined ? DEFAULT_RETENTION.maxBytes : size === 'off' ? undefined : parseSize(size);
  if (size !== undefined && size !== 'off' && (maxBytes === undefined || maxBytes < 16 * 1024 ** 2)) throw new StockadeError('USAGE', `--max-database-size '${size}' is not a size of at least 16m (or off)`);
  return { jobsMs: Math.max(jobsMs, logsMs), logsMs, ...(maxBytes !== undefined ? { maxBytes } : {}) };
}

export function describePrune(c: PruneCounts): string {
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;
  return `${c.jobs} jobs, ${c.logs} logs, ${c.deliveries} deliveries, ${c.usage} usage rows; database ${mib(c.bytesBefore)} → ${mib(c.bytesAfter)}`;
}

/** `stockade prune`: the server's database, the results service's storage and the fetched actions. */
export async function pruneCommand(argv: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseOptions('prune', PRUNE_OPTIONS, argv);
  const policy = retentionFrom(values);
  const unused = values['actions-unused-for'] === undefined ? 30 * 86_400_000 : parseDuration(values['actions-unused-for']);
  if (unused === undefined) throw new StockadeError('USAGE', `--actions-unused-for '${values['actions-unused-for']}' is not a duration (like 30d)`);
  const host = resolveHostConfig(env);
  const stateDir = values['state-dir'] ?? join(host.stateDir, 'server');
  const database = values.database ?? env.STOCKADE_DATABASE;
  const db = database ? redactDatabaseUrl(database) : join(stateDir, 'stockade.db');
  const report: Record<string, unknown> = {};
  if (database || existsSync(db)) {
    const store = await openServerStore(database, stateDir);
    try {
      report.database = await store.prune(policy);
    } finally {
      await store.close();
    }
  }
  const results = existsSync(join(host.stateDir, 'results')) ? resultsSettings(host) : undefined;
  if (results) report.results = results.store.prune();
  report.actions = actionFetcher(host.stateDir).prune(unused).length;
  if (values.json) out.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    out.write(`database: ${report.database ? describePrune(report.database as PruneCounts) : `none at ${db}`}\n`);
    const r = report.results as { caches: number; artifacts: number; orphans: number } | undefined;
    out.write(`results: ${r ? `${r.caches} caches, ${r.artifacts} artifacts, ${r.orphans} orphaned blobs` : 'none'}\n`);
    out.write(`actions: ${report.actions as number} fetched actions unused for ${Math.round(unused / 86_400_000)} days\n`);
  }
  return 0;
}
