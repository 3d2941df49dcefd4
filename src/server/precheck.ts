import { checkRunnable, findJobInstance, selectJobs, type JobSettings, type RunContext } from '../runner';
import type { JobRow } from '../store';
import { parseWorkflowText, workflowRunsFor, WORKFLOW_LIMITS, type Diagnostic } from '../workflow';
import type { AppSpec, JobSpec, WorkflowJobSpec } from './plan-delivery';
import type { GitHubPort } from './ports';

/** At most this many workflow files of `.stockade/workflows` are checked before a job is queued. */
const MAX_PRECHECKED_FILES = 50;

/**
 * What the sandbox will refuse, found before the job takes a slot: the workflow is fetched
 * through the contents API (links are never followed: a `symlink` entry is refused by name),
 * parsed, and checked as runnable. Diagnostics with file, line and column when the job cannot
 * run; [] when it can or when it cannot be told yet (a matrix built from needs outputs, say):
 * the job is checked again when it runs.
 */
export async function precheck(github: GitHubPort, row: JobRow, spec: JobSpec, settings: Pick<JobSettings, 'actionCacheDir' | 'imagePolicy' | 'images'>, payload: Record<string, unknown>): Promise<Diagnostic[]> {
  return spec.mode === 'app' ? precheckApp(github, row, spec, settings, payload) : precheckWorkflowJob(github, row, spec, settings);
}

async function precheckWorkflowJob(github: GitHubPort, row: JobRow, spec: WorkflowJobSpec, settings: Pick<JobSettings, 'actionCacheDir' | 'imagePolicy' | 'images'>): Promise<Diagnostic[]> {
  const run = await github.getWorkflowRun(row.installationId, spec.owner, spec.repo, spec.runId);
  const parsed = parseWorkflowText(run.path, await github.getFileText(row.installationId, spec.owner, spec.repo, run.path, row.headSha));
  if (!parsed.value) return parsed.diagnostics.filter((d) => d.severity === 'error');
  const ctx: RunContext = { repository: row.repository, sha: row.headSha, ref: '', eventName: run.event, event: {}, actor: run.actor, runId: String(spec.runId), runNumber: run.runNumber, runAttempt: spec.runAttempt, workflowName: parsed.value.name ?? run.path, serverUrl: 'https://github.com', secrets: {}, vars: {}, inputs: {}, debug: false };
  const instance = findJobInstance(parsed.value, spec.jobName, ctx);
  if ('error' in instance) return [];
  return checkRunnable(parsed.value, [instance.job], settings);
}

async function precheckApp(github: GitHubPort, row: JobRow, spec: AppSpec, settings: Pick<JobSettings, 'actionCacheDir' | 'imagePolicy' | 'images'>, payload: Record<string, unknown>): Promise<Diagnostic[]> {
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
