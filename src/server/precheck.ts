import type { ServerJob } from './plan-delivery';
import { checkRunnable, findJobInstance, selectJobs, type JobSettings } from '../runner';
import type { Logger } from '../common';
import type { JobReport } from '../github';
import { invalid, workflowJobContext } from './execute-job';
import { parseWorkflowText, workflowRunsFor, WORKFLOW_LIMITS, type Diagnostic } from '../workflow';
import type { AppSpec, JobSpec, WorkflowJobSpec } from './plan-delivery';
import type { GitHubPort } from './ports';

/**
 * The report of a job the sandbox will refuse, made before it takes a slot (it completes at once
 * with the errors as annotations), or undefined when it may run. A workflow that cannot be fetched
 * now is checked again when the job runs.
 */
export async function refusedBeforeQueue(github: GitHubPort, row: ServerJob, spec: JobSpec, settings: Pick<JobSettings, 'actionCacheDir' | 'imagePolicy' | 'images' | 'actionSource' | 'actionPolicy'>, payload: Record<string, unknown>, logger: Logger): Promise<JobReport | undefined> {
  const problems = await precheck(github, row, spec, settings, payload).catch((e: unknown) => {
    logger.warn({ err: e, job: row.key }, 'the workflow could not be checked before queueing; it is checked when the job runs');
    return [];
  });
  if (!problems.length) return undefined;
  logger.info({ job: row.key, problems: problems.length }, 'refused before queueing: the workflow cannot run here');
  return invalid(spec.jobName, 'the workflow cannot run here', problems).report;
}

/** At most this many workflow files of `.stockade/workflows` are checked before a job is queued. */
const MAX_PRECHECKED_FILES = 50;

/**
 * What the sandbox will refuse, found before the job takes a slot: the workflow is fetched
 * through the contents API (links are never followed: a `symlink` entry is refused by name),
 * parsed, and checked as runnable. Diagnostics with file, line and column when the job cannot
 * run; [] when it can or when it cannot be told yet (a matrix built from needs outputs, say):
 * the job is checked again when it runs.
 */
export async function precheck(github: GitHubPort, row: ServerJob, spec: JobSpec, settings: Pick<JobSettings, 'actionCacheDir' | 'imagePolicy' | 'images' | 'actionSource' | 'actionPolicy'>, payload: Record<string, unknown>): Promise<Diagnostic[]> {
  return spec.mode === 'app' ? precheckApp(github, row, spec, settings, payload) : precheckWorkflowJob(github, row, spec, settings);
}

async function precheckWorkflowJob(github: GitHubPort, row: ServerJob, spec: WorkflowJobSpec, settings: Pick<JobSettings, 'actionCacheDir' | 'imagePolicy' | 'images' | 'actionSource' | 'actionPolicy'>): Promise<Diagnostic[]> {
  const run = await github.getWorkflowRun(row.installationId, spec.owner, spec.repo, spec.runId);
  const parsed = parseWorkflowText(run.path, await github.getFileText(row.installationId, spec.owner, spec.repo, run.path, row.headSha));
  if (!parsed.value) return parsed.diagnostics.filter((d) => d.severity === 'error');
  const instance = findJobInstance(parsed.value, spec.jobName, workflowJobContext(row, spec, run, parsed.value.name ?? run.path, {}));
  if ('error' in instance) return [];
  return checkRunnable(parsed.value, [instance.job], settings);
}

async function precheckApp(github: GitHubPort, row: ServerJob, spec: AppSpec, settings: Pick<JobSettings, 'actionCacheDir' | 'imagePolicy' | 'images' | 'actionSource' | 'actionPolicy'>, payload: Record<string, unknown>): Promise<Diagnostic[]> {
  const dir = '.stockade/workflows';
  const entries = (await github.listDirectory(row.installationId, spec.owner, spec.repo, dir, row.headSha)).filter((e) => /\.ya?ml$/.test(e.name)).slice(0, MAX_PRECHECKED_FILES);
  const out: Diagnostic[] = [];
  const at = (file: string, message: string): Diagnostic => ({ file, line: 1, column: 1, severity: 'error', message });
  for (const e of entries) {
    const file = `${dir}/${e.name}`;
    if (e.type !== 'file') {
      out.push(at(file, `cannot read the workflow: ${file} is a ${e.type === 'symlink' ? 'symbolic link; links are never followed' : `${e.type}, not a regular file`}`));
      continue;
    }
    if (e.size > WORKFLOW_LIMITS.maxFileBytes) {
      out.push(at(file, `cannot read the workflow: ${file} is ${e.size} bytes; the limit is ${WORKFLOW_LIMITS.maxFileBytes}`));
      continue;
    }
    const parsed = parseWorkflowText(file, await github.getFileText(row.installationId, spec.owner, spec.repo, file, row.headSha));
    out.push(...parsed.diagnostics.filter((d) => d.severity === 'error'));
    if (!parsed.value || !workflowRunsFor(parsed.value.on, spec.event, payload).runs) continue;
    const jobs = selectJobs(parsed.value);
    if ('error' in jobs) continue;
    out.push(...checkRunnable(parsed.value, jobs, settings));
  }
  return out;
}
