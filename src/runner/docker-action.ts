import { posix } from 'node:path';
import { evaluateCondition, interpolate, type DockerRuns, type StepModel } from '../workflow';
import { buildActionImage } from './build-action';
import { DEFAULT_IMAGE_POLICY, imageRefusal, mapImage } from './image-policy';
import { JOB_PATHS } from './job-paths';
import { LogSink } from './step-log';
import { scopeStatus, stepContexts, toResult } from './run-step';
import { runScript } from './run-script';
import type { Executed, Scope, StepDeps, StepRun } from './step-types';

/** What a Docker action is where it runs: its image and where its files sit on the host (for a Dockerfile). */
export interface DockerAction {
  runs: DockerRuns;
  /** Host directory of the action's files (the job's read-only copy); '' for `uses: docker://…`. */
  hostDir: string;
  /** Host directory the Dockerfile must lie in (the copy's root). */
  hostRoot: string;
}

/**
 * The image a Docker action runs in: `docker://IMAGE` through the operator's map and image policy
 * (nothing is pulled), or its Dockerfile built under the sandbox's rules (build-action.ts).
 */
async function actionImage(deps: StepDeps, run: StepRun, a: DockerAction, sink: LogSink): Promise<string> {
  const policy = run.settings.imagePolicy ?? DEFAULT_IMAGE_POLICY;
  if (a.runs.image.startsWith('docker://')) {
    const image = mapImage(a.runs.image, policy);
    const refused = imageRefusal(image, policy, run.settings.images);
    if (refused) throw new Error(`the action's image: ${refused}`);
    if (!(await deps.sandbox.deps.engine.imageExists(image))) throw new Error(`the action's image ${image} is not present on this host (no registry is reachable; build it locally or map it with --container-map)`);
    return image;
  }
  const asPodmanUser = run.settings.podmanUser;
  if (!asPodmanUser) throw new Error(`the action is built from ${a.runs.image}, and this runner builds no images`);
  const dockerfile = posix.normalize(posix.join(a.hostDir, a.runs.image));
  const built = await buildActionImage(
    { sandbox: deps.sandbox, policy, images: run.settings.images ?? {}, asPodmanUser, seccompProfilePath: deps.sandbox.seccompProfilePath, limits: run.settings.limits },
    dockerfile,
    a.hostRoot,
    (line) => sink.write('stdout', line),
    deps.signal ?? new AbortController().signal,
  );
  if ('error' in built) throw new Error(built.error);
  return built.image;
}

/**
 * A Docker action's `pre-entrypoint`, run before the job's first step as GitHub runs every pre step
 * (the image is built then, as GitHub's "Build container for action use" is): same image, inputs and
 * arguments as the main step, only the entry point differs.
 */
export async function runDockerPre(deps: StepDeps, run: StepRun, scope: Scope, step: StepModel, a: DockerAction, inputs: Record<string, string>, inputEnv: Record<string, string>, contexts: Record<string, unknown>, sink: LogSink): Promise<Executed> {
  const image = await actionImage(deps, run, a, sink);
  const status = scopeStatus(run, scope, deps.signal);
  const ctx = { ...contexts, inputs };
  const runsEnv = Object.fromEntries(Object.entries(a.runs.env).map(([k, v]) => [k, interpolate(v, ctx, status)]));
  const argv = await argvFor(deps, image, a.runs.preEntrypoint, a.runs.args.map((x) => interpolate(x, ctx, status)));
  const actionId = step.id ?? `__pre_${step.index}`;
  return runScript(deps, run, scope, sink, { label: `pre-${step.index}`, actionId, image, argv: () => argv, env: runsEnv, extraEnv: inputEnv, workdir: JOB_PATHS.workspace, deadline: run.deadline });
}

/** Docker's rule: an entry point given replaces the image's (and its command); arguments given replace its command. */
async function argvFor(deps: StepDeps, image: string, entrypoint: string | undefined, args: string[]): Promise<string[]> {
  const cfg = await deps.sandbox.deps.engine.imageCommand(image);
  const argv = entrypoint ? [entrypoint, ...args] : [...cfg.entrypoint, ...(args.length ? args : cfg.cmd)];
  if (!argv.length) throw new Error(`the image ${image} has no entry point or command, and the action names none`);
  return argv;
}

/**
 * Runs a Docker container action as a step under the same sandbox: inputs as INPUT_*, `runs.env`
 * and `runs.args` evaluated with the step's contexts, the workspace as the working directory,
 * `post-entrypoint` among the job's post steps (`pre-entrypoint` ran at the job's start: runDockerPre).
 */
export async function runDockerAction(deps: StepDeps, run: StepRun, scope: Scope, step: StepModel, a: DockerAction, inputs: Record<string, string>, inputEnv: Record<string, string>, env: Record<string, string>, contexts: Record<string, unknown>, sink: LogSink, deadline: number): Promise<Executed> {
  const image = await actionImage(deps, run, a, sink);
  const status = scopeStatus(run, scope, deps.signal);
  const ctx = { ...contexts, inputs };
  const runsEnv = Object.fromEntries(Object.entries(a.runs.env).map(([k, v]) => [k, interpolate(v, ctx, status)]));
  const args = a.runs.args.map((x) => interpolate(x, ctx, status));
  const actionId = step.id ?? `__${(step.uses ?? 'docker').replace(/[^A-Za-z0-9_]/g, '_')}`;
  const once = async (label: string, entrypoint: string | undefined, out: LogSink, until: number) => {
    const argv = await argvFor(deps, image, entrypoint, args);
    return runScript(deps, run, scope, out, { label, actionId, image, argv: () => argv, env: { ...env, ...runsEnv }, extraEnv: inputEnv, workdir: JOB_PATHS.workspace, deadline: until });
  };
  const e = await once(String(step.index), a.runs.entrypoint, sink, deadline);
  const post = a.runs.postEntrypoint;
  if (post) {
    const postName = `Post ${step.name ?? step.uses}`;
    run.state.post.push({
      name: postName,
      run: async () => {
        const out = new LogSink(run.state.masker, (stream, text) => deps.observer?.line?.(run.job.id, postName, stream, text));
        const st = scopeStatus(run, scope.job ?? scope, deps.signal);
        if (!evaluateCondition(a.runs.postIf ?? 'always()', { ...stepContexts(run, scope), env }, st)) return toResult(run, step.index, undefined, postName, out, undefined, false);
        deps.observer?.stepStarted?.(run.job.id, { index: step.index, name: postName });
        return toResult(run, step.index, undefined, postName, out, await once(`post-${step.index}`, post, out, run.deadline), false);
      },
    });
  }
  return e;
}
