import type { JobNetwork } from './job-network';
import { randomUUID } from 'node:crypto';
import { Phases, type Logger } from '../common';
import { LABEL_STEP, readVolumeFile, runPreparedStep, runStepContainer, type OutputLine, type RunOptions, type Sandbox, type StepOutcome, type StepSpec, type VolumeMount } from '../sandbox';
import { deferRemoval, mayWarm, startRemovals, startWarm, takeWarm, WARM_AFTER_MS, type WarmStep } from './prewarm';
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
  type JobStatus,
  type RunDefaults,
  type SecretMasker,
  type StepModel,
  type WorkflowModel,
} from '../workflow';
import { hashWorkspaceFiles } from './hash-files';
import { jobStatus } from './job-contexts';
import { markDiskLimit, writeStepFiles } from './step-files';
import type { JobVolumes } from './job-volumes';
import { standardEnv } from './standard-env';
import { evaluateEnv, pathWith, resolveWorkingDirectory } from './step-env';
import { LogSink, StepLog } from './step-log';
import type { Conclusion, JobSettings, RunContext, RunObserver, StepResult } from './types';

export interface StepContext {
  outputs: Record<string, string>;
  outcome: Conclusion;
  conclusion: Conclusion;
}

/** A post step a JavaScript action registered; run at the end of the job, last registered first. */
export interface PostStep {
  name: string;
  run(): Promise<StepResult>;
}

/** What the steps of one job share. */
export interface JobState {
  /** Set through GITHUB_ENV. */
  env: Record<string, string>;
  /** Added through GITHUB_PATH. */
  path: string[];
  summary: string[];
  results: StepResult[];
  masker: SecretMasker;
  post: PostStep[];
  /** Volumes mounted into every later step (actions copied from the cache, the Node.js externals). */
  extraMounts: VolumeMount[];
  /** The next step's container, prepared while the current one runs (prewarm.ts). */
  warm?: WarmStep;
  /** The top-level step running is the job's last (no post step either): nothing is prepared behind it. */
  lastStep?: boolean;
  /** Removals of finished step containers, taken off the critical path; awaited before the job's volumes go. */
  pending: Promise<void>[];
  /** Removals not started yet: they start once the next step runs (prewarm.ts deferRemoval). */
  deferred?: { removals: Array<() => Promise<void>>; timer?: NodeJS.Timeout };
  /** Volumes created for the job besides the four standard ones; removed with the job. */
  extraVolumes: string[];
  /** Resolved `uses:` → where the action sits. */
  actions: Map<string, unknown>;
  /** Remote actions the job ran, in order of first use. */
  actionsUsed: import('./types').ActionUsed[];
  /** Step containers created so far (unique names). */
  containers: number;
  /** State a JavaScript action's pre step saved, by step index (STATE_* of its main and post). */
  preState: Map<number, Record<string, string>>;
  /** Per step container that sent something to an address with no route: blocked direct attempts. */
  noRoute: Array<{ step: string; attempts: number }>;
}

/** The steps a set of steps sees: the job's, or a composite action's own. */
export interface Scope {
  steps: Record<string, StepContext>;
  inputs: Record<string, unknown>;
  /** env maps below GITHUB_ENV and the step's own (workflow + job, or the composite step's). */
  envBase: Array<Record<string, string>>;
  defaults: RunDefaults[];
  /** Whether a step of this scope has failed (the job's flag for the job scope). */
  status: { failed: boolean };
  /** `github.action_path` (container path of the running action) or ''. */
  actionPath: string;
  /** Nesting of composite actions. */
  depth: number;
  deadline: number;
  /** The job's scope, when this is a composite action's (post steps run at the job's end, under its status). */
  job?: Scope;
}

export interface StepRun {
  wf: WorkflowModel;
  job: JobModel;
  ctx: RunContext;
  settings: JobSettings;
  /** The job's base contexts (github, needs, matrix, runner, …), computed once per job. */
  contexts: Record<string, unknown>;
  volumes: JobVolumes;
  state: JobState;
  /** Image the steps run in (the job's `container:` or the runner's). */
  image: string;
  /** `container.env` of the job. */
  containerEnv: Record<string, string>;
  /** When the job's timeout-minutes runs out (ms since the epoch). */
  deadline: number;
  /** The job's internal network when it has services or egress; steps otherwise have none. */
  net?: JobNetwork;
  /** The job's results service (caches, artifacts). */
  results?: import('./job-results').JobResults;
}

export interface StepDeps {
  sandbox: Sandbox;
  logger: Logger;
  observer?: RunObserver;
  signal?: AbortSignal;
}

/** Outcome of running a step's body, before it is turned into a result. */
export interface Executed {
  outcome: Conclusion;
  exitCode: number | null;
  reason: StepResult['reason'];
  error?: string;
  outputs: Record<string, string>;
  durationMs: number;
  peakMemoryBytes: number;
  cpuSeconds: number;
}

/** What a `uses:` step does once its inputs are evaluated (actions.ts supplies it). */
export type UsesRunner = (deps: StepDeps, run: StepRun, scope: Scope, step: StepModel, env: Record<string, string>, contexts: Record<string, unknown>, sink: LogSink, deadline: number) => Promise<Executed>;

const FILES = ['env', 'output', 'path', 'summary', 'state'] as const;
type FileNames = Record<(typeof FILES)[number], string>;

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

export interface ScriptRun {
  /** Distinguishes the container name and label (`3`, `3.1`, `post-3`). */
  label: string;
  /** GITHUB_ACTION. */
  actionId: string;
  /** A script file written into the temp volume, passed to argv. */
  script?: { text: string; extension: string };
  argv(scriptPath?: string): string[];
  /** The image the container runs (a Docker action's); the job's otherwise. */
  image?: string;
  env: Record<string, string>;
  /** Extra standard variables (INPUT_*, STATE_*, GITHUB_ACTION_PATH). */
  extraEnv?: Record<string, string>;
  workdir: string;
  deadline: number;
}

/** One process in one fresh step container; its output goes through the workflow-command processor. */
export async function runScript(deps: StepDeps, run: StepRun, scope: Scope, sink: LogSink, s: ScriptRun): Promise<Executed & { state: Record<string, string> }> {
  const phases = new Phases();
  const id = randomUUID();
  const files = Object.fromEntries(FILES.map((f) => [f, `_runner_file_commands_${id}_${f}`])) as FileNames;
  const written = await writeStepFiles(run, FILES.map((f) => files[f]), s.script ? { name: `${id}${s.script.extension}`, text: s.script.text } : undefined);
  if ('refused' in written) {
    sink.write('stderr', `##[error]${written.refused.error}`);
    return written.refused;
  }
  const scriptPath = written.scriptPath;
  phases.mark('step files');
  const fullEnv: Record<string, string> = { ...(run.net?.env() ?? {}), ...s.env, ...standardEnv(run.ctx, run.job.id, s.actionId, files), ...(run.results?.env ?? {}), ...(s.extraEnv ?? {}), PATH: pathWith(run.state.path) };
  if (run.ctx.debug) fullEnv.RUNNER_DEBUG = '1';
  if (scope.actionPath) fullEnv.GITHUB_ACTION_PATH = scope.actionPath;
  const log = new StepLog({ sink, debug: run.ctx.debug, allowUnsecureCommands: (s.env.ACTIONS_ALLOW_UNSECURE_COMMANDS ?? '').toLowerCase() === 'true' });
  const timeoutMs = Math.max(100, Math.min(s.deadline - Date.now(), run.settings.limits.timeoutMs));
  const spec: StepSpec = {
    name: `stockade-${run.volumes.key}-${++run.state.containers}`,
    image: s.image ?? run.image,
    argv: s.argv(scriptPath),
    env: fullEnv,
    workdir: s.workdir,
    mounts: [...run.volumes.mounts, ...run.state.extraMounts],
    limits: { ...run.settings.limits, timeoutMs },
    // Without a network of its own the job's steps share its results forwarder's namespace: loopback only.
    network: run.net ? run.net.spec() : run.results ? { mode: 'container', container: run.results.container } : { mode: 'none' },
    security: { seccompProfilePath: deps.sandbox.seccompProfilePath, readOnlyRoot: run.settings.readOnlyRoot },
    labels: { ...run.volumes.labels, [LABEL_STEP]: s.label },
  };
  const sdeps = { ...deps.sandbox.deps, logger: deps.logger.child({ step: s.label }) };
  const warmable = mayWarm(run, spec);
  const warmNext = warmable && !(run.state.lastStep && scope.depth === 0);
  const warm = warmable ? await takeWarm(deps, run, spec) : undefined;
  phases.mark(warm ? 'take prepared' : 'spec');
  let warmTimer: NodeJS.Timeout | undefined;
  const opts: RunOptions = {
    timeoutMs,
    go: warm?.go,
    deferRemoval: (removal) => deferRemoval(run, removal),
    phases,
    // A step that runs long enough has the next one's container made meanwhile.
    onStarted: () => {
      startRemovals(run);
      if (warmNext) warmTimer = setTimeout(() => startWarm(deps, run, spec), WARM_AFTER_MS);
    },
  };
  const onLine = (l: OutputLine) => log.line(l.stream, l.text);
  let outcome: StepOutcome;
  try {
    outcome = warm ? await runPreparedStep(sdeps, warm.prepared, onLine, deps.signal, opts) : await runStepContainer(sdeps, spec, onLine, deps.signal, opts);
  } finally {
    clearTimeout(warmTimer);
    await warm?.done();
  }
  if (outcome.noRouteAttempts) {
    run.state.noRoute.push({ step: s.label, attempts: outcome.noRouteAttempts });
    deps.logger.warn({ step: s.label, attempts: outcome.noRouteAttempts }, `blocked network attempt: ${outcome.noRouteAttempts} connections or datagrams to addresses with no route (direct IPs)`);
  }
  const collected = await collectFileCommands(run, files, (msg) => sink.write('stderr', `##[warning]${msg}`));
  for (const [k, v] of Object.entries(log.env)) run.state.env[k] = v;
  run.state.path.push(...log.path);
  const e = fromOutcome(outcome);
  await markDiskLimit(run, e);
  phases.mark('file commands');
  deps.logger.debug({ step: s.label, phases: phases.ms, prepared: !!warm }, 'step phases');
  if (log.commandErrors.length && e.outcome === 'success') {
    e.outcome = 'failure';
    e.reason = 'error';
  }
  return { ...e, outputs: { ...log.outputs, ...collected.outputs }, state: { ...log.state, ...collected.state } };
}

function fromOutcome(o: StepOutcome): Executed {
  const outcome: Conclusion = o.reason === 'cancelled' ? 'cancelled' : o.ok ? 'success' : 'failure';
  return {
    outcome,
    exitCode: o.exitCode,
    reason: o.reason,
    durationMs: o.durationMs,
    peakMemoryBytes: o.usage.peakMemoryBytes,
    cpuSeconds: o.usage.cpuSeconds,
    outputs: {},
    error: o.error ?? (o.ok ? undefined : describeFailure(o)),
  };
}

function describeFailure(o: StepOutcome): string {
  switch (o.reason) {
    case 'timeout':
      return 'The step exceeded its time limit and was killed.';
    case 'out-of-memory':
      return `The step exceeded its memory limit; ${o.usage.oomKills} process(es) killed.`;
    case 'process-limit':
      return `The step hit its process limit (${o.usage.pidsLimitHits} forks refused).`;
    case 'output-limit':
      return `The step exceeded its output limit (${o.outputBytes} bytes).`;
    case 'cancelled':
      return 'The operation was canceled.';
    default:
      return `Process completed with exit code ${String(o.exitCode)}.`;
  }
}

async function collectFileCommands(run: StepRun, files: FileNames, warn: (m: string) => void): Promise<{ outputs: Record<string, string>; state: Record<string, string> }> {
  const mp = run.volumes.mountpoint.temp;
  // Read all at once (no step runs now; this is on the path between two steps), then applied (and warned of) in a fixed order.
  const results = await Promise.all([files.env, files.output, files.state, files.path, files.summary].map((name) => readVolumeFile(mp, name, MAX_FILE_COMMAND_BYTES)));
  const [envText, outText, stateText, pathText, summary] = results.map((r) => {
    if (!r.ok) warn(r.error);
    return r.ok ? r.text : '';
  }) as [string, string, string, string, string];
  const env = parseFileCommands(envText);
  env.errors.forEach((m) => warn(`GITHUB_ENV ${m}`));
  for (const [k, v] of Object.entries(env.values)) {
    if (isForbiddenEnvName(k)) warn(`GITHUB_ENV may not set ${k}; it is ignored`);
    else run.state.env[k] = v;
  }
  const out = parseFileCommands(outText);
  out.errors.forEach((m) => warn(`GITHUB_OUTPUT ${m}`));
  const state = parseFileCommands(stateText);
  state.errors.forEach((m) => warn(`GITHUB_STATE ${m}`));
  run.state.path.push(...parsePathFile(pathText));
  if (summary) run.state.summary.push(run.state.masker.mask(summary));
  return { outputs: out.values, state: state.values };
}
