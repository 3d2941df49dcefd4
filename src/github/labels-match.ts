/** Labels a Stockade runner answers to unless configured otherwise. */
export const DEFAULT_RUNNER_LABELS = ['self-hosted', 'linux', 'x64', 'stockade'];

/** A `workflow_job` is ours when every label it asks for is one of the runner's (case-insensitive, as GitHub matches). */
export function labelsMatch(jobLabels: unknown, runnerLabels: string[]): boolean {
  if (!Array.isArray(jobLabels) || jobLabels.length === 0) return false;
  const mine = new Set(runnerLabels.map((l) => l.toLowerCase()));
  return jobLabels.every((l) => typeof l === 'string' && mine.has(l.toLowerCase()));
}
