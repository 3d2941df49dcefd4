import type { ServerJob, ServerStore } from './plan-delivery';
import type { Logger } from '../common';
import { annotationBatches, completedFields, type JobReport } from '../github';
import { DEFAULT_BACKOFF, nextAttempt, type BackoffPolicy } from '../queue';
import { jobPageUrl } from './log-link';
import type { GitHubPort } from './ports';

/**
 * The check-run side of a job's life after it ran: the final report (with the annotation batches
 * past the first), a check run created completed for a job that never got one, and GitHub writes
 * that fail retried with backoff until the policy gives up.
 */
export interface CheckRunDeps {
  github: GitHubPort;
  store: ServerStore;
  logger: Logger;
  publicUrl: string;
  logKey: Buffer;
  backoff?: BackoffPolicy;
  /** Cancel GitHub's own copy of a workflow_job run once reported. */
  cancelGitHubRun?: boolean;
  /** Runner mode: GitHub's runner ran the job, and GitHub's run is the real one. */
  runnerMode: boolean;
  hostId: string;
  leaseMs: number;
}

export class CheckRuns {
  constructor(private readonly d: CheckRunDeps) {}

  /**
   * A GitHub write for a job failed (check-run creation since `since`, or its report since the job
   * finished): tried again after a backoff, or given up after the policy's time, logged as the
   * terminal state report-abandoned (after `onGiveUp`).
   */
  async writeFailed(row: ServerJob, e: unknown, what: string, since: number, onGiveUp?: () => Promise<unknown>): Promise<void> {
    const next = nextAttempt(row.githubAttempts + 1, since, Date.now(), this.d.backoff ?? DEFAULT_BACKOFF);
    const attempts = row.githubAttempts + 1;
    if ('giveUp' in next) {
      await onGiveUp?.();
      await this.d.store.abandonReport(row.key);
      this.d.logger.error({ err: e, job: row.key, attempts, state: 'report-abandoned' }, `${what}; given up`);
      return;
    }
    await this.d.store.githubFailed(row.key, next.retryAt);
    this.d.logger.error({ err: e, job: row.key, attempts, retryAt: new Date(next.retryAt).toISOString() }, `${what}; will retry`);
  }

  /**
   * The final check run update (and the remaining annotation batches); retried on the next pass
   * until GitHub takes it. The caller claimed the report (one host sends it); each batch GitHub
   * takes is recorded, so a host that resumes a report another host died in sends only the rest.
   */
  async report(row: ServerJob): Promise<void> {
    const spec = row.spec;
    const parsed = row.result;
    if (!parsed && row.checkRunId) return;
    const report = parsed ?? failedReport(row, 'no result');
    try {
      const gh = this.d.github;
      const fields = completedFields(report, jobPageUrl(this.d.publicUrl, this.d.logKey, row.key), new Date());
      let id = row.checkRunId;
      const name = `stockade: ${spec.jobName}`;
      // A host that died between creating the check run and saving its id: found again by its external id, never made twice.
      if (!id && row.githubAttempts + row.reportBatches > 0) id = (await gh.findCheckRun(row.installationId, spec.owner, spec.repo, row.headSha, name, row.key)) ?? null;
      if (id && row.reportBatches === 0) await gh.updateCheckRun(row.installationId, spec.owner, spec.repo, id, fields);
      else if (!id) {
        // Never got a check run (refused before queueing, or GitHub unreachable at accept time): created completed.
        id = await gh.createCheckRun(row.installationId, spec.owner, spec.repo, { name, head_sha: row.headSha, external_id: row.key, ...fields });
        await this.d.store.setCheckRun(row.key, id);
      }
      const checkRunId = id;
      await this.d.store.leases.reportProgress(row.key, Math.max(1, row.reportBatches));
      const batches = annotationBatches(report);
      for (let i = Math.max(1, row.reportBatches); i < batches.length; i++) {
        await gh.updateCheckRun(row.installationId, spec.owner, spec.repo, checkRunId, { output: { title: `${report.name}: ${report.conclusion}`, summary: 'annotations continued', annotations: batches[i]! } });
        await this.d.store.leases.reportProgress(row.key, i + 1);
      }
      await this.d.store.markReported(row.key);
      if (this.d.cancelGitHubRun && spec.mode === 'workflow_job' && !this.d.runnerMode) await gh.cancelWorkflowRun(row.installationId, spec.owner, spec.repo, spec.runId).catch((e: unknown) => this.d.logger.warn({ err: e }, 'could not cancel the GitHub run'));
    } catch (e) {
      await this.writeFailed(row, e, 'GitHub did not take the report', row.updatedAt);
    }
  }
}

/** The report of a job that ended without running (or was stopped): one error, as a failure. */
export function failedReport(row: ServerJob, error: string): JobReport {
  const spec = row.spec;
  return { name: spec.jobName, conclusion: 'failure', steps: [], stepSummary: '', log: [`##[error]${error}`], error, annotations: [{ level: 'error', message: error }] };
}
