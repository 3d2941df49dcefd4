import { randomBytes } from 'node:crypto';
import type { Logger } from '../common';
import { LABEL_JOB, managedLabels, volumeOwner, type DiskLimits, type JobDisk, type Sandbox, type VolumeMount, type VolumeOwner } from '../sandbox';
import { JOB_PATHS, JOB_VOLUME_KINDS, type JobVolumeKind } from './job-paths';

export interface JobVolumes {
  key: string;
  labels: Record<string, string>;
  mounts: VolumeMount[];
  mountpoint: Record<JobVolumeKind, string>;
  owner: VolumeOwner;
  /** The job's own filesystem all four volumes live on, when disk limits are in force. */
  disk?: JobDisk;
  remove(): Promise<void>;
}

/**
 * The four per-job volumes (workspace, home, temp, tool cache), labelled with the job and this
 * runner; with `disk`, all four on one filesystem of that size and inode count, read back in
 * Podman's namespace before anything runs.
 */
export async function createJobVolumes(sandbox: Sandbox, jobId: string, logger: Logger, disk?: DiskLimits): Promise<JobVolumes> {
  const key = `${jobId.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40)}-${randomBytes(4).toString('hex')}`;
  const labels = managedLabels(sandbox.ownerTag, { [LABEL_JOB]: key });
  const created: string[] = [];
  let jobDisk: JobDisk | undefined;
  sandbox.activeJobs?.add(key);
  const remove = async () => {
    try {
      // The disk first: a volume's data directory with the disk bound onto it cannot be removed.
      await jobDisk?.remove();
      for (const name of created) await sandbox.deps.engine.removeVolume(name).catch((e: unknown) => logger.error({ err: e, volume: name }, 'volume remove failed'));
    } finally {
      // Whatever could not be removed now is the reaper's (reapFinished) once the engine answers again.
      sandbox.activeJobs?.delete(key);
    }
  };
  const mounts = JOB_VOLUME_KINDS.map((kind) => ({ volume: `stockade-${key}-${kind}`, target: JOB_PATHS[kind] }));
  try {
    const mountpoint = {} as Record<JobVolumeKind, string>;
    // The volumes and the job's disk are made at once: they are independent until the disk is attached.
    const diskMade = disk ? sandbox.createJobDisk(key, disk) : undefined;
    diskMade?.catch(() => undefined);
    const made = await Promise.allSettled(
      JOB_VOLUME_KINDS.map(async (kind, i) => {
        const v = await sandbox.deps.engine.createVolume(mounts[i]!.volume, labels);
        created.push(mounts[i]!.volume);
        mountpoint[kind] = v.mountpoint;
      }),
    );
    const diskResult = diskMade ? await diskMade.then((d) => ({ ok: d }), (e: unknown) => ({ error: e })) : undefined;
    if (diskResult && 'ok' in diskResult) jobDisk = diskResult.ok;
    const failed = made.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (diskResult && 'error' in diskResult) throw diskResult.error;
    const owner = await volumeOwner(mountpoint.workspace);
    if (jobDisk) {
      await jobDisk.attachAll(JOB_VOLUME_KINDS.map((kind) => ({ volumePath: mountpoint[kind], name: kind })), owner);
      await jobDisk.verify(mountpoint.workspace);
    }
    return { key, labels, mounts, mountpoint, owner, disk: jobDisk, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}
