import type { ExitReason, ResourceLimits } from '../sandbox';

export type Conclusion = 'success' | 'failure' | 'cancelled' | 'skipped';

export interface StepResult {
  index: number;
  id?: string;
  name: string;
  /** Result after continue-on-error. */
  conclusion: Conclusion;
  /** Result before continue-on-error. */
  outcome: Conclusion;
  exitCode: number | null;
  reason: ExitReason | 'skipped' | 'error';
  durationMs: number;
  peakMemoryBytes: number;
  cpuSeconds: number;
  outputs: Record<string, string>;
  error?: string;
}

export interface JobResult {
  id: string;
  name: string;
  conclusion: Conclusion;
  outputs: Record<string, string>;
  steps: StepResult[];
  durationMs: number;
  summary: string;
  error?: string;
}

/** What is known about the repository and the event that triggered the run. */
export interface RunContext {
  repository: string;
  sha: string;
  ref: string;
  eventName: string;
  event: Record<string, unknown>;
  actor: string;
  runId: string;
  runNumber: number;
  runAttempt: number;
  workflowName: string;
  serverUrl: string;
}

export interface JobSettings {
  image: string;
  limits: ResourceLimits;
  readOnlyRoot: boolean;
  /** Directory copied into the job's workspace. */
  sourceDir: string;
}

export interface RunObserver {
  jobStarted?(jobId: string, name: string): void;
  stepStarted?(jobId: string, step: { index: number; name: string }): void;
  line?(jobId: string, stepName: string, stream: 'stdout' | 'stderr', text: string): void;
  stepFinished?(jobId: string, result: StepResult): void;
  jobFinished?(result: JobResult): void;
}
