import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { discardPreparedStep, prepareStepContainer, writeVolumeFile, LABEL_STEP, type PreparedStep, type StepSpec } from '../sandbox';
import { JOB_PATHS } from './job-paths';
import type { StepDeps, StepRun } from './run-step';

/**
 * The next step's container, made while the current one runs (issue 17): created, initialised and
 * limited with a launcher as its command, since the step's environment and script depend on the
 * steps before it. At its start the step's environment, directory and command are written to a
 * launch file in the job's temp volume (0600, created exclusively, no link followed), and the
 * launcher sources it, removes it and execs the command. Nothing of the job runs while the file
 * exists: the previous step's processes ended with its container's init.
 */
export interface WarmStep {
  fingerprint: string;
  launchName: string;
  fifoName: string;
  prepared: Promise<PreparedStep | undefined>;
}

/** How long a step must have run before the next one is prepared: shorter steps would only compete with it for Podman. */
export const WARM_AFTER_MS = 100;

/**
 * The prepared container's command: make its FIFO (in the temp volume, mode 0600), wait on it for
 * the runner's go, then source the launch file. Every way a step could tamper with the FIFO (open it,
 * write it, replace it) ends the launcher early or leaves it without a reader, and the runner then
 * starts the next step cold: the launch file itself is created only after the step before has ended.
 */
const LAUNCHER = `f=$1; p=$2; mkfifo -m 600 "$p" || exit 126; read -r _ < "$p"; rm -f -- "$p"; if [ ! -f "$f" ] || [ -h "$f" ]; then echo "##[error]stockade: the step's launch file is missing" >&2; exit 127; fi; . "$f"`;

/** What must match for a prepared container to serve a step: everything but its name, command, environment, directory and deadline. */
export function fingerprint(spec: StepSpec): string {
  return JSON.stringify({ image: spec.image, mounts: spec.mounts, binds: spec.binds ?? [], network: spec.network, security: spec.security, limits: { ...spec.limits, timeoutMs: 0 }, sysctls: spec.sysctls ?? {}, userns: spec.userns ?? '' });
}

/** Steps in the runner's own images only: a job's `container:` image may lack /bin/sh or env. */
export function mayWarm(run: StepRun, spec: StepSpec): boolean {
  // STOCKADE_PREWARM=0 turns it off (the benchmarks measure both ways in one run).
  return run.settings.prewarm !== false && process.env.STOCKADE_PREWARM !== '0' && !run.job.container && spec.image === run.image && !spec.binds?.length;
}

/** Prepares a container shaped like `like` for the next step, unless one is ready or on its way. */
export function startWarm(deps: StepDeps, run: StepRun, like: StepSpec): void {
  if (run.state.warm || deps.signal?.aborted) return;
  const launchName = `_stockade_launch_${randomUUID()}.sh`;
  const fifoName = `_stockade_go_${randomUUID()}`;
  const spec: StepSpec = {
    ...like,
    name: `stockade-${run.volumes.key}-${++run.state.containers}`,
    argv: ['/bin/sh', '-c', LAUNCHER, 'stockade-launch', `${JOB_PATHS.temp}/${launchName}`, `${JOB_PATHS.temp}/${fifoName}`],
    env: {},
    workdir: '/',
    labels: { ...like.labels, [LABEL_STEP]: 'prepared' },
  };
  const prepared = prepareStepContainer({ ...deps.sandbox.deps, logger: deps.logger.child({ step: 'prepared' }) }, spec, { start: true }).catch((e: unknown) => {
    deps.logger.debug({ err: e }, 'the next step could not be prepared ahead; it starts cold');
    return undefined;
  });
  run.state.warm = { fingerprint: fingerprint(like), launchName, fifoName, prepared };
}

/**
 * The prepared container if it fits `spec` and its launcher is waiting (else it is removed, off the
 * critical path, and the step starts cold), with its launch file written and its go ready.
 */
export async function takeWarm(deps: StepDeps, run: StepRun, spec: StepSpec): Promise<{ prepared: PreparedStep; go: () => Promise<void> } | undefined> {
  const warm = run.state.warm;
  if (!warm) return undefined;
  run.state.warm = undefined;
  const prepared = await warm.prepared;
  if (!prepared) return undefined;
  const drop = (why?: unknown) => {
    if (why) deps.logger.debug({ err: why }, 'the prepared container cannot serve this step; it starts cold');
    run.state.pending.push(discardPreparedStep(deps.sandbox.deps, prepared));
    return undefined;
  };
  if (warm.fingerprint !== fingerprint(spec) || prepared.ended?.()) return drop();
  let fifo: FileHandle;
  try {
    // Its launcher is blocked opening the FIFO for reading: a writer's open succeeds at once (ENXIO: nobody is waiting).
    fifo = await open(childPath(run.volumes.mountpoint.temp, warm.fifoName), constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    if (!(await fifo.stat()).isFIFO()) {
      await fifo.close();
      return drop(new Error('not a FIFO'));
    }
  } catch (e) {
    return drop(e);
  }
  try {
    await writeVolumeFile(run.volumes.mountpoint.temp, warm.launchName, launchScript(spec, `${JOB_PATHS.temp}/${warm.launchName}`), run.volumes.owner, 0o600);
  } catch (e) {
    await fifo.close();
    return drop(e);
  }
  const go = async () => {
    try {
      await fifo.write('\n');
    } finally {
      await fifo.close();
    }
  };
  return { prepared: { ...prepared, spec: { ...prepared.spec, env: spec.env, argv: spec.argv, workdir: spec.workdir } }, go };
}

/** At the job's end: a prepared container no step took is removed, and every deferred removal awaited. */
export async function settleContainers(deps: StepDeps, run: Pick<StepRun, 'state'>): Promise<void> {
  const warm = run.state.warm;
  run.state.warm = undefined;
  const prepared = await warm?.prepared;
  if (prepared) run.state.pending.push(discardPreparedStep(deps.sandbox.deps, prepared));
  await Promise.allSettled(run.state.pending.splice(0));
}

/** sh single quotes: every byte literal, a quote as '\'' . */
const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;

/** The launch file: remove itself, enter the step's directory (made if missing, as the runtime does), exec the command with exactly the step's environment on top of the container's. */
export function launchScript(spec: StepSpec, path: string): string {
  const env = Object.entries(spec.env).map(([k, v]) => q(`${k}=${v}`));
  return [
    `rm -f -- ${q(path)}`,
    `cd -- ${q(spec.workdir)} 2>/dev/null || { mkdir -p -- ${q(spec.workdir)} && cd -- ${q(spec.workdir)}; } || exit 1`,
    // cd set OLDPWD, which a step started by the runtime does not have.
    'unset OLDPWD',
    `exec /usr/bin/env -- ${[...env, ...spec.argv.map(q)].join(' ')}`,
    '',
  ].join('\n');
}

/** A direct child of the volume's root (names are the runner's own: no separator, no dot-dot). */
function childPath(root: string, name: string): string {
  if (name.includes('/') || name === '..' || name === '.') throw new Error(`bad name ${name}`);
  return normalize(join(root, name));
}
