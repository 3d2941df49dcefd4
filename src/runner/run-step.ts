import { randomUUID } from 'node:crypto';
import type { Logger } from '../common';
import { LABEL_STEP, readVolumeFile, runStepContainer, writeVolumeFile, type Sandbox, type StepOutcome, type StepSpec } from '../sandbox';
import {
  evaluateCondition,
  evaluateValue,
  interpolate,
  isForbiddenEnvName,
  MAX_FILE_COMMAND_BYTES,
  parseFileCommands,
  parsePathFile,
  resolveShell,
  type JobModel,
  type StepModel,
  type WorkflowModel,
} from '../workflow';
import { JOB_PATHS } from './job-paths';
import { jobStatus } from './job-contexts';
import type { JobVolumes } from './job-volumes';
import { standardEnv } from './standard-env';
import { evaluateEnv, pathWith, resolveWorkingDirectory } from './step-env';
import type { Conclusion, JobSettings, RunContext, RunObserver, StepResult } from './types';

export interface JobState {
  env: Record<string, string>;
  path: string[];
  steps: Record<string, { outputs: Record<string, string>; outcome: Conclusion; conclusion: Conclusion }>;
  failed: boolean;
  summary: string[];
  results: StepResult[];
}

export interface StepRun {
  wf: WorkflowModel;
  job: JobModel;
  ctx: RunContext;
  settings: JobSettings;
  /** The job's base contexts (github, needs, runner, …), computed once per job. */
  contexts: Record<string, unknown>;
  volumes: JobVolumes;
  state: JobState;
  deadline: number;
}

interface StepDeps {
  sandbox: Sandbox;
  logger: Logger;
  observer?: RunObserver;
  signal?: AbortSignal;
}

const FILES = ['env', 'output', 'path', 'summary', 'state'] as const;

function displayName(step: StepModel): string {
  if (step.name) return step.name;
  if (step.run) return `Run ${step.run.trim().split('\n')[0]!.slice(0, 60)}`;
  return step.uses ?? `step ${step.index + 1}`;
}

/** Runs one step of a job in its own container and folds its file commands into the job state. */
export async function runStep(deps: StepDeps, run: StepRun, step: StepModel): Promise<StepResult> {
  const { job, state } = run;
  const status = jobStatus(state, deps.signal);
  const contexts = { ...run.contexts, steps: state.steps, job: { status: state.failed ? 'failure' : 'success' }, env: {} };
  const base = { index: step.index, id: step.id, outputs: {}, peakMemoryBytes: 0, cpuSeconds: 0, exitCode: null, durationMs: 0 };
  let name = displayName(step);
  const fail = (error: string): StepResult => record(run, step, { ...base, name, conclusion: 'failure', outcome: 'failure', reason: 'error', error });
  try {
    name = step.name ? interpolate(step.name, contexts, status) : name;
    const env = evaluateEnv([run.wf.env, job.env, state.env, step.env], contexts, status);
    const ctxWithEnv = { ...contexts, env };
    if (!evaluateCondition(step.if, ctxWithEnv, status)) {
      return record(run, step, { ...base, name, conclusion: 'skipped', outcome: 'skipped', reason: 'skipped' });
    }
    deps.observer?.stepStarted?.(job.id, { index: step.index, name });
    if (step.uses) return runUses(deps, run, step, name, base);
    const shell = resolveShell(interpolate(step.shell ?? job.defaults.shell ?? run.wf.defaults.shell ?? '', ctxWithEnv, status));
    if ('error' in shell) return fail(shell.error);
    const wd = resolveWorkingDirectory(interpolate(step.workingDirectory ?? job.defaults.workingDirectory ?? run.wf.defaults.workingDirectory ?? '', ctxWithEnv, status));
    if ('error' in wd) return fail(wd.error);
    const script = interpolate(step.run ?? '', ctxWithEnv, status);
    const continueOnError = Boolean(evaluateValue(step.continueOnError, ctxWithEnv, status));
    const stepMinutes = step.timeoutMinutes === undefined ? Infinity : Number(evaluateValue(step.timeoutMinutes, ctxWithEnv, status));
    if (!(stepMinutes > 0)) return fail(`timeout-minutes evaluates to '${String(stepMinutes)}', not a positive number`);
    const timeoutMs = Math.max(100, Math.min(stepMinutes * 60_000, run.deadline - Date.now(), run.settings.limits.timeoutMs));
    const id = randomUUID();
    const files = Object.fromEntries(FILES.map((f) => [f, `_runner_file_commands_${id}_${f}`])) as Record<(typeof FILES)[number], string>;
    const scriptName = `${id}${shell.extension}`;
    const mp = run.volumes.mountpoint.temp;
    for (const f of FILES) await writeVolumeFile(mp, files[f], '', run.volumes.owner, 0o666);
    await writeVolumeFile(mp, scriptName, script, run.volumes.owner, 0o755);
    const fullEnv = { ...env, ...standardEnv(run.ctx, job.id, step.id ?? `__run_${step.index}`, files), PATH: pathWith(state.path) };
    const spec: StepSpec = {
      name: `stockade-${run.volumes.key}-s${step.index}`,
      image: run.settings.image,
      argv: shell.argv(`${JOB_PATHS.temp}/${scriptName}`),
      env: fullEnv,
      workdir: wd.path,
      mounts: run.volumes.mounts,
      limits: { ...run.settings.limits, timeoutMs },
      network: { mode: 'none' },
      security: { seccompProfilePath: deps.sandbox.seccompProfilePath, readOnlyRoot: run.settings.readOnlyRoot },
      labels: { ...run.volumes.labels, [LABEL_STEP]: String(step.index) },
    };
    const outcome = await runStepContainer({ ...deps.sandbox.deps, logger: deps.logger.child({ step: step.index }) }, spec, (l) => deps.observer?.line?.(job.id, name, l.stream, l.text), deps.signal);
    const outputs = await collectFileCommands(run, files, (msg) => deps.observer?.line?.(job.id, name, 'stderr', `[stockade] ${msg}`));
    return record(run, step, fromOutcome(base, name, outcome, outputs, continueOnError, run.deadline));
  } catch (e) {
    return fail((e as Error).message);
  }
}

function fromOutcome(base: Pick<StepResult, 'index' | 'id'>, name: string, o: StepOutcome, outputs: Record<string, string>, continueOnError: boolean, deadline: number): StepResult {
  const outcome: Conclusion = o.reason === 'cancelled' ? 'cancelled' : o.ok ? 'success' : 'failure';
  const jobTimedOut = o.reason === 'timeout' && Date.now() >= deadline - 50;
  return {
    ...base,
    name,
    outcome,
    conclusion: outcome === 'failure' && continueOnError && !jobTimedOut ? 'success' : outcome,
    exitCode: o.exitCode,
    reason: o.reason,
    durationMs: o.durationMs,
    peakMemoryBytes: o.usage.peakMemoryBytes,
    cpuSeconds: o.usage.cpuSeconds,
    outputs,
    error: o.error ?? (o.ok ? undefined : describeFailure(o)),
  };
}

function describeFailure(o: StepOutcome): string {
  switch (o.reason) {
    case 'timeout':
      return 'the step exceeded its time limit and was killed';
    case 'out-of-memory':
      return `the step exceeded its memory limit; ${o.usage.oomKills} process(es) killed`;
    case 'process-limit':
      return `the step hit its process limit (${o.usage.pidsLimitHits} forks refused)`;
    case 'output-limit':
      return `the step exceeded its output limit (${o.outputBytes} bytes)`;
    default:
      return `Process completed with exit code ${String(o.exitCode)}.`;
  }
}

function record(run: StepRun, step: StepModel, r: StepResult): StepResult {
  if (step.id) run.state.steps[step.id] = { outputs: r.outputs, outcome: r.outcome, conclusion: r.conclusion };
  return r;
}

async function collectFileCommands(run: StepRun, files: Record<(typeof FILES)[number], string>, warn: (m: string) => void): Promise<Record<string, string>> {
  const mp = run.volumes.mountpoint.temp;
  const read = async (name: string) => {
    const r = await readVolumeFile(mp, name, MAX_FILE_COMMAND_BYTES);
    if (!r.ok) warn(r.error);
    return r.ok ? r.text : '';
  };
  const env = parseFileCommands(await read(files.env));
  env.errors.forEach((m) => warn(`GITHUB_ENV ${m}`));
  for (const [k, v] of Object.entries(env.values)) {
    if (isForbiddenEnvName(k)) warn(`GITHUB_ENV may not set ${k}; it is ignored`);
    else run.state.env[k] = v;
  }
  const out = parseFileCommands(await read(files.output));
  out.errors.forEach((m) => warn(`GITHUB_OUTPUT ${m}`));
  run.state.path.push(...parsePathFile(await read(files.path)));
  const summary = await read(files.summary);
  if (summary) run.state.summary.push(summary);
  return out.values;
}

async function runUses(deps: StepDeps, run: StepRun, step: StepModel, name: string, base: Pick<StepResult, 'index' | 'id' | 'outputs' | 'peakMemoryBytes' | 'cpuSeconds' | 'exitCode' | 'durationMs'>): Promise<StepResult> {
  // The workspace already holds a copy of the repository: checkout is satisfied.
  deps.observer?.line?.(run.job.id, name, 'stdout', `[stockade] ${step.uses}: the workspace already holds the repository at ${run.ctx.sha.slice(0, 12)}`);
  return record(run, step, { ...base, name, conclusion: 'success', outcome: 'success', reason: 'exit', exitCode: 0 });
}
