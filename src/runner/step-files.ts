import { describeDiskUsage, writeVolumeFile } from '../sandbox';
import { JOB_PATHS } from './job-paths';
import type { Executed, StepRun } from './run-step';

/**
 * Writes a step's file-command files (empty) and its script into the job's temp volume. A step that
 * used up the job's inodes leaves the runner the ones its disk held back, so a later step can still
 * clean up; when the disk has no room even then, the step fails with reason disk-limit.
 */
export async function writeStepFiles(run: StepRun, names: string[], script: { name: string; text: string } | undefined): Promise<{ scriptPath?: string } | { refused: Executed & { state: Record<string, string> } }> {
  const mp = run.volumes.mountpoint.temp;
  const write = async () => {
    for (const n of names)
      await writeVolumeFile(mp, n, '', run.volumes.owner, 0o666).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
    if (script) await writeVolumeFile(mp, script.name, script.text, run.volumes.owner, 0o755);
  };
  try {
    await write().catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOSPC' || !(await run.volumes.disk?.releaseReserve(names.length + 1))) throw e;
      await write();
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
