import type { ResourceLimits } from './step-spec';

export interface StepUsage {
  peakMemoryBytes: number;
  cpuSeconds: number;
  /** Processes the kernel killed for exceeding the memory limit. */
  oomKills: number;
  /** Forks refused at the process limit. */
  pidsLimitHits: number;
}

export interface AppliedLimits {
  /** The cgroup directories (for logs and the reaper). */
  paths: string[];
  usage(): StepUsage;
  remove(): Promise<void>;
}

/**
 * Applies a step's resource limits to its (initialized, not yet started) container
 * process and proves they are in force by reading them back; throws
 * LIMITS_NOT_ENFORCED otherwise, so the step never starts unlimited.
 */
export interface LimitEnforcer {
  readonly mode: 'v1' | 'v2';
  apply(stepName: string, pid: number, limits: ResourceLimits): Promise<AppliedLimits>;
  /** Removes step cgroups left by runner processes that are gone. */
  /** Removes step cgroups whose owner (and, given the cgroup's name, whose job) is gone. */
  reap(isAlive: (owner: string, name?: string) => boolean): Promise<string[]>;
}
