import type { Running, Waiting } from '../common';

export type { Running, Waiting };

export interface SlotLimits {
  /** Concurrent jobs on this host. */
  host: number;
  /** Concurrent jobs of one repository; undefined: no limit of its own. */
  repository(repository: string): number | undefined;
  /** Concurrent jobs of one organisation; undefined: no limit of its own. */
  org(org: string): number | undefined;
}

/** When a repository's last job started (round-robin among repositories with as many running jobs). */
export type LastStarted = (repository: string) => number | undefined;

/**
 * The next job to start, or undefined when no slot may be used. Fair across
 * repositories: among the repositories with a waiting job and room under their
 * own and their organisation's limits, the one with the fewest running jobs goes
 * first (then its highest-priority, oldest job; ties by arrival). A repository
 * with 500 queued jobs therefore delays another repository's first job by at most
 * the one slot that frees next.
 */
export function pickNext(waiting: readonly Waiting[], running: readonly Running[], limits: SlotLimits, lastStarted: LastStarted = () => undefined): Waiting | undefined {
  if (running.length >= limits.host) return undefined;
  const byRepo = new Map<string, number>();
  const byOrg = new Map<string, number>();
  for (const r of running) {
    byRepo.set(r.repository, (byRepo.get(r.repository) ?? 0) + 1);
    byOrg.set(r.org, (byOrg.get(r.org) ?? 0) + 1);
  }
  const heads = new Map<string, Waiting>();
  for (const w of waiting) {
    const h = heads.get(w.repository);
    if (!h || w.priority > h.priority || (w.priority === h.priority && w.createdAt < h.createdAt)) heads.set(w.repository, w);
  }
  let best: Waiting | undefined;
  let bestRank: number[] = [];
  for (const [repo, w] of heads) {
    const n = byRepo.get(repo) ?? 0;
    const repoLimit = limits.repository(repo);
    const orgLimit = limits.org(w.org);
    if (repoLimit !== undefined && n >= repoLimit) continue;
    if (orgLimit !== undefined && (byOrg.get(w.org) ?? 0) >= orgLimit) continue;
    // Fewest running first; then the repository served longest ago (never: first); then priority; then arrival.
    const rank = [n, lastStarted(repo) ?? -Infinity, -w.priority, w.createdAt];
    if (!best || less(rank, bestRank)) {
      best = w;
      bestRank = rank;
    }
  }
  return best;
}

function less(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}
