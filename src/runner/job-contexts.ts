import type { JobStatus } from '../workflow';
import { JOB_PATHS, refName } from './job-paths';
import type { Conclusion, RunContext } from './types';

export interface NeedsResult {
  result: Conclusion;
  outputs: Record<string, string>;
}

/** Contexts every expression of a job can see (steps/env/job are added per step). */
export interface InstanceFacts {
  matrix: Record<string, unknown>;
  strategy: Record<string, unknown>;
}

export function baseContexts(ctx: RunContext, jobId: string, needs: Record<string, NeedsResult>, instance: InstanceFacts = { matrix: {}, strategy: {} }): Record<string, unknown> {
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
      api_url: ctx.serverUrl === 'https://github.com' ? 'https://api.github.com' : `${ctx.serverUrl}/api/v3`,
      graphql_url: ctx.serverUrl === 'https://github.com' ? 'https://api.github.com/graphql' : `${ctx.serverUrl}/api/graphql`,
      ref_type: ctx.ref.startsWith('refs/tags/') ? 'tag' : 'branch',
      head_ref: String(((ctx.event.pull_request as Record<string, unknown> | undefined)?.head as Record<string, unknown> | undefined)?.ref ?? ''),
      base_ref: String(((ctx.event.pull_request as Record<string, unknown> | undefined)?.base as Record<string, unknown> | undefined)?.ref ?? ''),
      triggering_actor: ctx.actor,
      event_path: `${JOB_PATHS.temp}/_github_workflow/event.json`,
      action_path: '',
      action: '',
      token: ctx.secrets.GITHUB_TOKEN ?? '',
      retention_days: '90',
    },
    needs,
    runner: { os: 'Linux', arch: 'X64', name: 'stockade', temp: JOB_PATHS.temp, tool_cache: JOB_PATHS.toolCache, environment: 'self-hosted', debug: ctx.debug ? '1' : '' },
    secrets: ctx.secrets,
    vars: ctx.vars,
    matrix: instance.matrix,
    strategy: instance.strategy,
    inputs: ctx.inputs,
  };
}

export function jobStatus(state: { failed: boolean }, signal?: AbortSignal): JobStatus {
  return { success: () => !state.failed && !signal?.aborted, failure: () => state.failed, cancelled: () => !!signal?.aborted };
}
