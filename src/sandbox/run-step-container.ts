import { processTag } from './labels';
import type { Readable } from 'node:stream';
import { StockadeError, silentLogger, type Logger, type Phases } from '../common';
import type { ContainerEngine } from './engine';
import type { AppliedLimits, LimitEnforcer, StepUsage } from './limit-enforcer';
import { drainFrames, OutputLines, type OutputLine } from './output-lines';
import { applyProcessRlimits } from './process-rlimits';
import { NetnsCounters } from './netns-counters';
import type { StepSpec } from './step-spec';
import { toCreateOptions, type HostRlimits } from './to-create-options';
import { validateStepSpec } from './validate-step-spec';

export type ExitReason = 'exit' | 'timeout' | 'out-of-memory' | 'process-limit' | 'output-limit' | 'disk-limit' | 'cancelled' | 'sandbox-error';

export interface StepOutcome {
  /** The container's exit code; null when it never ran. */
  exitCode: number | null;
  reason: ExitReason;
  /** True when the step ran to a clean exit 0 and hit no limit. */
  ok: boolean;
  durationMs: number;
  usage: StepUsage;
  outputBytes: number;
  truncatedLines: number;
  containerId?: string;
  error?: string;
  /** Connections and datagrams the step sent to addresses with no route (blocked direct attempts); undefined when not measurable. */
  noRouteAttempts?: number;
}

export interface SandboxDeps {
  engine: ContainerEngine;
  limits: LimitEnforcer;
  host: HostRlimits;
  logger?: Logger;
  now?: () => number;
}

const NO_USAGE: StepUsage = { peakMemoryBytes: 0, cpuSeconds: 0, oomKills: 0, pidsLimitHits: 0 };

/** A step container created and initialised (its process exists, not yet exec'd) with its limits applied and read back. */
export interface PreparedStep {
  spec: StepSpec;
  id: string;
  pid: number;
  /** The init process's identity (pid and start time), so it is ended only while it is still that process. */
  initTag?: string;
  applied: AppliedLimits;
  counters?: NetnsCounters;
  /** Started ahead (prepareStepContainer with `start`): its attach stream, opened before the start so no output is lost. */
  stream?: Readable;
  /** A container started ahead whose attach stream has closed already (its command ended early): it cannot serve a step. */
  ended?: () => boolean;
}

/**
 * Create → init → limits applied and verified → rlimits: everything of a step that does not need
 * its environment or script, so it can be done ahead, while the previous step runs (the prewarm of
 * runner/prewarm.ts). Throws, having removed what it made, when any of it fails.
 */
export async function prepareStepContainer(deps: SandboxDeps, spec: StepSpec, o: { start?: boolean } = {}): Promise<PreparedStep> {
  validateStepSpec(spec);
  let id: string | undefined;
  let applied: AppliedLimits | undefined;
  let counters: NetnsCounters | undefined;
  try {
    id = await deps.engine.createContainer(toCreateOptions(spec, deps.limits.mode, deps.host));
    const pid = await deps.engine.initContainer(id);
    const initTag = processTag(pid);
    // In a namespace shared with the job's forwarder (loopback only) too: steps run one at a time.
    counters = NetnsCounters.open(pid);
    applied = await deps.limits.apply(spec.name, pid, spec.limits);
    await applyProcessRlimits(pid, { nofile: Math.min(spec.limits.nofile, deps.host.nofileHard), core: 0 });
    // Started too (its command then waits for the runner's go, runner/prewarm.ts): attached first.
    let stream: Readable | undefined;
    let closed = false;
    if (o.start) {
      stream = await deps.engine.attach(id);
      stream.pause();
      stream.once('close', () => (closed = true));
      await deps.engine.start(id);
    }
    return { spec, id, pid, initTag, applied, counters, stream, ended: () => closed };
  } catch (e) {
    await discard(deps, { id, applied, counters });
    throw e;
  }
}

/** Removes a prepared step that will not run (the job ended first, or the next step needs another shape). */
export function discardPreparedStep(deps: SandboxDeps, p: PreparedStep): Promise<void> {
  return discard(deps, p);
}

async function discard(deps: SandboxDeps, p: { id?: string; applied?: AppliedLimits; counters?: NetnsCounters; spec?: StepSpec }): Promise<void> {
  const log = (deps.logger ?? silentLogger()).child({ container: p.spec?.name ?? p.id });
  p.counters?.close();
  if (p.id) await deps.engine.removeContainer(p.id).catch((e: unknown) => log.error({ err: e }, 'container remove failed'));
  if (p.applied) await p.applied.remove().catch((e: unknown) => log.error({ err: e }, 'cgroup remove failed'));
}

export interface RunOptions {
  /** The step's wall-clock limit when it differs from the prepared spec's (a prepared step learns its deadline at start). */
  timeoutMs?: number;
  /** Called once the step's process has started (the next step may be prepared from then on). */
  onStarted?: () => void;
  /** A step prepared with `start`: what lets its waiting command go on (it runs after the output is being read). */
  go?: () => Promise<void>;
  /**
   * Takes the container's removal instead of awaiting it: the step's result is returned as soon as
   * its exit code and usage are read, and the caller starts the removal later (once the next step
   * runs, so Podman's removal does not compete with the path between two steps) and awaits it
   * before the job's volumes go. The step's processes have all ended by then: its init's exit ends
   * its PID namespace.
   */
  deferRemoval?: (removal: () => Promise<void>) => void;
  /** Records where the step's time went (its go or start, its run until the output ended, its exit code). */
  phases?: Phases;
}

/**
 * One step, one fresh container: validate → create → init → limits applied and
 * verified → attach → start → stream bounded output → wait (with timeout, output
 * cap and cancellation) → remove. The container and its cgroups are removed in
 * `finally`, whatever happened.
 */
export async function runStepContainer(deps: SandboxDeps, spec: StepSpec, onLine: (line: OutputLine) => void, signal?: AbortSignal, o: RunOptions = {}): Promise<StepOutcome> {
  const now = deps.now ?? Date.now;
  const started = now();
  if (signal?.aborted) return notRun(spec, 'cancelled', started, now);
  let prepared: PreparedStep;
  try {
    prepared = await prepareStepContainer(deps, spec);
  } catch (e) {
    if (e instanceof StockadeError && e.code === 'LIMITS_NOT_ENFORCED') throw e;
    (deps.logger ?? silentLogger()).child({ container: spec.name }).error({ err: e }, 'step container failed');
    const message = e instanceof StockadeError ? e.describe() : (e as Error).message;
    return { ...notRun(spec, 'sandbox-error', started, now), error: (await engineGone(deps)) ? goneMessage(message, false) : message };
  }
  return runPreparedStep(deps, prepared, onLine, signal, o, started);
}

/** Attach → start → stream bounded output → wait (timeout, output cap, cancellation) → removal (now, or deferred). */
export async function runPreparedStep(deps: SandboxDeps, p: PreparedStep, onLine: (line: OutputLine) => void, signal?: AbortSignal, o: RunOptions = {}, started?: number): Promise<StepOutcome> {
  const now = deps.now ?? Date.now;
  const spec = p.spec;
  const log = (deps.logger ?? silentLogger()).child({ container: spec.name });
  started ??= now();
  const { id, applied, counters } = p;
  const timeoutMs = o.timeoutMs ?? spec.limits.timeoutMs;
  let stop: StopReason | undefined;
  const output = new OutputLines({ maxBytes: spec.limits.outputBytes, maxLineBytes: spec.limits.maxLineBytes }, onLine);
  const timers: NodeJS.Timeout[] = [];
  const finish = (exitCode: number | null, reason: ExitReason, error?: string, usage: StepUsage = applied.usage()): StepOutcome => ({
    exitCode,
    reason,
    ok: reason === 'exit' && exitCode === 0,
    durationMs: now() - started!,
    usage,
    outputBytes: output.bytes,
    truncatedLines: output.truncatedLines,
    containerId: id,
    error,
  });
  try {
    if (signal?.aborted) return finish(null, 'cancelled');
    const stream = p.stream ?? (await deps.engine.attach(id));
    const ended = drainFrames(stream, output);
    stream.resume();
    const stopper = (reason: StopReason, graceMs: number) => {
      if (stop) return;
      stop = reason;
      log.info({ reason }, 'stopping step container');
      void deps.engine.kill(id, graceMs > 0 ? 'SIGTERM' : 'SIGKILL').catch((e: unknown) => log.warn({ err: e }, 'kill failed'));
      if (graceMs > 0) timers.push(setTimeout(() => void deps.engine.kill(id, 'SIGKILL').catch(() => undefined), graceMs));
    };
    output.onOverflow = () => stopper('output-limit', 0);
    const onAbort = () => stopper('cancelled', spec.limits.killGraceMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    timers.push(setTimeout(() => stopper('timeout', spec.limits.killGraceMs), timeoutMs));
    try {
      if (p.stream) {
        // A prepared container whose launcher ended before its go runs nothing: the caller starts the step afresh.
        if (p.ended?.()) throw new PreparedEndedError();
        await o.go?.().catch((e: unknown) => {
          throw new PreparedEndedError((e as Error).message);
        });
      } else await deps.engine.start(id);
      o.phases?.mark(p.stream ? 'go' : 'start');
      o.onStarted?.();
      await ended;
      o.phases?.mark('run');
      // The output ended with the container's init: the counters are final; read them while waiting.
      const [exitCode, noRouteAttempts] = await Promise.all([deps.engine.wait(id), counters?.read()]);
      o.phases?.mark('exit code + counters');
      const usage = applied.usage();
      return { ...finish(exitCode, classify(stop, exitCode, usage), undefined, usage), noRouteAttempts };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  } catch (e) {
    if (e instanceof PreparedEndedError) throw e;
    let message = e instanceof StockadeError ? e.describe() : (e as Error).message;
    log.error({ err: e }, 'step container failed');
    if (e instanceof StockadeError && e.code === 'LIMITS_NOT_ENFORCED') throw e;
    if (await engineGone(deps)) {
      // The engine is gone (its API service was killed or crashed): the container would run on under
      // its conmon with nobody to stop it. Its init, which this step started, is ended by PID (checked
      // by start time against reuse), so the step's processes end with it.
      const killed = p.initTag !== undefined && processTag(p.pid) === p.initTag && killQuietly(p.pid);
      message = goneMessage(message, killed);
    }
    return finish(null, stop ?? 'sandbox-error', message);
  } finally {
    timers.forEach(clearTimeout);
    if (o.deferRemoval) o.deferRemoval(() => discard(deps, p));
    else await discard(deps, p);
  }
}

/** Thrown by runPreparedStep before anything of the step ran: its prepared container's launcher had ended (its container is removed as usual). */
export class PreparedEndedError extends Error {
  constructor(detail?: string) {
    super(`the prepared container's launcher ended before its go${detail ? ` (${detail})` : ''}`);
  }
}

function notRun(spec: StepSpec, reason: ExitReason, started: number, now: () => number): StepOutcome {
  return { exitCode: null, reason, ok: false, durationMs: now() - started, usage: NO_USAGE, outputBytes: 0, truncatedLines: 0 };
}

function engineGone(deps: SandboxDeps): Promise<boolean> {
  return Promise.resolve()
    .then(() => deps.engine.ping())
    .then(() => false, () => true);
}

function goneMessage(message: string, killed: boolean): string {
  return `the Podman API service stopped answering while the step ran (${message}); ${killed ? "the step's processes were ended by PID" : 'the step had not started'}, and what is left of its container is removed once the service is back`;
}

type StopReason = 'timeout' | 'output-limit' | 'cancelled';

function classify(stop: StopReason | undefined, exitCode: number, usage: StepUsage): ExitReason {
  if (stop) return stop;
  if (usage.oomKills > 0) return 'out-of-memory';
  if (usage.pidsLimitHits > 0) return 'process-limit';
  return 'exit';
}

function killQuietly(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
