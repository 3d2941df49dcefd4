/** How GitHub writes that keep failing are retried (a repository archived, the App uninstalled, GitHub down). */
export interface BackoffPolicy {
  /** First delay. @default 5 s */
  initialMs: number;
  /** Longest delay. @default 10 min */
  maxMs: number;
  /** After this long since the job finished (or was accepted), the write is given up. @default 6 h */
  giveUpMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 5_000, maxMs: 600_000, giveUpMs: 6 * 3600_000 };

/**
 * What to do after the `attempts`-th failure of a write first tried at `since`: try again at
 * `retryAt` (the delay doubles from `initialMs` up to `maxMs`), or give up once `giveUpMs` has
 * passed. Invariant: the delay never shrinks as attempts grow, and a write is never tried
 * after its give-up time, so one repository's refusals cost a bounded number of requests.
 */
export function nextAttempt(attempts: number, since: number, now: number, p: BackoffPolicy = DEFAULT_BACKOFF): { retryAt: number } | { giveUp: true } {
  if (now - since >= p.giveUpMs) return { giveUp: true };
  const delay = Math.min(p.maxMs, p.initialMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
  const retryAt = now + delay;
  return retryAt - since > p.giveUpMs ? { retryAt: since + p.giveUpMs } : { retryAt };
}
