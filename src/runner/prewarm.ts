import { randomUUID } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { discardPreparedStep, openFifoWriter, prepareStepContainer, removeVolumeFile, writeVolumeFile, LABEL_STEP, type PreparedStep, type StepSpec } from '../sandbox';
import { JOB_PATHS } from './job-paths';
import type { StepDeps, StepRun } from './step-types';

/**
 * The next step's container, made while the current one runs (issue 17): created, initialised and
 * limited with a launcher as its command, since the step's environment and script depend on the
 * steps before it. At its start the step's environment, directory and command are written to a
 * launch file in the job's temp volume (0600, created exclusively, no link followed), and the
 * launcher sources it and execs the command; the runner removes it once the step has ended. No
 * other step of the job runs while the file exists: the previous step's processes ended with its
 * container's init, and the next one starts after the removal.
 */
export interface WarmStep {
  fingerprint: string;
  launchName: string;
  fifoName: string;
  /** What the go says: the launcher runs nothing on any other line. */
  nonce: string;
  /** The container, and the FIFO's write end (opened once its launcher waits on it; its name is gone by then). */
  prepared: Promise<{ step: PreparedStep; fifo: FileHandle } | undefined>;
}

/** How long a step must have run before the next one is prepared: shorter steps would only compete with it for Podman. */
export const WARM_AFTER_MS = 100;

/**
 * The prepared container's command: make its FIFO (in the temp volume, mode 0600), wait on it for
 * the runner's go (a nonce only the runner and the launcher's argv know: another container sees
 * neither), then source the launch file. Every way a step could tamper with the FIFO (open it, write
 * it, hold it, replace it) ends the launcher early or leaves it without a reader, and the runner then
 * starts the next step cold: the launch file itself is created only after the step before has ended.
 */
const LAUNCHER = `f=$1; p=$2; n=$3; mkfifo -m 600 "$p" || exit 126; IFS= read -r go < "$p"; [ "$go" = "$n" ] || exit 125; if [ ! -f "$f" ] || [ -h "$f" ]; then echo "##[error]stockade: the step's launch file is missing" >&2; exit 127; fi; . "$f"`;

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
  const nonce = randomUUID();
  const spec: StepSpec = {
    ...like,
    name: `stockade-${run.volumes.key}-${++run.state.containers}`,
    argv: ['/bin/sh', '-c', LAUNCHER, 'stockade-launch', `${JOB_PATHS.temp}/${launchName}`, `${JOB_PATHS.temp}/${fifoName}`, nonce],
    env: {},
    workdir: '/',
    labels: { ...like.labels, [LABEL_STEP]: 'prepared' },
  };
  const sdeps = { ...deps.sandbox.deps, logger: deps.logger.child({ step: 'prepared' }) };
  const temp = run.volumes.mountpoint.temp;
  const prepared = prepareStepContainer(sdeps, spec, { start: true })
    .then(async (p) => {
      // Its launcher makes the FIFO just after the start and waits on it: ready once the write end is open (still off the step's path).
      // The write end once its launcher waits on it (its name is removed at once: no step sees it past these few milliseconds).
      const fifo = await openFifoWriter(temp, fifoName, () => !!p.ended?.(), FIFO_WAIT_MS);
      if (fifo) return { step: p, fifo };
      run.state.pending.push(discardPreparedStep(sdeps, p));
      throw new Error(`its launcher was not waiting on its FIFO within ${FIFO_WAIT_MS} ms`);
    })
    .catch((e: unknown) => {
      deps.logger.debug({ err: e }, 'the next step could not be prepared ahead; it starts cold');
      return undefined;
    });
  run.state.warm = { fingerprint: fingerprint(like), launchName, fifoName, nonce, prepared };
}

/**
 * The prepared container if it fits `spec` and its launcher is waiting (else it is removed, off the
 * critical path, and the step starts cold), with its launch file written and its go ready.
 */
export async function takeWarm(deps: StepDeps, run: StepRun, spec: StepSpec): Promise<{ prepared: PreparedStep; go: () => Promise<void>; done: () => Promise<void> } | undefined> {
  const warm = run.state.warm;
  if (!warm) return undefined;
  run.state.warm = undefined;
  const ready = await warm.prepared;
  if (!ready) return undefined;
  const { step: prepared, fifo } = ready;
  const drop = (why?: unknown) => {
    if (why) deps.logger.debug({ err: why }, 'the prepared container cannot serve this step; it starts cold');
    run.state.pending.push(discardHeld(deps, prepared, fifo));
    return undefined;
  };
  if (warm.fingerprint !== fingerprint(spec) || prepared.ended?.()) return drop();
  const temp = run.volumes.mountpoint.temp;
  try {
    await writeVolumeFile(temp, warm.launchName, launchScript(spec), run.volumes.owner, 0o600);
  } catch (e) {
    return drop(e);
  }
  const go = async () => {
    try {
      await fifo.write(`${warm.nonce}\n`);
    } finally {
      await fifo.close();
    }
  };
  // Removed by the runner once the step has ended, before any later step runs: it holds this step's environment.
  const done = () => removeVolumeFile(temp, warm.launchName).catch((e: unknown) => deps.logger.warn({ err: e }, 'the launch file could not be removed'));
  return { prepared: { ...prepared, spec: { ...prepared.spec, env: spec.env, argv: spec.argv, workdir: spec.workdir } }, go, done };
}

/** How long a finished container's removal waits for the next step to start before it starts anyway. */
const REMOVAL_DELAY_MS = 500;

/** A finished container's removal, started when the next step runs (startRemovals) or after REMOVAL_DELAY_MS. */
export function deferRemoval(run: Pick<StepRun, 'state'>, removal: () => Promise<void>): void {
  const d = (run.state.deferred ??= { removals: [] });
  d.removals.push(removal);
  d.timer ??= setTimeout(() => startRemovals(run), REMOVAL_DELAY_MS);
}

/** Starts every deferred removal (tracked in `pending`, awaited before the job's volumes go). */
export function startRemovals(run: Pick<StepRun, 'state'>): void {
  const d = run.state.deferred;
  if (!d) return;
  clearTimeout(d.timer);
  d.timer = undefined;
  for (const removal of d.removals.splice(0)) run.state.pending.push(removal());
}

/** At the job's end: a prepared container no step took is removed, and every deferred removal awaited. */
export async function settleContainers(deps: StepDeps, run: Pick<StepRun, 'state'>): Promise<void> {
  startRemovals(run);
  const warm = run.state.warm;
  run.state.warm = undefined;
  const ready = await warm?.prepared;
  if (ready) {
    run.state.pending.push(discardHeld(deps, ready.step, ready.fifo));
  }
  await Promise.allSettled(run.state.pending.splice(0));
}

/**
 * Removes a prepared container whose FIFO the runner holds, and only then closes the FIFO: closed
 * first, the launcher would exit while Podman force-removes its container, and Podman 4.3 can hang
 * on that race (a conformance run waited on it for 17 minutes).
 */
function discardHeld(deps: StepDeps, step: PreparedStep, fifo: FileHandle): Promise<void> {
  return discardPreparedStep(deps.sandbox.deps, step).finally(() => fifo.close().catch(() => undefined));
}

const FIFO_WAIT_MS = 5000;

/** sh single quotes: every byte literal, a quote as '\'' . */
const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;

/** The launch file: enter the step's directory (made if missing, as the runtime does), exec the command with exactly the step's environment on top of the container's. */
export function launchScript(spec: StepSpec): string {
  const entries = Object.entries(spec.env);
  // Names the shell can export are exported by its built-in (no process start); any other name (GitHub keeps `INPUT_MY-INPUT`) goes through env(1).
  const plain = entries.every(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k));
  return [
    `cd -- ${q(spec.workdir)} 2>/dev/null || { mkdir -p -- ${q(spec.workdir)} && cd -- ${q(spec.workdir)}; } || exit 1`,
    // cd set OLDPWD, which a step started by the runtime does not have.
    'unset OLDPWD',
    ...(plain ? entries.map(([k, v]) => `export ${k}=${q(v)}`) : []),
    plain ? `exec ${spec.argv.map(q).join(' ')}` : `exec /usr/bin/env -- ${[...entries.map(([k, v]) => q(`${k}=${v}`)), ...spec.argv.map(q)].join(' ')}`,
    '',
  ].join('\n');
}
