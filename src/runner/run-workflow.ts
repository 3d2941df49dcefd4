import { evaluateCondition, orderByNeeds, type Diagnostic, type JobModel, type WorkflowModel } from '../workflow';
import { runJob, type JobDeps } from './run-job';
import { baseContexts, type NeedsResult } from './job-contexts';
import type { JobResult, JobSettings, RunContext } from './types';

/** Actions this runner can honour offline; everything else is rejected before anything runs. */
const BUILTIN_ACTIONS = /^actions\/checkout@/;

/** Checks what the runner supports before anything runs (nothing is half-run). */
export function checkRunnable(wf: WorkflowModel, jobs: JobModel[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const job of jobs) {
    for (const step of job.steps) {
      if (step.uses && !BUILTIN_ACTIONS.test(step.uses)) {
        out.push({ ...step.pos, severity: 'error', message: `uses: ${step.uses} is not available offline; only actions/checkout is built in` });
      }
    }
  }
  return out;
}

/** The selected jobs and, transitively, the jobs they need, in needs order. */
export function selectJobs(wf: WorkflowModel, only?: string): JobModel[] | { error: string } {
  if (!only) return orderByNeeds(wf.jobs);
  const byId = new Map(wf.jobs.map((j) => [j.id, j]));
  if (!byId.has(only)) return { error: `job '${only}' not found; jobs are: ${wf.jobs.map((j) => j.id).join(', ')}` };
  const keep = new Set<string>();
  const add = (id: string) => {
    if (keep.has(id) || !byId.has(id)) return;
    keep.add(id);
    byId.get(id)!.needs.forEach(add);
  };
  add(only);
  return orderByNeeds(wf.jobs.filter((j) => keep.has(j.id)));
}

/** Runs jobs one after another in needs order; a job whose condition is false is skipped. */
export async function runWorkflow(deps: JobDeps, wf: WorkflowModel, jobs: JobModel[], ctx: RunContext, settings: JobSettings): Promise<JobResult[]> {
  const results = new Map<string, JobResult>();
  for (const job of jobs) {
    const needs: Record<string, NeedsResult> = {};
    for (const n of job.needs) {
      const r = results.get(n);
      needs[n] = { result: r?.conclusion ?? 'skipped', outputs: r?.outputs ?? {} };
    }
    const needResults = Object.values(needs).map((n) => n.result);
    const status = {
      success: () => needResults.every((r) => r === 'success') && !deps.signal?.aborted,
      failure: () => needResults.some((r) => r === 'failure'),
      cancelled: () => !!deps.signal?.aborted,
    };
    let run: boolean;
    try {
      run = evaluateCondition(job.if, baseContexts(ctx, job.id, needs), status);
    } catch (e) {
      results.set(job.id, skipped(job, 'failure', (e as Error).message));
      continue;
    }
    if (!run) {
      results.set(job.id, skipped(job, 'skipped'));
      deps.observer?.jobFinished?.(results.get(job.id)!);
      continue;
    }
    results.set(job.id, await runJob(deps, wf, job, ctx, settings, needs));
  }
  return [...results.values()];
}

function skipped(job: JobModel, conclusion: 'skipped' | 'failure', error?: string): JobResult {
  return { id: job.id, name: job.name ?? job.id, conclusion, outputs: {}, steps: [], durationMs: 0, summary: '', error };
}
