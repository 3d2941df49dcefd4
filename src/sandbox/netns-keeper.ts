import type { ContainerEngine } from './engine';
import { DEFAULT_LIMITS, type StepSpec } from './step-spec';
import { toCreateOptions, type HostRlimits } from './to-create-options';
import type { CgroupMode } from './to-create-options';

/** Label of the one container that keeps rootless Podman's network namespace up (never reaped). */
export const LABEL_KEEPER = 'io.stockade.keeper';
export const KEEPER_NAME = 'stockade-netns-keeper';
export const KEEPER_NETWORK = 'stockade-netns-keeper';

/**
 * Rootless Podman 4.3 runs one slirp4netns for the network namespace all bridge networks live
 * in, starts it when the first container on a network starts and kills it when the last one
 * stops, without ever reaping it: the API service collects one zombie per job that had a
 * network (they count against the runner user's process limit, for ever). One idle container
 * on an internal network of its own keeps that namespace, and its one slirp4netns, alive, so
 * jobs no longer start and kill one each. It runs `sleep infinity` under the step policy
 * (no capabilities, our seccomp profile, read-only root, no route out) and holds nothing.
 */
export async function ensureNetnsKeeper(deps: { engine: ContainerEngine; limits: { mode: CgroupMode }; host: HostRlimits }, o: { image: string; seccompProfilePath: string }): Promise<void> {
  const engine = deps.engine;
  const label = `${LABEL_KEEPER}=rootless-netns`;
  const existing = await engine.listContainers(label);
  if (existing.some((c) => c.running)) return;
  if (!(await engine.listNetworks(label)).some((n) => n.id === KEEPER_NETWORK)) {
    // Another runner may create it at the same moment: the list after the attempt decides.
    await engine.createNetwork(KEEPER_NETWORK, { [LABEL_KEEPER]: 'rootless-netns' }, { internal: true }).catch(async (e: unknown) => {
      if (!(await engine.listNetworks(label)).some((n) => n.id === KEEPER_NETWORK)) throw e;
    });
  }
  const id = existing[0]?.id ?? (await createKeeper(deps, o, label));
  const started = await engine.start(id).then(() => true, () => false);
  if (started || (await engine.listContainers(label)).some((c) => c.running)) return;
  // A keeper left by a machine that stopped (its process gone, Podman's record saying "stopping")
  // cannot be started again: it is replaced by a new one.
  await engine.removeContainer(id).catch(() => undefined);
  const fresh = await createKeeper(deps, o, label);
  await engine.start(fresh).catch(async (e: unknown) => {
    if (!(await engine.listContainers(label)).some((c) => c.running)) throw e;
  });
}

async function createKeeper(deps: { engine: ContainerEngine; limits: { mode: CgroupMode }; host: HostRlimits }, o: { image: string; seccompProfilePath: string }, label: string): Promise<string> {
  const spec: StepSpec = {
    name: KEEPER_NAME,
    image: o.image,
    argv: ['sleep', 'infinity'],
    env: {},
    workdir: '/',
    mounts: [],
    limits: { ...DEFAULT_LIMITS, memoryBytes: 16 * 1024 ** 2, pids: 16, cpus: 0.1, tmpfsBytes: 1024 ** 2 },
    network: { mode: 'internal', network: KEEPER_NETWORK, dns: ['127.0.0.1'] },
    security: { seccompProfilePath: o.seccompProfilePath, readOnlyRoot: true },
    labels: { [LABEL_KEEPER]: 'rootless-netns' },
  };
  try {
    return await deps.engine.createContainer(toCreateOptions(spec, deps.limits.mode, deps.host));
  } catch (e) {
    // Another runner created it at the same moment.
    const id = (await deps.engine.listContainers(label))[0]?.id;
    if (!id) throw e;
    return id;
  }
}
