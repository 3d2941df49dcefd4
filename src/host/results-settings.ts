import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { StockadeError, parseSize } from '../common';
import { DEFAULT_RESULTS_LIMITS, ResultsStore, type ResultsLimits } from '../results';
import type { ResultsSettings } from '../runner';
import type { HostConfig } from './host-config';

export interface ResultsOptions {
  /** `off` disables the service; otherwise the directory caches and artifacts live in. @default <stateDir>/results */
  dir?: string;
  /** Per-repository cache quota (`10g`). */
  cacheQuota?: string;
  /** Per-repository artifact quota (`10g`). */
  artifactQuota?: string;
}

/**
 * The results service's storage on this host (caches and artifacts, per repository), opened
 * and pruned of what its retention has passed. undefined when the operator turned it off.
 */
export function resultsSettings(host: Pick<HostConfig, 'stateDir' | 'packageRoot'>, o: ResultsOptions = {}): ResultsSettings | undefined {
  if (o.dir === 'off') return undefined;
  const sidecarScript = join(host.packageRoot, 'dist/sidecar.js');
  if (!existsSync(sidecarScript)) throw new StockadeError('HOST_NOT_READY', `${sidecarScript} is missing`, { hint: 'run `npm run build`' });
  const limits: ResultsLimits = {
    ...DEFAULT_RESULTS_LIMITS,
    ...(o.cacheQuota ? { cacheQuotaBytes: size('cache quota', o.cacheQuota) } : {}),
    ...(o.artifactQuota ? { artifactQuotaBytes: size('artifact quota', o.artifactQuota) } : {}),
  };
  const store = new ResultsStore(o.dir ?? join(host.stateDir, 'results'), limits);
  store.prune();
  return { store, socketDir: join(host.stateDir, 'results-sockets'), sidecarScript };
}

function size(what: string, text: string): number {
  const n = parseSize(text);
  if (n === undefined || n < 1024 ** 2) throw new StockadeError('USAGE', `${what} '${text}' is not a size of at least 1m (like 10g)`);
  return n;
}
