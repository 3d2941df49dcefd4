import type { JobStatus } from '../workflow';
import { JOB_PATHS, refName } from './job-paths';
import type { Conclusion, RunContext } from './types';

export interface NeedsResult {
  result: Conclusion;
  outputs: Record<string, string>;
}

/** Contexts every expression of a job can see (steps/env/job are added per step). */
export function baseContexts(ctx: RunContext, jobId: string, needs: Record<string, NeedsResult>): Record<string, unknown> {
  const [owner] = ctx.repository.split('/');
  return {
    github: {
      repository: ctx.repository,
      repository_owner: owner,
      sha: ctx.sha,
      ref: ctx.ref,
      ref_name: refName(ctx.ref),
      event_name: ctx.eventName,
      event: ctx.event,
      actor: ctx.actor,
      run_id: ctx.runId,
      run_number: String(ctx.runNumber),
      run_attempt: String(ctx.runAttempt),
      workflow: ctx.workflowName,
      job: jobId,
      workspace: JOB_PATHS.workspace,
      server_url: ctx.serverUrl,
    },
    needs,
    runner: { os: 'Linux', arch: 'X64', name: 'stockade', temp: JOB_PATHS.temp, tool_cache: JOB_PATHS.toolCache, environment: 'self-hosted' },
    secrets: {},
    vars: {},
    matrix: {},
    strategy: {},
    inputs: {},
  };
}

export function jobStatus(state: { failed: boolean }, signal?: AbortSignal): JobStatus {
  return { success: () => !state.failed && !signal?.aborted, failure: () => state.failed, cancelled: () => !!signal?.aborted };
}
