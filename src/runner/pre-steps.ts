import { posix } from 'node:path';
import { evaluateCondition, interpolate, type StepModel } from '../workflow';
import { actionInputs, ensureNode, inputEnv, isCheckout, nothing, resolveAction, type ResolvedAction } from './actions';
import { runDockerPre } from './docker-action';
import { NODE_EXTERNALS } from './externals-volumes';
import { JOB_PATHS } from './job-paths';
import { scopeStatus, stepContexts, toResult } from './run-step';
import { runScript } from './run-script';
import type { Scope, StepDeps, StepRun } from './step-types';
import { LogSink } from './step-log';
import type { StepResult } from './types';

/**
 * `pre:` of the JavaScript actions and `pre-entrypoint` of the Docker actions the job's steps use,
 * run before the first step as GitHub does (pre-if defaults to always()).
 */
export async function runPreSteps(deps: StepDeps, run: StepRun, scope: Scope, steps: StepModel[]): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const step of steps) {
    // Only downloaded actions have a pre stage on GitHub: a local (./) one is not there before checkout.
    if (!step.uses || isCheckout(step.uses) || step.uses.startsWith('./')) continue;
    let resolved: ResolvedAction;
    try {
      resolved = await resolveAction(deps, run, step.uses);
    } catch {
      continue; // reported when the step itself runs
    }
    if (resolved.kind !== 'action') continue;
    const runs = resolved.model.runs;
    const docker = runs.using === 'docker' && !!runs.preEntrypoint && !step.uses.startsWith('docker://');
    if (!docker && (runs.using !== 'node' || !runs.pre)) continue;
    const name = `Pre ${step.name ?? step.uses}`;
    const sink = new LogSink(run.state.masker, (stream, text) => deps.observer?.line?.(run.job.id, name, stream, text));
    const contexts = stepContexts(run, scope);
    const status = scopeStatus(run, scope, deps.signal);
    try {
      if (!evaluateCondition(runs.preIf ?? 'always()', contexts, status)) continue;
      deps.observer?.stepStarted?.(run.job.id, { index: step.index, name });
      const withValues = Object.fromEntries(Object.entries(step.with).map(([k, v]) => [k, interpolate(v, contexts, status)]));
      const inputs = actionInputs(resolved.model, withValues, contexts, status, sink);
      if (runs.using === 'docker') {
        const e = await runDockerPre(deps, run, scope, step, { runs, hostDir: resolved.hostDir, hostRoot: resolved.hostRoot }, inputs, inputEnv(inputs), contexts, sink);
        const r = toResult(run, step.index, undefined, name, sink, e, false);
        if (r.conclusion === 'failure') scope.status.failed = true;
        results.push(r);
        continue;
      }
      await ensureNode(deps, run);
      const e = await runScript(deps, run, { ...scope, actionPath: resolved.dir }, sink, {
        label: `pre-${step.index}`,
        actionId: step.id ?? `__pre_${step.index}`,
        argv: () => [`${NODE_EXTERNALS}/bin/node`, posix.join(resolved.dir, runs.pre!)],
        env: {},
        extraEnv: { ...inputEnv(inputs), GITHUB_ACTION_REPOSITORY: resolved.repository, GITHUB_ACTION_REF: resolved.ref },
        workdir: JOB_PATHS.workspace,
        deadline: run.deadline,
      });
      run.state.preState.set(step.index, e.state);
      const r = toResult(run, step.index, undefined, name, sink, e, false);
      if (r.conclusion === 'failure') scope.status.failed = true;
      results.push(r);
    } catch (e) {
      const r = toResult(run, step.index, undefined, name, sink, { ...nothing(), outcome: 'failure', reason: 'error', exitCode: null, error: (e as Error).message }, false);
      scope.status.failed = true;
      results.push(r);
    }
  }
  return results;
}
