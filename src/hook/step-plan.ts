import { lstatSync } from 'node:fs';
import { posix } from 'node:path';
import type { ServiceRequest } from '../runner';
import type { BindMount } from '../sandbox';
import type { HookContainer } from './hook-input';
import { resolveJobImage, type PlanOptions } from './job-plan';
import type { RunnerDirs } from './runner-dirs';

const inside = (root: string, p: string) => p === root || p.startsWith(`${root}/`);
const isDockerSocket = (path: string) => /(^|\/)docker\.sock$/.test(path);

/**
 * The runner's service containers as the sandbox runs services: a valid name, an image by the image
 * policy, health options only (checked when they start), no volumes; the Docker socket dropped with a
 * notice. Each port maps to itself: steps reach a service by name and its own port on the job network.
 */
export function planServices(given: HookContainer[], o: PlanOptions): { list: ServiceRequest[]; ports: Array<Record<string, string>>; notices: string[] } | { errors: string[] } {
  const errors: string[] = [];
  const notices: string[] = [];
  const list: ServiceRequest[] = [];
  const ports: Array<Record<string, string>> = [];
  for (const [i, s] of given.entries()) {
    const name = s.contextName ?? '';
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(name)) {
      errors.push(`service ${i + 1} has no valid name ('${name.slice(0, 40)}')`);
      continue;
    }
    const volumes = s.userMountVolumes.filter((v) => {
      if (!isDockerSocket(v.sourceVolumePath)) return true;
      notices.push(`service ${name}: the Docker socket is never mounted`);
      return false;
    });
    if (volumes.length) errors.push(`service ${name}: volumes are not supported: host paths are never mounted (${volumes.map((v) => v.sourceVolumePath).join(', ').slice(0, 200)})`);
    const image = s.image ? resolveJobImage(s.image, o) : { error: `service ${name} names no image` };
    if ('error' in image) {
      errors.push(`service ${name}: ${image.error}`);
      continue;
    }
    list.push({ name, image: image.image, env: s.environmentVariables, options: s.createOptions, ports: s.portMappings, volumes: [] });
    ports.push(Object.fromEntries(s.portMappings.map((p) => p.split(':').pop()!.split('/')[0]!).filter((p) => /^\d{1,5}$/.test(p)).map((p) => [p, p])));
  }
  return errors.length ? { errors: [...notices, ...errors] } : { list, ports, notices };
}

/**
 * A container action (run_container_step) as ContainerActionHandler hands it over: an image by the
 * image policy or a Dockerfile (built by build-action.ts), no options or volumes, and only mounts under /github from the job's work directory
 * (never `_actions`), owned by the runner's user or the steps' uid.
 */
export function planContainerStep(c: HookContainer, dirs: RunnerDirs, o: PlanOptions & { runnerUid: number; canBuild: boolean }): { image: string; binds: BindMount[] } | { errors: string[] } {
  const errors: string[] = [];
  if (c.dockerfile && !o.canBuild) errors.push(`the action is built from a Dockerfile (${c.dockerfile.slice(0, 200)}); this broker builds no images: use an action published as an image (docker://…)`);
  if (c.createOptions?.trim()) errors.push(`container options '${c.createOptions.trim().slice(0, 200)}' are not supported: the sandbox decides the container's options`);
  if (c.userMountVolumes.length) errors.push('volumes of a container step are not supported: host paths are never mounted');
  let image = '';
  if (!c.dockerfile) {
    const r = c.image ? resolveJobImage(c.image, o) : { error: 'the container step names no image' };
    if ('error' in r) errors.push(r.error);
    else image = r.image;
  }
  const binds: BindMount[] = [];
  for (const m of c.systemMountVolumes) {
    if (isDockerSocket(m.sourceVolumePath)) continue;
    const source = posix.normalize(m.sourceVolumePath);
    if (!inside(dirs.work, source) || inside(posix.join(dirs.work, '_actions'), source)) {
      errors.push(`the runner asked to mount ${m.sourceVolumePath} at ${m.targetVolumePath}, outside the job's work directory ${dirs.work}; it is refused`);
      continue;
    }
    if (!inside('/github', m.targetVolumePath)) {
      errors.push(`the runner asked to mount at ${m.targetVolumePath}; a container step gets only /github/*`);
      continue;
    }
    binds.push({ hostPath: source, target: m.targetVolumePath, readOnly: m.readOnly });
  }
  for (const b of binds) {
    try {
      if (![dirs.uid, o.runnerUid].includes(lstatSync(b.hostPath).uid)) errors.push(`${b.hostPath} does not belong to the runner's user`);
    } catch {
      errors.push(`${b.hostPath} does not exist`);
    }
  }
  return errors.length ? { errors } : { image, binds };
}
