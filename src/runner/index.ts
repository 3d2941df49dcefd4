export type { Conclusion, JobResult, JobSettings, RunContext, RunObserver, StepResult, EgressSettings, EgressReport } from './types';
export { runJob, maskerFor, type JobDeps, type NeedsResult, type JobInstance } from './run-job';
export { runWorkflow, selectJobs, findJobInstance } from './run-workflow';
export { checkRunnable } from './check-runnable';
export { imageRefusal, DEFAULT_IMAGE_POLICY, type ImagePolicy } from './image-policy';
export { JOB_PATHS } from './job-paths';
export { hashWorkspaceFiles } from './hash-files';
export { parseRemoteUses } from './actions';
export { readWorkflowFiles, readWorkflowFile, MAX_WORKFLOW_FILES, type WorkflowFile } from './read-workflow-files';
