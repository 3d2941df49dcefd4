/** Budgets that bound the cost of reading untrusted workflow files. */
export const WORKFLOW_LIMITS = {
  /** Largest workflow file accepted, in bytes (GitHub's own limit is 512 KiB per file). */
  maxFileBytes: 512 * 1024,
  /** YAML aliases per document: stops billion-laughs expansion. */
  maxAliases: 100,
  maxJobs: 256,
  /** GitHub allows 1,000 steps per job. */
  maxStepsPerJob: 1000,
  /** Longest `timeout-minutes` accepted: GitHub's maximum for self-hosted runners is 5 days. */
  maxTimeoutMinutes: 7200,
  /** GitHub's default job timeout. */
  defaultJobTimeoutMinutes: 360,
} as const;
