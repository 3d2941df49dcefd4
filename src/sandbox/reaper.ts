import type { Logger } from '../common';
import type { ContainerEngine } from './engine';
import { isOwnerAlive, LABEL_MANAGED, LABEL_OWNER, LABEL_STEP } from './labels';
import type { LimitEnforcer } from './limit-enforcer';

export interface ReapReport {
  containers: number;
  volumes: number;
  networks: number;
  cgroups: number;
  /** Job disks (loop-mounted filesystems) of runners that are gone. */
  disks: number;
}

/**
 * Removes every container, volume and step cgroup whose owning runner process is
 * gone (killed, crashed). Objects of live runners are left alone, so several
 * runners can share a host.
 */
export async function reapLeftovers(engine: ContainerEngine, limits: LimitEnforcer, logger: Logger, alive: (owner: string) => boolean = isOwnerAlive, reapDisks: () => Promise<number> = async () => 0): Promise<ReapReport> {
  const report: ReapReport = { containers: 0, volumes: 0, networks: 0, cgroups: 0, disks: 0 };
  const stale = (labels: Record<string, string>) => !alive(labels[LABEL_OWNER] ?? '');
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
  report.cgroups = (await limits.reap(alive)).length;
  if (report.containers || report.volumes || report.networks || report.cgroups || report.disks) logger.warn({ reaped: report }, 'removed leftovers of a runner that is gone');
  return report;
}
