import { posix } from 'node:path';
import { imageRefusal, type ImagePolicy } from '../runner';
import type { HookContainer, MountVolume } from './hook-input';

/**
 * What GitHub's runner asks prepare_job to mount, and what Stockade mounts: only the runner's own
 * directories at the container paths the runner uses (actions/runner ContainerInfo: `/__w` the work
 * directory with `_temp`, `_actions`, `_tool`; `/__e` the externals, read-only; `/github/home`,
 * `/github/workflow`), each from inside the runner's own directory. The Docker socket the runner
 * always lists is dropped with a notice; any other host path fails the job.
 */
export const RUNNER_TARGETS = ['/__w', '/__w/_temp', '/__w/_actions', '/__w/_tool', '/__e', '/github/home', '/github/workflow'] as const;

export interface PlannedMount {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface JobContainerPlan {
  image: string;
  env: Record<string, string>;
  workingDirectory: string;
  mounts: PlannedMount[];
  /** The runner's own directory (the parent of its work directory): every source lies inside it. */
  runnerRoot: string;
}

export interface PlanResult {
  plan?: JobContainerPlan;
  errors: string[];
  notices: string[];
}

export interface PlanOptions {
  /** Runner images by name: `stockade/<name>` in `container:` maps to them. */
  images: Record<string, string>;
  policy: ImagePolicy;
}

const isDockerSocket = (m: MountVolume) => /(^|\/)docker\.sock$/.test(m.sourceVolumePath) || /(^|\/)docker\.sock$/.test(m.targetVolumePath);

const inside = (root: string, p: string) => p === root || p.startsWith(`${root}/`);

/** The image a `container:` names, Stockade's own runner images by `stockade/<name>`, or why it may not run. */
export function resolveJobImage(image: string, o: PlanOptions): { image: string } | { error: string } {
  const m = /^stockade\/([a-z0-9-]+)(?::.*)?$/.exec(image.trim());
  if (m) {
    const ref = o.images[m[1]!];
    return ref ? { image: ref } : { error: `container image '${image}' names no Stockade runner image; there are ${Object.keys(o.images).sort().join(', ') || 'none'} (stockade images build)` };
  }
  const why = imageRefusal(image, o.policy, o.images);
  return why ? { error: `container: ${why}` } : { image: image.replace(/^docker:\/\//, '').trim() };
}

/** Pure: the job container prepare_job was given → what Stockade will run, with every refusal named. */
export function planJobContainer(c: HookContainer, o: PlanOptions): PlanResult {
  const errors: string[] = [];
  const notices: string[] = [];
  if (!c.image) errors.push('the job has no container: Stockade runs every step in a container of the job image; add `container: stockade/base` (or another runner image) to the job');
  if (c.createOptions?.trim()) errors.push(`container.options '${c.createOptions.trim().slice(0, 200)}' is not supported: the sandbox decides the container's options`);
  if (c.userMountVolumes.length) errors.push(`container.volumes is not supported: host paths are never mounted into a job (${c.userMountVolumes.map((v) => v.sourceVolumePath).join(', ').slice(0, 200)})`);
  if (c.portMappings.length) errors.push('container.ports is not supported: steps have no network of their own to publish');
  const work = c.systemMountVolumes.find((m) => m.targetVolumePath === '/__w');
  const runnerRoot = work ? posix.dirname(posix.normalize(work.sourceVolumePath)) : '';
  if (!work || !posix.isAbsolute(work.sourceVolumePath)) errors.push("the runner passed no work directory mounted at /__w; this hook needs GitHub's runner");
  const mounts: PlannedMount[] = [];
  for (const m of c.systemMountVolumes) {
    if (isDockerSocket(m)) {
      notices.push(`the Docker socket (${m.sourceVolumePath}) is never mounted into a Stockade job; steps that need Docker do not work here`);
      continue;
    }
    const source = posix.normalize(m.sourceVolumePath);
    if (!(RUNNER_TARGETS as readonly string[]).includes(m.targetVolumePath)) {
      errors.push(`the runner asked to mount ${m.sourceVolumePath} at ${m.targetVolumePath}; only the runner's own directories are mounted (${RUNNER_TARGETS.join(', ')})`);
      continue;
    }
    if (!posix.isAbsolute(source) || !runnerRoot || !inside(runnerRoot, source) || source === runnerRoot) {
      errors.push(`the runner asked to mount the host path ${m.sourceVolumePath} at ${m.targetVolumePath}, outside the runner's directory ${runnerRoot || '(unknown)'}; it is refused`);
      continue;
    }
    mounts.push({ source, target: m.targetVolumePath, readOnly: m.targetVolumePath === '/__e' ? true : m.readOnly });
  }
  const wd = posix.normalize(c.workingDirectory ?? '/__w');
  if (!inside('/__w', wd)) errors.push(`the job's working directory ${c.workingDirectory} is outside /__w`);
  let image = '';
  if (c.image) {
    const r = resolveJobImage(c.image, o);
    if ('error' in r) errors.push(r.error);
    else image = r.image;
  }
  if (errors.length) return { errors, notices };
  return { plan: { image, env: c.environmentVariables, workingDirectory: wd, mounts, runnerRoot }, errors, notices };
}
