import { StockadeError, silentLogger } from '../common';
import type { AppliedLimits } from './limit-enforcer';
import { drainFrames, OutputLines, type OutputLine } from './output-lines';
import { applyProcessRlimits } from './process-rlimits';
import type { SandboxDeps } from './run-step-container';
import type { StepSpec } from './step-spec';
import { toCreateOptions } from './to-create-options';
import { validateStepSpec } from './validate-step-spec';

export interface ServiceContainer {
  id: string;
  name: string;
  /** Resolves when the service's process has ended (its output stream closed). */
  exited: Promise<void>;
  /** Kills and removes the container and its cgroups (idempotent). */
  stop(): Promise<void>;
  /** Whether its process has ended. */
  ended(): boolean;
  /** Moves its wall-time limit to `epochMs` (a container made ahead gets the deadline of the job that takes it). */
  stopAt(epochMs: number): void;
}

/**
 * A long-running container (a job's service): the same policy and the same
 * verified limits as a step container, started and left running until `stop()`.
 * Its wall-time limit (`limits.timeoutMs`) kills it if the job forgets to.
 */
export async function startServiceContainer(deps: SandboxDeps, spec: StepSpec, onLine: (line: OutputLine) => void): Promise<ServiceContainer> {
  const log = (deps.logger ?? silentLogger()).child({ container: spec.name });
  validateStepSpec(spec);
  let id: string | undefined;
  let applied: AppliedLimits | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (timer) clearTimeout(timer);
      if (id) await deps.engine.removeContainer(id).catch((e: unknown) => log.error({ err: e }, 'service remove failed'));
      if (applied) await applied.remove().catch((e: unknown) => log.error({ err: e }, 'cgroup remove failed'));
    })());
  try {
    id = await deps.engine.createContainer(toCreateOptions(spec, deps.limits.mode, deps.host));
    const pid = await deps.engine.initContainer(id);
    applied = await deps.limits.apply(spec.name, pid, spec.limits);
    await applyProcessRlimits(pid, { nofile: Math.min(spec.limits.nofile, deps.host.nofileHard), core: 0 });
    const stream = await deps.engine.attach(id);
    const output = new OutputLines({ maxBytes: spec.limits.outputBytes, maxLineBytes: spec.limits.maxLineBytes }, onLine);
    let ended = false;
    const exited = drainFrames(stream, output).finally(() => (ended = true));
    await deps.engine.start(id);
    const stopAt = (at: number) => {
      if (stopped) return;
      clearTimeout(timer);
      timer = setTimeout(() => void stop(), Math.min(2 ** 31 - 1, Math.max(0, at - Date.now())));
    };
    stopAt(Date.now() + spec.limits.timeoutMs);
    return { id, name: spec.name, exited, stop, ended: () => ended, stopAt };
  } catch (e) {
    await stop();
    if (e instanceof StockadeError) throw e;
    throw new StockadeError('ENGINE_FAILED', `service container ${spec.name} did not start: ${(e as Error).message}`, { cause: e });
  }
}
