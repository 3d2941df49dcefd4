import { describeDiskUsage, removeVolumeFile, writeVolumeFile } from '../sandbox';
import { JOB_PATHS } from './job-paths';
import type { Executed, StepRun } from './step-types';

/**
 * Writes a step's file-command files (empty) and its script into the job's temp volume. A step that
 * used up the job's inodes leaves the runner the ones its disk held back, so a later step can still
 * clean up; when the disk has no room even then, the step fails with reason disk-limit.
 */
export async function writeStepFiles(run: StepRun, names: string[], script: { name: string; text: string } | undefined): Promise<{ scriptPath?: string } | { refused: Executed & { state: Record<string, string> } }> {
  const mp = run.volumes.mountpoint.temp;
  // A retry after ENOSPC finds the script the first attempt created (a name of the runner's, unknown to any step) possibly cut short: it is written again.
  const writeScript = (retry: boolean): Promise<void> =>
    writeVolumeFile(mp, script!.name, script!.text, run.volumes.owner, 0o755).catch(async (e: NodeJS.ErrnoException) => {
      if (!retry || e.code !== 'EEXIST') throw e;
      await removeVolumeFile(mp, script!.name);
      await writeVolumeFile(mp, script!.name, script!.text, run.volumes.owner, 0o755);
    });
  // All at once: they are independent files, and this is on the path between two steps (issue 17).
  const write = async (retry = false) => {
    const all = await Promise.allSettled([
      ...names.map((n) =>
        writeVolumeFile(mp, n, '', run.volumes.owner, 0o666).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e;
        }),
      ),
      script ? writeScript(retry) : undefined,
    ]);
    const failed = all.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  try {
    await write().catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOSPC' || !(await run.volumes.disk?.releaseReserve(names.length + 1))) throw e;
      await write(true);
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    const u = await run.volumes.disk?.usage();
    const error = `the job's disk limit was reached before this step could start${u ? ` (${describeDiskUsage(u)})` : ''}; free space in an earlier step or raise --disk / --inodes`;
    return { refused: { outcome: 'failure', exitCode: null, reason: 'disk-limit', error, outputs: {}, durationMs: 0, peakMemoryBytes: 0, cpuSeconds: 0, state: {} } };
  }
  return script ? { scriptPath: `${JOB_PATHS.temp}/${script.name}` } : {};
}

/** A step that failed on a full job disk (blocks or inodes) ended on its disk limit: its result says so. */
export async function markDiskLimit(run: StepRun, e: Executed): Promise<void> {
  if (e.outcome !== 'failure' || e.reason !== 'exit' || !(await run.volumes.disk?.full())) return;
  e.reason = 'disk-limit';
  e.error = `the job's disk limit was reached (${describeDiskUsage(await run.volumes.disk!.usage())}); the step exited with code ${e.exitCode}`;
}
