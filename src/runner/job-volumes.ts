import { randomBytes } from 'node:crypto';
import type { Logger } from '../common';
import { LABEL_JOB, managedLabels, volumeOwner, type Sandbox, type VolumeMount, type VolumeOwner } from '../sandbox';
import { JOB_PATHS, JOB_VOLUME_KINDS, type JobVolumeKind } from './job-paths';

export interface JobVolumes {
  key: string;
  labels: Record<string, string>;
  mounts: VolumeMount[];
  mountpoint: Record<JobVolumeKind, string>;
  owner: VolumeOwner;
  remove(): Promise<void>;
}

/** The four per-job volumes (workspace, home, temp, tool cache), labelled with the job and this runner. */
export async function createJobVolumes(sandbox: Sandbox, jobId: string, logger: Logger): Promise<JobVolumes> {
  const key = `${jobId.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40)}-${randomBytes(4).toString('hex')}`;
  const labels = managedLabels(sandbox.ownerTag, { [LABEL_JOB]: key });
  const created: string[] = [];
  const remove = async () => {
    for (const name of created) await sandbox.deps.engine.removeVolume(name).catch((e: unknown) => logger.error({ err: e, volume: name }, 'volume remove failed'));
  };
  const mounts = JOB_VOLUME_KINDS.map((kind) => ({ volume: `stockade-${key}-${kind}`, target: JOB_PATHS[kind] }));
  try {
    const mountpoint = {} as Record<JobVolumeKind, string>;
    for (const [i, kind] of JOB_VOLUME_KINDS.entries()) {
      const v = await sandbox.deps.engine.createVolume(mounts[i]!.volume, labels);
      created.push(mounts[i]!.volume);
      mountpoint[kind] = v.mountpoint;
    }
    return { key, labels, mounts, mountpoint, owner: await volumeOwner(mountpoint.workspace), remove };
  } catch (e) {
    await remove();
    throw e;
  }
}
