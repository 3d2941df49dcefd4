import { randomUUID } from 'node:crypto';
import { Phases } from '../common';
import { LABEL_STEP, PreparedEndedError, readVolumeFile, runPreparedStep, runStepContainer, type OutputLine, type RunOptions, type StepOutcome, type StepSpec } from '../sandbox';
import { deferRemoval, mayWarm, startRemovals, startWarm, takeWarm, WARM_AFTER_MS } from './prewarm';
import { isForbiddenEnvName, MAX_FILE_COMMAND_BYTES, parseFileCommands, parsePathFile } from '../workflow';
import { markDiskLimit, writeStepFiles } from './step-files';
import { standardEnv } from './standard-env';
import { pathWith } from './step-env';
import { StepLog, type LogSink } from './step-log';
import type { Conclusion } from './types';
import type { Executed, Scope, StepDeps, StepRun } from './step-types';

const FILES = ['env', 'output', 'path', 'summary', 'state'] as const;
type FileNames = Record<(typeof FILES)[number], string>;

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

/** Everything of a step's container but its name, command, environment, directory and deadline: what a container prepared ahead must match (prewarm.ts fingerprint). */
export function stepShape(deps: StepDeps, run: StepRun, image: string, label: string): StepSpec {
  return {
    name: '',
    image,
    argv: [],
    env: {},
    workdir: '/',
    mounts: [...run.volumes.mounts, ...run.state.extraMounts],
    limits: run.settings.limits,
    // Without a network of its own the job's steps share its results forwarder's namespace: loopback only.
    network: run.net ? run.net.spec() : run.results ? { mode: 'container', container: run.results.container } : { mode: 'none' },
    security: { seccompProfilePath: deps.sandbox.seccompProfilePath, readOnlyRoot: run.settings.readOnlyRoot },
    labels: { ...run.volumes.labels, [LABEL_STEP]: label },
  };
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
    ...stepShape(deps, run, s.image ?? run.image, s.label),
    name: `stockade-${run.volumes.key}-${++run.state.containers}`,
    argv: s.argv(scriptPath),
    env: fullEnv,
    workdir: s.workdir,
    limits: { ...run.settings.limits, timeoutMs },
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
    outcome = warm
      ? await runPreparedStep(sdeps, warm.prepared, onLine, deps.signal, opts).catch((e: unknown) => {
          if (!(e instanceof PreparedEndedError)) throw e;
          // Nothing of the step ran: it runs in a container made now.
          deps.logger.warn({ step: s.label, err: e }, 'the prepared container ended before its go; the step starts in a fresh one');
          return runStepContainer(sdeps, spec, onLine, deps.signal, opts);
        })
      : await runStepContainer(sdeps, spec, onLine, deps.signal, opts);
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
