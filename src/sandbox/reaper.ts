import type { Logger } from '../common';
import type { ContainerEngine } from './engine';
import { isOwnerAlive, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER, LABEL_STEP } from './labels';
import type { LimitEnforcer } from './limit-enforcer';

export interface ReapReport {
  containers: number;
  volumes: number;
  networks: number;
  cgroups: number;
  /** Job disks (loop-mounted filesystems) of runners that are gone. */
  disks: number;
}

/** This process's jobs that are still running (by their LABEL_JOB key): everything else of its own may go. */
export interface FinishedJobs {
  owner: string;
  active: ReadonlySet<string>;
}

/**
 * Removes every container, volume and step cgroup whose owning runner process is
 * gone (killed, crashed). Objects of live runners are left alone, so several
 * runners can share a host.
 */
export async function reapLeftovers(engine: ContainerEngine, limits: LimitEnforcer, logger: Logger, alive: (owner: string) => boolean = isOwnerAlive, reapDisks: () => Promise<number> = async () => 0, finished?: FinishedJobs): Promise<ReapReport> {
  const report: ReapReport = { containers: 0, volumes: 0, networks: 0, cgroups: 0, disks: 0 };
  // With `finished`: also this process's own objects of jobs that have ended (their removal failed, e.g. while the engine was down).
  const ownFinished = (labels: Record<string, string>) => !!finished && labels[LABEL_OWNER] === finished.owner && !!labels[LABEL_JOB] && !finished.active.has(labels[LABEL_JOB]!);
  const stale = (labels: Record<string, string>) => !alive(labels[LABEL_OWNER] ?? '') || ownFinished(labels);
  // One leftover that cannot be removed is logged and left for the next start; it never stops this one.
  const remove = async (what: string, id: string, f: () => Promise<void>): Promise<boolean> =>
    f().then(
      () => true,
      (e: unknown) => (logger.error({ err: e, [what]: id }, `a dead runner's ${what} could not be removed`), false),
    );
  // Steps first: a step shares the network namespace of its job's results forwarder, and Podman
  // refuses to remove a container others depend on.
  const helper = (c: { labels: Record<string, string> }) => (c.labels[LABEL_STEP] === 'results' ? 1 : 0);
  const containers = (await engine.listContainers(`${LABEL_MANAGED}=true`)).filter((c) => stale(c.labels)).sort((a, b) => helper(a) - helper(b));
  for (const c of containers) {
    if (await remove('container', c.id, () => engine.removeContainer(c.id))) report.containers++;
  }
  // A dead runner's job disks are unmounted before its volumes are removed (a mounted data directory cannot be).
  report.disks = await reapDisks();
  for (const v of await engine.listVolumes(`${LABEL_MANAGED}=true`)) {
    if (!stale(v.labels)) continue;
    if (await remove('volume', v.id, () => engine.removeVolume(v.id))) report.volumes++;
  }
  for (const n of await engine.listNetworks(`${LABEL_MANAGED}=true`)) {
    if (!stale(n.labels)) continue;
    if (await remove('network', n.id, () => engine.removeNetwork(n.id))) report.networks++;
  }
  const cgroupAlive = (owner: string, name?: string) => {
    if (!alive(owner)) return false;
    if (!finished || owner !== finished.owner || !name) return true;
    // A step cgroup is named OWNER_CONTAINER, and a job's containers stockade-KEY-…
    const container = name.slice(owner.length + 1);
    return !container.startsWith('stockade-') || [...finished.active].some((k) => container.startsWith(`stockade-${k}-`));
  };
  report.cgroups = (await limits.reap(cgroupAlive)).length;
  if (report.containers || report.volumes || report.networks || report.cgroups || report.disks) logger.warn({ reaped: report }, finished ? 'removed leftovers of runners that are gone and of jobs that have ended' : 'removed leftovers of a runner that is gone');
  return report;
}
