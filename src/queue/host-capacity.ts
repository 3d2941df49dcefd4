/**
 * Default number of concurrent jobs a host takes: one per core, and no more
 * than memory allows at the per-job memory limit (at least one).
 */
export function hostCapacity(cores: number, totalMemoryBytes: number, jobMemoryBytes: number): number {
  return Math.max(1, Math.min(cores, Math.floor(totalMemoryBytes / Math.max(1, jobMemoryBytes))));
}
