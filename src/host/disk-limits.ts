import { parseSize, StockadeError } from '../common';
import { DEFAULT_DISK_LIMITS, type DiskLimits } from '../sandbox';

/**
 * `--disk SIZE|off` and `--inodes N` (run and serve): what all of a job's volumes may hold
 * together. Defaults 10 GiB and 1,000,000 files; `off` leaves the job without a disk limit.
 */
export function diskLimitsFrom(disk: string | undefined, inodes: string | undefined): DiskLimits | undefined {
  if (disk === 'off') {
    if (inodes !== undefined) throw new StockadeError('USAGE', '--inodes has no effect with --disk off');
    return undefined;
  }
  const bytes = disk === undefined ? DEFAULT_DISK_LIMITS.bytes : parseSize(disk);
  if (bytes === undefined || bytes < 64 * 1024 ** 2 || bytes > 16 * 1024 ** 4) throw new StockadeError('USAGE', `--disk '${disk}' is not a size from 64m to 16t (or off)`);
  const n = inodes === undefined ? DEFAULT_DISK_LIMITS.inodes : Number(inodes);
  if (!Number.isInteger(n) || n < 1000 || n > 100_000_000) throw new StockadeError('USAGE', `--inodes '${inodes}' is not a whole number from 1000 to 100000000`);
  return { bytes, inodes: n };
}
