import { join } from 'node:path';
import { isStockadeError, type Logger } from '../common';
import { copyTreeIntoVolume, makeVolumeDir, writeVolumeFile, type Sandbox } from '../sandbox';
import { evaluateValue, interpolate, type JobModel, type JobStatus, type WorkflowModel } from '../workflow';
import { createJobVolumes, type JobVolumes } from './job-volumes';
import { baseContexts, jobStatus, type NeedsResult } from './job-contexts';
export type { NeedsResult } from './job-contexts';
import { runStep, type JobState } from './run-step';
import type { Conclusion, JobResult, JobSettings, RunContext, RunObserver } from './types';

export interface JobDeps {
  sandbox: Sandbox;
  logger: Logger;
  observer?: RunObserver;
  signal?: AbortSignal;
}

/** Runs one job: fresh volumes, one container per step, volumes removed at the end whatever happens. */
export async function runJob(deps: JobDeps, wf: WorkflowModel, job: JobModel, ctx: RunContext, settings: JobSettings, needs: Record<string, NeedsResult>): Promise<JobResult> {
  const started = Date.now();
  const contexts = baseContexts(ctx, job.id, needs);
  const name = job.name ? safeInterpolate(job.name, contexts) : job.id;
  const log = deps.logger.child({ job: job.id });
  deps.observer?.jobStarted?.(job.id, name);
  let volumes: JobVolumes | undefined;
  const state: JobState = { env: {}, path: [], steps: {}, failed: false, summary: [], results: [] };
  let error: string | undefined;
  try {
    const timeoutMinutes = Number(evaluateValue(job.timeoutMinutes, contexts));
    if (!(timeoutMinutes > 0)) throw new Error(`timeout-minutes evaluates to '${String(timeoutMinutes)}', not a positive number`);
    const deadline = started + timeoutMinutes * 60_000;
    volumes = await createJobVolumes(deps.sandbox, job.id, log);
    await prepareWorkspace(volumes, settings.sourceDir, ctx.event);
    for (const step of job.steps) {
      const r = await runStep({ ...deps, logger: log }, { wf, job, ctx, settings, contexts, volumes, state, deadline }, step);
      state.results.push(r);
      deps.observer?.stepFinished?.(job.id, r);
      if (r.conclusion === 'failure') state.failed = true;
    }
  } catch (e) {
    error = isStockadeError(e) ? e.describe() : (e as Error).message;
    log.error({ err: e }, 'job failed before its steps completed');
    state.failed = true;
  } finally {
    await volumes?.remove();
  }
  const status = jobStatus(state, deps.signal);
  const conclusion: Conclusion = deps.signal?.aborted ? 'cancelled' : state.failed ? 'failure' : 'success';
  const outputs: Record<string, string> = {};
  for (const [k, v] of Object.entries(job.outputs)) outputs[k] = safeInterpolate(v, { ...contexts, steps: state.steps }, status);
  const result: JobResult = { id: job.id, name, conclusion, outputs, steps: state.results, durationMs: Date.now() - started, summary: state.summary.join('\n'), error };
  deps.observer?.jobFinished?.(result);
  return result;
}


function safeInterpolate(text: string, contexts: Record<string, unknown>, status?: JobStatus): string {
  try {
    return interpolate(text, contexts, status);
  } catch {
    return text;
  }
}

async function prepareWorkspace(v: JobVolumes, sourceDir: string, event: Record<string, unknown>): Promise<void> {
  await copyTreeIntoVolume(sourceDir, v.mountpoint.workspace, v.owner);
  await makeVolumeDir(v.mountpoint.temp, '_github_workflow', v.owner);
  await writeVolumeFile(join(v.mountpoint.temp, '_github_workflow'), 'event.json', JSON.stringify(event), v.owner);
}

