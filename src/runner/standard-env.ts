import { JOB_PATHS, refName } from './job-paths';
import type { RunContext } from './types';

/** GitHub's default environment variables for a step. */
export function standardEnv(ctx: RunContext, jobId: string, actionId: string, files: Record<'env' | 'output' | 'path' | 'summary' | 'state', string>): Record<string, string> {
  const [owner = ""] = ctx.repository.split('/');
  return {
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: JOB_PATHS.workspace,
    GITHUB_SHA: ctx.sha,
    GITHUB_REF: ctx.ref,
    GITHUB_REF_NAME: refName(ctx.ref),
    GITHUB_REF_TYPE: ctx.ref.startsWith('refs/tags/') ? 'tag' : 'branch',
    GITHUB_REPOSITORY: ctx.repository,
    GITHUB_REPOSITORY_OWNER: owner,
    GITHUB_EVENT_NAME: ctx.eventName,
    GITHUB_EVENT_PATH: `${JOB_PATHS.temp}/_github_workflow/event.json`,
    GITHUB_JOB: jobId,
    GITHUB_ACTION: actionId,
    GITHUB_ACTOR: ctx.actor,
    GITHUB_RUN_ID: ctx.runId,
    GITHUB_RUN_NUMBER: String(ctx.runNumber),
    GITHUB_RUN_ATTEMPT: String(ctx.runAttempt),
    GITHUB_WORKFLOW: ctx.workflowName,
    GITHUB_SERVER_URL: ctx.serverUrl,
    GITHUB_API_URL: ctx.serverUrl === 'https://github.com' ? 'https://api.github.com' : `${ctx.serverUrl}/api/v3`,
    GITHUB_GRAPHQL_URL: ctx.serverUrl === 'https://github.com' ? 'https://api.github.com/graphql' : `${ctx.serverUrl}/api/graphql`,
    GITHUB_ENV: `${JOB_PATHS.temp}/${files.env}`,
    GITHUB_OUTPUT: `${JOB_PATHS.temp}/${files.output}`,
    GITHUB_PATH: `${JOB_PATHS.temp}/${files.path}`,
    GITHUB_STEP_SUMMARY: `${JOB_PATHS.temp}/${files.summary}`,
    GITHUB_STATE: `${JOB_PATHS.temp}/${files.state}`,
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    RUNNER_NAME: 'stockade',
    RUNNER_ENVIRONMENT: 'self-hosted',
    RUNNER_TEMP: JOB_PATHS.temp,
    RUNNER_TOOL_CACHE: JOB_PATHS.toolCache,
    HOME: JOB_PATHS.home,
  };
}
