import { labelsMatch } from '../github';
import type { JobReport } from '../github';
import type { JobRow, JobStore, NewJob } from '../store';

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
  /** A re-run asked for through a check run: runs without secrets, whatever the run's head. */
  untrusted?: boolean;
}

/** App mode: the workflows under `.stockade/workflows/` for one event at one commit (one check run). */
export interface AppSpec {
  mode: 'app';
  owner: string;
  repo: string;
  /** The event the workflows' `on:` is matched against (check_suite runs as push). */
  event: string;
  /** Shown in the check run name. */
  jobName: string;
  /** The head repository is a fork: no secrets. */
  fromFork: boolean;
  ref: string;
}

export type JobSpec = WorkflowJobSpec | AppSpec;

export type RunnerMode = 'workflow_job' | 'app';

/** Start order within a repository (higher first), from the server's configuration. */
export interface Priorities {
  /** @default 10 */
  defaultBranchPush: number;
  /** @default 0 */
  push: number;
  /** @default 0 */
  pullRequest: number;
  /** @default 0 */
  workflowJob: number;
}

export const DEFAULT_PRIORITIES: Priorities = { defaultBranchPush: 10, push: 0, pullRequest: 0, workflowJob: 0 };

/** Jobs are planned in the store's own shape (pushes to the default branch get priority 10 before configuration). */
export type PlannedJob = NewJob<JobSpec>;
/** A stored job as the server reads it: its spec and report as values. */
export type ServerJob = JobRow<JobSpec, JobReport>;
/** The job store with the server's spec and report types. */
export type ServerStore = JobStore<JobSpec, JobReport>;

type Obj = Record<string, unknown>;

/**
 * Which jobs a delivery asks this runner to run: a queued `workflow_job` whose
 * labels are all in the runner's set. The key (repository, job id, attempt) makes
 * the same job from two deliveries one job.
 */
export function planDelivery(guid: string, event: string, payload: Obj, labels: string[], modes: ReadonlySet<RunnerMode> = new Set(['workflow_job', 'app']), priorities: Priorities = DEFAULT_PRIORITIES): { jobs: PlannedJob[]; reason: string } {
  const plan =
    event === 'workflow_job'
      ? modes.has('workflow_job')
        ? planWorkflowJob(guid, payload, labels)
        : { jobs: [], reason: 'workflow_job mode is off' }
      : ['push', 'pull_request', 'check_suite'].includes(event)
        ? modes.has('app')
          ? planApp(guid, event, payload)
          : { jobs: [], reason: 'app mode is off' }
        : { jobs: [], reason: `event ${event} starts no job` };
  for (const j of plan.jobs) {
    const spec = j.spec;
    j.priority =
      spec.mode === 'workflow_job' ? priorities.workflowJob : spec.event === 'push' ? (j.priority === 10 ? priorities.defaultBranchPush : priorities.push) : priorities.pullRequest;
  }
  return plan;
}

function planWorkflowJob(guid: string, payload: Obj, labels: string[]): { jobs: PlannedJob[]; reason: string } {
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
    jobs: [{ key: `${fullName}/workflow_job/${job.id}/${attempt}`, deliveryGuid: guid, repository: fullName, installationId: installation.id, headSha: String(job.head_sha ?? ''), spec }],
    reason: 'queued job for this runner',
  };
}

const SHA = /^[0-9a-f]{40}$/;

/**
 * The head repository of a change is the base repository itself: both known, same id when
 * both carry one, same full name (GitHub's names are case-insensitive). A head repository
 * that is missing or null (GitHub reports null once a fork is deleted) is not.
 */
export function sameRepository(head: unknown, base: unknown): boolean {
  if (!head || typeof head !== 'object' || !base || typeof base !== 'object') return false;
  const h = head as Obj;
  const b = base as Obj;
  if (typeof h.id === 'number' && typeof b.id === 'number' && h.id !== b.id) return false;
  const hn = typeof h.full_name === 'string' ? h.full_name : undefined;
  const bn = typeof b.full_name === 'string' ? b.full_name : undefined;
  if (hn !== undefined && bn !== undefined) return hn.toLowerCase() === bn.toLowerCase();
  return typeof h.id === 'number' && typeof b.id === 'number';
}

/**
 * App mode: push, pull_request (opened, synchronize, reopened) and check_suite
 * (requested, rerequested) run `.stockade/workflows/` at the head commit. The key
 * makes a redelivery of the same event one job; a rerequest is a new one.
 */
function planApp(guid: string, event: string, payload: Obj): { jobs: PlannedJob[]; reason: string } {
  const repo = (payload.repository ?? {}) as Obj;
  const installation = (payload.installation ?? {}) as Obj;
  const fullName = String(repo.full_name ?? '');
  const [owner, name] = fullName.split('/');
  if (!owner || !name || typeof installation.id !== 'number') return { jobs: [], reason: `${event} payload lacks repository or installation` };
  let sha = '';
  let key = '';
  let ref = '';
  let fromFork = false;
  let runEvent = event;
  if (event === 'push') {
    sha = String(payload.after ?? '');
    ref = String(payload.ref ?? '');
    if (payload.deleted === true || /^0+$/.test(sha)) return { jobs: [], reason: 'a deleted ref runs nothing' };
    key = `${fullName}/app/push/${ref}/${sha}`;
  } else if (event === 'pull_request') {
    const action = String(payload.action ?? '');
    if (!['opened', 'synchronize', 'reopened'].includes(action)) return { jobs: [], reason: `pull_request ${action} runs nothing` };
    const pr = (payload.pull_request ?? {}) as Obj;
    const head = (pr.head ?? {}) as Obj;
    sha = String(head.sha ?? '');
    ref = `refs/pull/${String(payload.number ?? pr.number ?? '')}/merge`;
    fromFork = !sameRepository(head.repo, repo);
    key = `${fullName}/app/pull_request/${String(payload.number ?? pr.number)}/${sha}/${action}`;
  } else {
    const action = String(payload.action ?? '');
    if (!['requested', 'rerequested'].includes(action)) return { jobs: [], reason: `check_suite ${action} runs nothing` };
    const suite = (payload.check_suite ?? {}) as Obj;
    sha = String(suite.head_sha ?? '');
    ref = `refs/heads/${String(suite.head_branch ?? '')}`;
    runEvent = 'push';
    // Fails closed: a re-request can come from anyone with access to a pull request, and a
    // suite with no head branch (GitHub gives null for forks) or a pull request from another
    // repository is not known to be this repository's own code.
    const prs = Array.isArray(suite.pull_requests) ? (suite.pull_requests as Obj[]) : [];
    fromFork = action === 'rerequested' || typeof suite.head_branch !== 'string' || suite.head_branch === '' || prs.some((p) => !sameRepository(((p.head ?? {}) as Obj).repo, repo));
    key = action === 'rerequested' ? `${fullName}/app/check_suite/${sha}/rerequested/${guid}` : `${fullName}/app/push/${ref}/${sha}`;
  }
  if (!SHA.test(sha)) return { jobs: [], reason: `${event} payload has no head commit` };
  const spec: AppSpec = { mode: 'app', owner, repo: name, event: runEvent, jobName: runEvent, fromFork, ref };
  const priority = runEvent === 'push' && ref === `refs/heads/${String(repo.default_branch ?? 'main')}` ? 10 : 0;
  return { jobs: [{ priority, key, deliveryGuid: guid, repository: fullName, installationId: installation.id, headSha: sha, spec }], reason: `${event}: .stockade/workflows at ${sha.slice(0, 12)}` };
}
