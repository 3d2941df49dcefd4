import PQueue from 'p-queue';
import { evaluateCondition, evaluateValue, expandMatrix, hasExpression, matrixJobName, orderByNeeds, type JobModel, type JobStatus, type WorkflowModel } from '../workflow';
import { runJob, maskerFor, type JobDeps, type JobInstance } from './run-job';
import { baseContexts, type NeedsResult } from './job-contexts';
import type { Conclusion, JobResult, JobSettings, RunContext } from './types';
import { runCalledWorkflow, type CallTree } from './reusable';

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

/** The result of a job as `needs.<id>.result` shows it (a matrix job's instances folded together). */
function foldResults(results: JobResult[]): NeedsResult {
  const c = results.map((r) => r.conclusion);
  const result: Conclusion = c.includes('failure') ? 'failure' : c.includes('cancelled') ? 'cancelled' : c.every((x) => x === 'skipped') ? 'skipped' : 'success';
  const outputs: Record<string, string> = {};
  for (const r of results) Object.assign(outputs, r.outputs);
  return { result, outputs };
}

function notRun(job: JobModel, name: string, conclusion: Conclusion, matrix: Record<string, unknown> = {}, error?: string): JobResult {
  return { id: job.id, name, conclusion, outcome: conclusion, matrix, outputs: {}, steps: [], durationMs: 0, summary: '', error };
}

/**
 * Runs jobs in needs order; a job whose condition is false is skipped. A matrix
 * job runs each combination (up to `parallelJobs` and `max-parallel` at once);
 * with fail-fast, a failed combination cancels those not finished.
 */
export async function runWorkflow(deps: JobDeps, wf: WorkflowModel, jobs: JobModel[], ctx: RunContext, settings: JobSettings, tree: CallTree = { depth: 0, called: new Set() }): Promise<JobResult[]> {
  const byJob = new Map<string, JobResult[]>();
  const all: JobResult[] = [];
  const finish = (r: JobResult) => {
    all.push(r);
    deps.observer?.jobFinished?.(r);
  };
  const masker = maskerFor(ctx.secrets);
  for (const job of jobs) {
    const needs: Record<string, NeedsResult> = {};
    for (const n of job.needs) needs[n] = byJob.has(n) ? foldResults(byJob.get(n)!) : { result: 'skipped', outputs: {} };
    const needResults = Object.values(needs).map((n) => n.result);
    const status: JobStatus = {
      success: () => needResults.every((r) => r === 'success') && !deps.signal?.aborted,
      failure: () => needResults.some((r) => r === 'failure'),
      cancelled: () => !!deps.signal?.aborted,
    };
    const contexts = baseContexts(ctx, job.id, needs);
    const results: JobResult[] = [];
    byJob.set(job.id, results);
    let run: boolean;
    try {
      run = evaluateCondition(job.if, contexts, status);
    } catch (e) {
      const r = notRun(job, job.name ?? job.id, 'failure', {}, masker.mask((e as Error).message));
      results.push(r);
      finish(r);
      continue;
    }
    if (!run) {
      const r = notRun(job, job.name ?? job.id, deps.signal?.aborted ? 'cancelled' : 'skipped');
      results.push(r);
      finish(r);
      continue;
    }
    let instances: JobInstance[];
    let failFast = true;
    let maxParallel = Infinity;
    try {
      ({ instances, failFast, maxParallel } = planInstances(job, contexts, status));
      const only = settings.matrixFilter;
      // A key the job's matrix does not have filters nothing out (act's --matrix does the same).
      if (only) instances = instances.filter((inst) => Object.entries(only).every(([k, vals]) => !(k in inst.facts.matrix) || vals.includes(String(inst.facts.matrix[k]))));
    } catch (e) {
      const r = notRun(job, job.name ?? job.id, 'failure', {}, masker.mask((e as Error).message));
      results.push(r);
      finish(r);
      continue;
    }
    if (job.call) {
      // A job that calls a reusable workflow: each instance runs the called workflow's jobs.
      for (const inst of instances) {
        const ictx = { ...contexts, matrix: inst.facts.matrix, strategy: inst.facts.strategy };
        try {
          const { called, outputs } = await runCalledWorkflow(job, inst.name, ctx, settings, ictx, status, tree, (w2, j2, c2, t2) => runWorkflow(deps, w2, j2, c2, settings, t2));
          all.push(...called);
          const folded = foldResults(called);
          const r: JobResult = { ...notRun(job, inst.name, folded.result, inst.facts.matrix), outputs };
          results.push(r);
          finish(r);
        } catch (e) {
          const r = notRun(job, inst.name, 'failure', inst.facts.matrix, masker.mask((e as Error).message));
          results.push(r);
          finish(r);
        }
      }
      continue;
    }
    const width = Math.max(1, Math.min(settings.parallelJobs, maxParallel));
    let cancelRest = false;
    const slots = new Array<JobResult | undefined>(instances.length);
    // At most `width` instances at once, started in matrix order (p-queue keeps the order and the count).
    const queue = new PQueue({ concurrency: width });
    const tasks = instances.map((inst, i) =>
      queue.add(async () => {
        if (cancelRest || deps.signal?.aborted) {
          slots[i] = notRun(job, inst.name, 'cancelled', inst.facts.matrix, cancelRest ? 'cancelled by fail-fast: another matrix job failed' : undefined);
          deps.observer?.jobFinished?.(slots[i]!);
          return;
        }
        const r = await runJob(deps, wf, inst, ctx, settings, needs);
        slots[i] = r;
        if (failFast && instances.length > 1 && r.conclusion === 'failure') cancelRest = true;
      }),
    );
    // A job that throws rejects here, as it did before the queue.
    await Promise.all(tasks);
    for (const r of slots) {
      results.push(r!);
      all.push(r!);
    }
  }
  return all;
}

/** Expands a job's strategy into the instances to run (one without a matrix). */
function planInstances(job: JobModel, contexts: Record<string, unknown>, status: JobStatus): { instances: JobInstance[]; failFast: boolean; maxParallel: number } {
  const strategy = job.strategy;
  const baseName = job.name ?? job.id;
  if (!strategy) return { instances: [{ job, name: evaluateName(baseName, contexts, status), facts: { matrix: {}, strategy: {} } }], failFast: true, maxParallel: Infinity };
  const matrixValue = typeof strategy.matrix === 'string' ? evaluateValue(strategy.matrix, contexts, status) : evaluateDeep(strategy.matrix, contexts, status);
  const expanded = expandMatrix(matrixValue);
  if ('error' in expanded) throw new Error(`job ${job.id}: ${expanded.error}`);
  const failFast = Boolean(evaluateValue(strategy.failFast, contexts, status));
  const mp = strategy.maxParallel === undefined ? Infinity : Number(evaluateValue(strategy.maxParallel, contexts, status));
  if (!(mp >= 1)) throw new Error(`job ${job.id}: strategy.max-parallel evaluates to '${String(mp)}', not a number of at least 1`);
  const total = expanded.combinations.length;
  const instances = expanded.combinations.map((matrix, i) => {
    const strategyCtx = { 'fail-fast': failFast, 'job-index': i, 'job-total': total, 'max-parallel': Number.isFinite(mp) ? mp : total };
    const ctx = { ...contexts, matrix, strategy: strategyCtx };
    const name = job.name && hasExpression(job.name) ? evaluateName(job.name, ctx, status) : matrixJobName(baseName, matrix);
    return { job, name, facts: { matrix, strategy: strategyCtx } };
  });
  return { instances, failFast, maxParallel: mp };
}

function evaluateName(name: string, contexts: Record<string, unknown>, status: JobStatus): string {
  try {
    return String(evaluateValue(name, contexts, status));
  } catch {
    return name;
  }
}

/**
 * Evaluates expressions anywhere inside a matrix as written, as GitHub does: values, keys
 * (`${{ needs.a.outputs.key }}: [1, 2]`), a list item whose expression gives a list (spliced into
 * the list), and the `${{ insert }}` key, whose mapping value is merged into the mapping around it.
 */
function evaluateDeep(v: unknown, contexts: Record<string, unknown>, status: JobStatus): unknown {
  if (typeof v === 'string') return hasExpression(v) ? evaluateValue(v, contexts, status) : v;
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    for (const x of v) {
      const e = evaluateDeep(x, contexts, status);
      if (typeof x === 'string' && isWholeExpression(x) && Array.isArray(e)) out.push(...e);
      else out.push(e);
    }
    return out;
  }
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const value = evaluateDeep(x, contexts, status);
      if (/^\$\{\{\s*insert\s*\}\}$/.test(k)) {
        if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('${{ insert }} needs a mapping to merge');
        Object.assign(out, value);
        continue;
      }
      const key = hasExpression(k) ? String(evaluateValue(k, contexts, status)) : k;
      if (!key) throw new Error(`matrix key '${k}' evaluates to an empty string`);
      out[key] = value;
    }
    return out;
  }
  return v;
}

/** `${{ expr }}` and nothing around it. */
function isWholeExpression(text: string): boolean {
  const t = text.trim();
  return t.startsWith('${{') && t.endsWith('}}') && t.indexOf('${{', 3) === -1;
}

/**
 * The job (or matrix combination) GitHub queued under `name`: the name GitHub
 * shows (`build (18, ubuntu)`, or the job's `name:`), else the job id. Jobs whose
 * matrix depends on needs outputs cannot be matched this way.
 */
export function findJobInstance(wf: WorkflowModel, name: string, ctx: RunContext): JobInstance | { error: string } {
  const ok: JobStatus = { success: () => true, failure: () => false, cancelled: () => false };
  for (const job of wf.jobs) {
    const needs = Object.fromEntries(job.needs.map((n) => [n, { result: 'success' as const, outputs: {} }]));
    let instances: JobInstance[];
    try {
      instances = planInstances(job, baseContexts(ctx, job.id, needs), ok).instances;
    } catch {
      continue;
    }
    const found = instances.find((i) => i.name === name) ?? (instances.length === 1 && job.id === name ? instances[0] : undefined);
    if (found) return found;
  }
  return { error: `no job of ${wf.file} is named '${name}'` };
}
