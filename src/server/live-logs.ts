/**
 * The masked log lines of running jobs, in memory, for the job pages' live view (server-sent
 * events). Bounded: lines per job, bytes per line, watchers per job and in all; a finished job's
 * buffer goes once its watchers are told, and the stored log takes over.
 */
export interface LiveLogLimits {
  linesPerJob: number;
  bytesPerLine: number;
  watchersPerJob: number;
  watchers: number;
}

export const DEFAULT_LIVE_LOG_LIMITS: LiveLogLimits = { linesPerJob: 20_000, bytesPerLine: 8192, watchersPerJob: 20, watchers: 200 };

type Watcher = { line(text: string): void; end(): void };

interface Live {
  lines: string[];
  dropped: number;
  watchers: Set<Watcher>;
}

export class LiveLogs {
  private readonly jobs = new Map<string, Live>();
  private watching = 0;

  constructor(private readonly limits: LiveLogLimits = DEFAULT_LIVE_LOG_LIMITS) {}

  /** A job started: its buffer exists from now on (an empty page still waits for lines). */
  start(key: string): void {
    if (!this.jobs.has(key)) this.jobs.set(key, { lines: [], dropped: 0, watchers: new Set() });
  }

  append(key: string, text: string): void {
    const live = this.jobs.get(key);
    if (!live) return;
    const line = text.length > this.limits.bytesPerLine ? `${text.slice(0, this.limits.bytesPerLine)}…` : text;
    if (live.lines.length >= this.limits.linesPerJob) {
      live.dropped++;
      return;
    }
    live.lines.push(line);
    for (const w of live.watchers) w.line(line);
  }

  /** The job ended: watchers are told and the buffer goes. */
  finish(key: string): void {
    const live = this.jobs.get(key);
    if (!live) return;
    this.jobs.delete(key);
    for (const w of live.watchers) w.end();
    this.watching -= live.watchers.size;
  }

  isLive(key: string): boolean {
    return this.jobs.has(key);
  }

  /**
   * Replays the lines so far, then every new one, until the job ends or `unwatch` is called.
   * undefined: the job is not running, or the watcher limits are reached.
   */
  watch(key: string, w: Watcher): (() => void) | undefined {
    const live = this.jobs.get(key);
    if (!live || live.watchers.size >= this.limits.watchersPerJob || this.watching >= this.limits.watchers) return undefined;
    for (const l of live.lines) w.line(l);
    live.watchers.add(w);
    this.watching++;
    return () => {
      if (live.watchers.delete(w)) this.watching--;
    };
  }

  snapshot(key: string): { lines: string[]; dropped: number } | undefined {
    const live = this.jobs.get(key);
    return live && { lines: [...live.lines], dropped: live.dropped };
  }
}
