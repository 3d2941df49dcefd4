export { parseHookInput, HOOK_INPUT_LIMITS, type HookInput, type HookContainer, type MountVolume, type ScriptStepArgs, type HookCommand } from './hook-input';
export { planJobContainer, resolveJobImage, RUNNER_TARGETS, type JobContainerPlan, type PlannedMount, type PlanResult, type PlanOptions } from './job-plan';
