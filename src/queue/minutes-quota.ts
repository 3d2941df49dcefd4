/**
 * The minutes quotas: a job may start while neither its repository nor its organisation has used
 * up its job-minutes of the day or of the month (UTC). Pure: the limits and the usage come in through
 * a port, so the rule is table-tested without a database.
 */
export interface MinutesLimit {
  minutesPerDay?: number;
  minutesPerMonth?: number;
}

export interface MinutesUsed {
  dayMs: number;
  monthMs: number;
  /** When the counters reset (ISO, UTC), for the message. */
  dayResets: string;
  monthResets: string;
}

export interface MinutesPort {
  limit(scope: string): MinutesLimit;
  used(scope: string): MinutesUsed;
}

/**
 * The first used-up quota, repository before organisation, day before month, with the message the
 * check run shows; undefined when the job may start. Invariant: a scope without a limit never
 * refuses, and a limit refuses from the moment usage reaches it (not only past it).
 */
export function exhaustedMinutes(repository: string, port: MinutesPort): { scope: string; message: string } | undefined {
  for (const scope of [`repo:${repository}`, `org:${repository.split('/')[0]}`]) {
    const limit = port.limit(scope);
    const used = port.used(scope);
    if (limit.minutesPerDay !== undefined && used.dayMs >= limit.minutesPerDay * 60_000) {
      return { scope, message: `quota exhausted: ${scope} used ${(used.dayMs / 60_000).toFixed(1)} of ${limit.minutesPerDay} job-minutes per day; it resets at ${used.dayResets}` };
    }
    if (limit.minutesPerMonth !== undefined && used.monthMs >= limit.minutesPerMonth * 60_000) {
      return { scope, message: `quota exhausted: ${scope} used ${(used.monthMs / 60_000).toFixed(1)} of ${limit.minutesPerMonth} job-minutes per month; it resets at ${used.monthResets}` };
    }
  }
  return undefined;
}

/** The burst rule: an installation may have `perMinute` jobs admitted in the last minute; more wait, in order. */
export function burstAllows(admittedLastMinute: number, perMinute: number): boolean {
  return admittedLastMinute < perMinute;
}
