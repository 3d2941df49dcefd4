import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../common';
import type { CheckConclusion, JobReport } from '../github';
import { checkRunnable, findJobInstance, runJob, type JobResult, type JobSettings, type RunContext } from '../runner';
import type { Sandbox } from '../sandbox';
import type { JobRow } from '../store';
import { formatDiagnostic, parseWorkflowText } from '../workflow';
import { extractTarball } from './extract-tarball';
import type { WorkflowJobSpec } from './plan-delivery';
import type { GitHubPort } from './ports';

/** Bytes of masked log kept per job for the log page. */
export const MAX_JOB_LOG_BYTES = 8 * 1024 * 1024;

export interface ExecuteDeps {
  github: GitHubPort;
  sandbox: Sandbox;
  logger: Logger;
  settings: Omit<JobSettings, 'sourceDir'>;
  workDir: string;
  /** Secrets of a repository (never used for jobs from forks). */
  secrets(repository: string): Record<string, string>;
  /** Called with a line of progress (throttled by the caller). */
  progress?(stepName: string): void;
  signal?: AbortSignal;
}

export interface Executed {
  report: JobReport;
  log: string;
}

function fail(name: string, error: string, log: string[] = []): Executed {
  return { report: { name, conclusion: 'failure', steps: [], stepSummary: '', log: [...log, `##[error]${error}`], error, annotations: [{ level: 'error', message: error }] }, log: [...log, error].join('\n') };
}

function conclusionOf(r: JobResult): CheckConclusion {
  if (r.conclusion === 'failure' && r.steps.some((s) => s.reason === 'timeout' && s.conclusion === 'failure')) return 'timed_out';
  return r.conclusion;
}

/** Runs the job a stored row describes (workflow_job mode) and returns what to report. Never throws. */
export async function executeJob(d: ExecuteDeps, row: JobRow): Promise<Executed> {
  const spec = JSON.parse(row.spec) as WorkflowJobSpec;
  const log = d.logger.child({ job: row.key });
  const dir = join(d.workDir, Buffer.from(row.key).toString('base64url').slice(0, 120));
  try {
    const run = await d.github.getWorkflowRun(row.installationId, spec.owner, spec.repo, spec.runId);
    const text = await d.github.getFileText(row.installationId, spec.owner, spec.repo, run.path, row.headSha);
    const parsed = parseWorkflowText(run.path, text);
    if (!parsed.value) return fail(spec.jobName, `the workflow is invalid:\n${parsed.diagnostics.map(formatDiagnostic).join('\n')}`);
    const wf = parsed.value;
    // GitHub never gives secrets to workflows from forks; neither does Stockade.
    const fork = run.fromFork;
    const ctx: RunContext = {
      repository: row.repository,
      sha: row.headSha,
      ref: '',
      eventName: run.event,
      event: {},
      actor: run.actor,
      runId: String(spec.runId),
      runNumber: run.runNumber,
      runAttempt: spec.runAttempt,
      workflowName: wf.name ?? run.path,
      serverUrl: 'https://github.com',
      secrets: fork ? {} : d.secrets(row.repository),
      vars: {},
      inputs: {},
      debug: false,
    };
    const instance = findJobInstance(wf, spec.jobName, ctx);
    if ('error' in instance) return fail(spec.jobName, instance.error);
    const problems = checkRunnable(wf, [instance.job], d.settings);
    if (problems.length) return fail(spec.jobName, problems.map(formatDiagnostic).join('\n'));
    await rm(dir, { recursive: true, force: true });
    await extractTarball(await d.github.downloadTarball(row.installationId, spec.owner, spec.repo, row.headSha), dir);
    const lines: string[] = [];
    let bytes = 0;
    const needs = Object.fromEntries(instance.job.needs.map((n) => [n, { result: 'success' as const, outputs: {} }]));
    const result = await runJob(
      {
        sandbox: d.sandbox,
        logger: log,
        signal: d.signal,
        observer: {
          stepStarted: (_j, s) => d.progress?.(s.name),
          line: (_j, step, _s, t) => {
            if (bytes > MAX_JOB_LOG_BYTES) return;
            const l = `${step} | ${t}`;
            bytes += l.length + 1;
            lines.push(bytes > MAX_JOB_LOG_BYTES ? '… (log cut here)' : l);
          },
        },
      },
      wf,
      instance,
      ctx,
      { ...d.settings, sourceDir: dir },
      needs,
    );
    const report: JobReport = {
      name: result.name,
      conclusion: conclusionOf(result),
      steps: result.steps.map((s) => ({ name: s.name, conclusion: s.conclusion, durationMs: s.durationMs, peakMemoryBytes: s.peakMemoryBytes, exitReason: s.reason === 'exit' ? `exit ${s.exitCode}` : s.reason })),
      stepSummary: result.summary,
      log: result.steps.flatMap((s) => s.log.map((l) => `${s.name} | ${l}`)),
      error: result.error,
      annotations: result.steps.flatMap((s) => s.annotations),
    };
    return { report, log: lines.join('\n') };
  } catch (e) {
    log.error({ err: e }, 'job could not run');
    return fail(spec.jobName, (e as Error).message);
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
