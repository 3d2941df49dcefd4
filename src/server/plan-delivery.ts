import { labelsMatch } from '../github';

/** What a stored job asks the executor to do. */
export interface WorkflowJobSpec {
  mode: 'workflow_job';
  owner: string;
  repo: string;
  runId: number;
  jobId: number;
  runAttempt: number;
  /** The job's name as GitHub shows it (matrix jobs: `build (18, ubuntu)`). */
  jobName: string;
  workflowName: string;
}

export interface PlannedJob {
  key: string;
  deliveryGuid: string;
  repository: string;
  installationId: number;
  headSha: string;
  spec: string;
}

type Obj = Record<string, unknown>;

/**
 * Which jobs a delivery asks this runner to run: a queued `workflow_job` whose
 * labels are all in the runner's set. The key (repository, job id, attempt) makes
 * the same job from two deliveries one job.
 */
export function planDelivery(guid: string, event: string, payload: Obj, labels: string[]): { jobs: PlannedJob[]; reason: string } {
  if (event !== 'workflow_job') return { jobs: [], reason: `event ${event} does not start jobs in self-hosted runner mode` };
  if (payload.action !== 'queued') return { jobs: [], reason: `workflow_job ${String(payload.action)} is not queued` };
  const job = (payload.workflow_job ?? {}) as Obj;
  const repo = (payload.repository ?? {}) as Obj;
  const installation = (payload.installation ?? {}) as Obj;
  if (!labelsMatch(job.labels, labels)) return { jobs: [], reason: `labels ${JSON.stringify(job.labels)} are not all in ${labels.join(', ')}` };
  const fullName = String(repo.full_name ?? '');
  const [owner, name] = fullName.split('/');
  if (!owner || !name || typeof job.id !== 'number' || typeof job.run_id !== 'number' || typeof installation.id !== 'number') {
    return { jobs: [], reason: 'workflow_job payload lacks repository, job, run or installation ids' };
  }
  const attempt = typeof job.run_attempt === 'number' ? job.run_attempt : 1;
  const spec: WorkflowJobSpec = { mode: 'workflow_job', owner, repo: name, runId: job.run_id, jobId: job.id, runAttempt: attempt, jobName: String(job.name ?? ''), workflowName: String(job.workflow_name ?? '') };
  return {
    jobs: [{ key: `${fullName}/workflow_job/${job.id}/${attempt}`, deliveryGuid: guid, repository: fullName, installationId: installation.id, headSha: String(job.head_sha ?? ''), spec: JSON.stringify(spec) }],
    reason: 'queued job for this runner',
  };
}
