/** A job waiting for a slot, as the scheduler sees it (queue/pick-next.ts, and the store's claim). */
export interface Waiting {
  key: string;
  repository: string;
  /** The organisation (installation owner). */
  org: string;
  /** Higher runs first among a repository's jobs (e.g. default-branch pushes before pull requests). @default 0 */
  priority: number;
  /** Arrival order. */
  createdAt: number;
}

export interface Running {
  repository: string;
  org: string;
}
