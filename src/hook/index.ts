export { parseHookInput, HOOK_INPUT_LIMITS, type HookInput, type HookContainer, type MountVolume, type ScriptStepArgs, type HookCommand } from './hook-input';
export { planJobContainer, resolveJobImage, RUNNER_TARGETS, type JobContainerPlan, type PlannedMount, type PlanResult, type PlanOptions } from './job-plan';
export { HookJobs, type HookJobsOptions, type HookResult } from './hook-jobs';
export { startHookBroker, DEFAULT_HOOK_SOCKET, BROKER_LIMITS, type BrokerOptions } from './broker';
export { checkRunnerMounts, checkRunnerReads, hostPathOf, FILE_COMMAND_VARS } from './runner-dirs';
export { githubEgressNames } from './github-egress';
