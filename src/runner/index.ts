export type { Conclusion, JobResult, JobSettings, RunContext, RunObserver, StepResult } from './types';
export { runJob, type JobDeps, type NeedsResult } from './run-job';
export { runWorkflow, selectJobs, checkRunnable } from './run-workflow';
export { JOB_PATHS } from './job-paths';
