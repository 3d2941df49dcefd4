import { processTag } from './labels';
import { StockadeError, silentLogger, type Logger } from '../common';
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

/**
 * One step, one fresh container: validate → create → init → limits applied and
 * verified → attach → start → stream bounded output → wait (with timeout, output
 * cap and cancellation) → remove. The container and its cgroups are removed in
 * `finally`, whatever happened.
 */
export async function runStepContainer(
  deps: SandboxDeps,
  spec: StepSpec,
  onLine: (line: OutputLine) => void,
  signal?: AbortSignal,
): Promise<StepOutcome> {
  const now = deps.now ?? Date.now;
  const log = (deps.logger ?? silentLogger()).child({ container: spec.name });
  const started = now();
  validateStepSpec(spec);
  let id: string | undefined;
  let applied: AppliedLimits | undefined;
  let counters: NetnsCounters | undefined;
  let stop: StopReason | undefined;
  const output = new OutputLines({ maxBytes: spec.limits.outputBytes, maxLineBytes: spec.limits.maxLineBytes }, onLine);
  const timers: NodeJS.Timeout[] = [];
  let initPid: number | undefined;
  let initTag: string | undefined;
  const finish = (exitCode: number | null, reason: ExitReason, error?: string, usage: StepUsage = applied?.usage() ?? NO_USAGE): StepOutcome => ({
    exitCode,
    reason,
    ok: reason === 'exit' && exitCode === 0,
    durationMs: now() - started,
    usage,
    outputBytes: output.bytes,
    truncatedLines: output.truncatedLines,
    containerId: id,
    error,
  });
  try {
    if (signal?.aborted) return finish(null, 'cancelled');
    id = await deps.engine.createContainer(toCreateOptions(spec, deps.limits.mode, deps.host));
    const pid = await deps.engine.initContainer(id);
    initTag = processTag(pid);
    initPid = pid;
    // In a namespace shared with the job's forwarder (loopback only) too: steps run one at a time.
    counters = NetnsCounters.open(pid);
    applied = await deps.limits.apply(spec.name, pid, spec.limits);
    await applyProcessRlimits(pid, { nofile: Math.min(spec.limits.nofile, deps.host.nofileHard), core: 0 });
    const stream = await deps.engine.attach(id);
    const ended = drainFrames(stream, output);
    const stopper = (reason: StopReason, graceMs: number) => {
      if (stop) return;
      stop = reason;
      log.info({ reason }, 'stopping step container');
      void deps.engine.kill(id!, graceMs > 0 ? 'SIGTERM' : 'SIGKILL').catch((e: unknown) => log.warn({ err: e }, 'kill failed'));
      if (graceMs > 0) timers.push(setTimeout(() => void deps.engine.kill(id!, 'SIGKILL').catch(() => undefined), graceMs));
    };
    output.onOverflow = () => stopper('output-limit', 0);
    const onAbort = () => stopper('cancelled', spec.limits.killGraceMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    timers.push(setTimeout(() => stopper('timeout', spec.limits.killGraceMs), spec.limits.timeoutMs));
    try {
      await deps.engine.start(id);
      await ended;
      // The output ended with the container's init: the counters are final; read them while waiting.
      const [exitCode, noRouteAttempts] = await Promise.all([deps.engine.wait(id), counters?.read()]);
      const usage = applied.usage();
      return { ...finish(exitCode, classify(stop, exitCode, usage), undefined, usage), noRouteAttempts };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  } catch (e) {
    let message = e instanceof StockadeError ? e.describe() : (e as Error).message;
    log.error({ err: e }, 'step container failed');
    if (e instanceof StockadeError && e.code === 'LIMITS_NOT_ENFORCED') throw e;
    if (!(await Promise.resolve().then(() => deps.engine.ping()).then(() => true, () => false))) {
      // The engine is gone (its API service was killed or crashed): the container would run on under
      // its conmon with nobody to stop it. Its init, which this step started, is ended by PID (checked
      // by start time against reuse), so the step's processes end with it.
      const killed = initPid !== undefined && initTag !== undefined && processTag(initPid) === initTag && killQuietly(initPid);
      message = `the Podman API service stopped answering while the step ran (${message}); ${killed ? "the step's processes were ended by PID" : 'the step had not started'}, and what is left of its container is removed once the service is back`;
    }
    return finish(null, stop ?? 'sandbox-error', message);
  } finally {
    timers.forEach(clearTimeout);
    counters?.close();
    if (id) await deps.engine.removeContainer(id).catch((e: unknown) => log.error({ err: e }, 'container remove failed'));
    if (applied) await applied.remove().catch((e: unknown) => log.error({ err: e }, 'cgroup remove failed'));
  }
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
