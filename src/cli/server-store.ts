import { join } from 'node:path';
import { StockadeError, type Logger } from '../common';
import type { JobReport } from '../github';
import type { JobSpec, ServerStore } from '../server';
import { JobStore, isPostgresUrl, redactDatabaseUrl } from '../store';

/** The queue's store: PostgreSQL for a `postgres://` URL (a fleet), SQLite in the state directory otherwise. */
export async function openServerStore(database: string | undefined, stateDir: string, logger?: Logger): Promise<ServerStore> {
  if (database && !isPostgresUrl(database)) throw new StockadeError('USAGE', `--database '${redactDatabaseUrl(database)}' is not a postgres:// or postgresql:// URL (leave it unset for SQLite in the state directory)`);
  try {
    return await JobStore.open<JobSpec, JobReport>(database ?? join(stateDir, 'stockade.db'), { logger });
  } catch (e) {
    if (e instanceof StockadeError) throw e;
    throw new StockadeError('CONFIG_INVALID', `the database ${database ? redactDatabaseUrl(database) : join(stateDir, 'stockade.db')} could not be opened: ${(e as Error).message}`);
  }
}
