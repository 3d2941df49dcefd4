import { evaluateCondition, evaluateValue, interpolate, resolveShell, type JobStatus, type StepModel } from '../workflow';
import { hashWorkspaceFiles } from './hash-files';
import { jobStatus } from './job-contexts';
import { runScript } from './run-script';
import { evaluateEnv, resolveWorkingDirectory } from './step-env';
import { LogSink } from './step-log';
import type { Executed, Scope, StepDeps, StepRun, UsesRunner } from './step-types';
import type { StepResult } from './types';

export function displayName(step: StepModel): string {
  if (step.name) return step.name;
  if (step.run) return `Run ${step.run.trim().split('\n')[0]!.slice(0, 60)}`;
  return step.uses ?? `step ${step.index + 1}`;
}

export function scopeStatus(run: StepRun, scope: Scope, signal?: AbortSignal): JobStatus {
  return { ...jobStatus(scope.status, signal), hashFiles: (patterns) => hashWorkspaceFiles(run.volumes.mountpoint.workspace, patterns) };
}

export function stepContexts(run: StepRun, scope: Scope): Record<string, unknown> {
  const github = run.contexts.github as Record<string, unknown>;
  return {
    ...run.contexts,
    github: scope.actionPath ? { ...github, action_path: scope.actionPath } : github,
    steps: scope.steps,
    inputs: scope.inputs,
    job: { status: scope.status.failed ? 'failure' : 'success' },
    env: {},
  };
}

/**
 * Runs one step (of the job or of a composite action): evaluates its name, env
 * and condition, then its `run:` script or its action. Lines go to `sink`.
 */
export async function executeStep(deps: StepDeps, run: StepRun, scope: Scope, step: StepModel, sink: LogSink, uses: UsesRunner, onStart?: (name: string) => void): Promise<{ name: string; executed?: Executed; continueOnError: boolean }> {
  const status = scopeStatus(run, scope, deps.signal);
  const contexts = stepContexts(run, scope);
  let name = displayName(step);
  const fail = (error: string): Executed => ({ outcome: 'failure', exitCode: null, reason: 'error', error, outputs: {}, durationMs: 0, peakMemoryBytes: 0, cpuSeconds: 0 });
  let continueOnError = false;
  try {
    const env = evaluateEnv([run.containerEnv, ...scope.envBase, run.state.env, step.env], contexts, status);
    const ctxWithEnv = { ...contexts, env };
    name = step.name ? interpolate(step.name, ctxWithEnv, status) : name;
    continueOnError = Boolean(evaluateValue(step.continueOnError, ctxWithEnv, status));
    if (!evaluateCondition(step.if, ctxWithEnv, status)) return { name, continueOnError };
    onStart?.(name);
    const stepMinutes = step.timeoutMinutes === undefined ? Infinity : Number(evaluateValue(step.timeoutMinutes, ctxWithEnv, status));
    if (!(stepMinutes > 0)) return { name, continueOnError, executed: fail(`timeout-minutes evaluates to '${String(stepMinutes)}', not a positive number`) };
    const deadline = Math.min(scope.deadline, Date.now() + stepMinutes * 60_000);
    if (step.uses) return { name, continueOnError, executed: await uses(deps, run, scope, step, env, ctxWithEnv, sink, deadline) };
    const defaults = scope.defaults;
    const shellText = step.shell ?? defaults.map((d) => d.shell).find((s) => s !== undefined) ?? '';
    const shell = resolveShell(interpolate(shellText, ctxWithEnv, status));
    if ('error' in shell) return { name, continueOnError, executed: fail(shell.error) };
    const wdText = step.workingDirectory ?? defaults.map((d) => d.workingDirectory).find((s) => s !== undefined) ?? '';
    const wd = resolveWorkingDirectory(interpolate(wdText, ctxWithEnv, status));
    if ('error' in wd) return { name, continueOnError, executed: fail(wd.error) };
    const script = interpolate(step.run ?? '', ctxWithEnv, status);
    const executed = await runScript(deps, run, scope, sink, {
      label: String(step.index),
      actionId: step.id ?? `__run_${step.index}`,
      script: { text: script, extension: shell.extension },
      argv: (path) => shell.argv(path!),
      env,
      workdir: wd.path,
      deadline,
    });
    return { name, continueOnError, executed };
  } catch (e) {
    // An error before continue-on-error was read (in the step's env: an expression over its memory
    // budget, say) still honours it, evaluated without the step's env.
    if (!continueOnError) continueOnError = Boolean(safeValue(step.continueOnError, contexts, status));
    return { name, continueOnError, executed: fail((e as Error).message) };
  }
}

function safeValue(v: unknown, contexts: Record<string, unknown>, status: ReturnType<typeof scopeStatus>): unknown {
  try {
    return evaluateValue(v, contexts, status);
  } catch {
    return false;
  }
}

/** Runs a top-level step of the job and records its result. */
export async function runStep(deps: StepDeps, run: StepRun, scope: Scope, step: StepModel, uses: UsesRunner): Promise<StepResult> {
  const jobId = run.job.id;
  let shownName = displayName(step);
  const sink = new LogSink(run.state.masker, (stream, text) => deps.observer?.line?.(jobId, shownName, stream, text));
  const { name, executed, continueOnError } = await executeStep(deps, run, scope, step, sink, uses, (n) => {
    shownName = run.state.masker.mask(n);
    deps.observer?.stepStarted?.(jobId, { index: step.index, name: shownName });
  });
  const result = toResult(run, step.index, step.id, name, sink, executed, continueOnError);
  // Later steps see the real values; the result (what leaves the runner) is masked.
  if (step.id) scope.steps[step.id] = { outputs: executed?.outputs ?? {}, outcome: result.outcome, conclusion: result.conclusion };
  if (result.conclusion === 'failure') scope.status.failed = true;
  return result;
}

export function toResult(run: StepRun, index: number, id: string | undefined, name: string, sink: LogSink, e: Executed | undefined, continueOnError: boolean): StepResult {
  const masker = run.state.masker;
  if (!e) {
    return { index, id, name: masker.mask(name), conclusion: 'skipped', outcome: 'skipped', reason: 'skipped', exitCode: null, durationMs: 0, peakMemoryBytes: 0, cpuSeconds: 0, outputs: {}, annotations: [], log: [], logDroppedLines: 0 };
  }
  if (e.outcome === 'failure' && e.error) {
    sink.write('stderr', `##[error]${e.error}`);
    sink.annotate({ level: 'error', message: e.error });
  }
  const jobTimedOut = e.reason === 'timeout' && Date.now() >= run.deadline - 50;
  return {
    index,
    id,
    name: masker.mask(name),
    outcome: e.outcome,
    conclusion: e.outcome === 'failure' && continueOnError && !jobTimedOut ? 'success' : e.outcome,
    exitCode: e.exitCode,
    reason: e.reason,
    durationMs: e.durationMs,
    peakMemoryBytes: e.peakMemoryBytes,
    cpuSeconds: e.cpuSeconds,
    outputs: masker.maskDeep(e.outputs),
    error: e.error === undefined ? undefined : masker.mask(e.error),
    annotations: sink.annotations,
    log: sink.lines,
    logDroppedLines: sink.droppedLines,
  };
}

