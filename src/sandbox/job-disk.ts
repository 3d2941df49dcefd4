import { execFile } from 'node:child_process';
import { existsSync, promises as fsp, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StockadeError, type Logger } from '../common';
import { isOwnerAlive } from './labels';

const run = promisify(execFile);

/** How much a job may write, in all of its volumes together. */
export interface DiskLimits {
  /** Bytes of the job's filesystem. @default 10 GiB */
  bytes: number;
  /** Files and directories it can hold. @default 1,000,000 */
  inodes: number;
}

export const DEFAULT_DISK_LIMITS: DiskLimits = { bytes: 10 * 1024 ** 3, inodes: 1_000_000 };

/** Inodes held back for the runner's own files (file-command files and scripts: 6 a step). */
const RESERVED_INODES = 96;
const RESERVE_DIR = '.stockade-reserve';

export interface DiskUsage {
  bytesUsed: number;
  bytesLimit: number;
  inodesUsed: number;
  inodesLimit: number;
}

/** Use against the limits in words: `N of M bytes, n of m files`. */
export function describeDiskUsage(u: DiskUsage): string {
  return `${u.bytesUsed} of ${u.bytesLimit} bytes, ${u.inodesUsed} of ${u.inodesLimit} files`;
}

/** Where the filesystem of one job lives, and the mount namespace rootless Podman runs its containers in. */
export interface JobDiskOptions {
  /** Root-owned directory for the images (`<state dir>/disks`). */
  dir: string;
  /** This runner's owner tag (`pid.starttime`): the reaper removes disks whose runner is gone. */
  ownerTag: string;
  key: string;
  limits: DiskLimits;
  /** `/proc/<pid>/ns/mnt` of rootless Podman's pause process; undefined when it is this process's own namespace. */
  podmanMountNs?: string;
  logger: Logger;
}

interface DiskRecord {
  image: string;
  device: string;
  root: string;
  podmanMountNs?: string;
}

/**
 * A job's own filesystem of a fixed size and inode count (ext4 in a sparse file on a loop
 * device), so the kernel stops a step that fills the disk or creates a million files, and the
 * host's disk never fills. Each job volume (workspace, home, temp, tool cache) is a directory of
 * it, bind-mounted onto the volume's data directory both here and in rootless Podman's mount
 * namespace (mounts made here do not propagate into it). Root only.
 */
export class JobDisk {
  private constructor(private readonly rec: DiskRecord, private readonly recordFile: string, readonly limits: DiskLimits, private readonly logger: Logger) {}

  static async create(o: JobDiskOptions): Promise<JobDisk> {
    if (process.getuid?.() !== 0) throw new StockadeError('LIMITS_NOT_ENFORCED', 'disk limits need root (a loop-mounted filesystem per job); run as root or turn disk limits off');
    await fsp.mkdir(o.dir, { recursive: true, mode: 0o700 });
    const base = join(o.dir, `${o.ownerTag}-${o.key}`);
    const rec: DiskRecord = { image: `${base}.img`, device: '', root: `${base}.fs`, podmanMountNs: o.podmanMountNs };
    const recordFile = `${base}.json`;
    const disk = new JobDisk(rec, recordFile, o.limits, o.logger);
    try {
      await writeRecord(recordFile, rec);
      await (await fsp.open(rec.image, 'wx', 0o600)).close();
      await fsp.truncate(rec.image, o.limits.bytes);
      // No journal, lazy init: 20 ms for 10 GiB here; nodev/nosuid at mount. 1 % of the blocks is
      // reserved for host root, so the runner can still write its own small files into a disk a step filled.
      await run('mkfs.ext4', ['-q', '-F', '-N', String(o.limits.inodes + RESERVED_INODES), '-m', '1', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', rec.image]);
      rec.device = (await run('losetup', ['--find', '--show', rec.image])).stdout.trim();
      await disk.save();
      await fsp.mkdir(rec.root, { mode: 0o700 });
      await disk.inBoth(['mount', '-t', 'ext4', '-o', 'nodev,nosuid,noatime', rec.device, rec.root]);
      // Inodes have no reserve for root as blocks do: placeholders outside every volume hold some for the runner's files.
      await fsp.mkdir(join(rec.root, RESERVE_DIR), { mode: 0o700 });
      for (let i = 0; i < RESERVED_INODES; i++) await (await fsp.open(join(rec.root, RESERVE_DIR, String(i)), 'wx', 0o600)).close();
      return disk;
    } catch (e) {
      await disk.remove();
      throw e instanceof StockadeError ? e : new StockadeError('LIMITS_NOT_ENFORCED', `the job's disk could not be made: ${(e as Error).message}`);
    }
  }

  /** Makes `name` a directory of the job's filesystem, owned by `owner`, and mounts it over `volumePath`. */
  async attach(volumePath: string, name: string, owner: { uid: number; gid: number }): Promise<void> {
    const dir = join(this.rec.root, name);
    await fsp.mkdir(dir, { mode: 0o755 });
    await fsp.chown(dir, owner.uid, owner.gid);
    await this.inBoth(['mount', '--bind', dir, volumePath]);
  }

  /**
   * attach() for several volumes at once: one mount process here and one in Podman's namespace for
   * all of them (each process start is 5-15 ms on a job's way to its first step).
   */
  async attachAll(targets: Array<{ volumePath: string; name: string }>, owner: { uid: number; gid: number }): Promise<void> {
    const pairs: string[] = [];
    for (const t of targets) {
      const dir = join(this.rec.root, t.name);
      await fsp.mkdir(dir, { mode: 0o755 });
      await fsp.chown(dir, owner.uid, owner.gid);
      pairs.push(dir, t.volumePath);
    }
    // Paths as arguments, never in the script: each pair is one bind mount.
    await this.inBoth(['sh', '-c', 'while [ $# -gt 1 ]; do mount --bind -- "$1" "$2" || exit 1; shift 2; done', 'stockade-attach', ...pairs]);
  }

  /**
   * Reads the limits back where the steps will see them: the size and inode count of the
   * filesystem under `volumePath` in Podman's namespace must be this disk's.
   */
  async verify(volumePath: string): Promise<void> {
    const raw = await fsp.statfs(this.rec.root);
    const want = { bytesLimit: raw.blocks * raw.bsize, inodesLimit: raw.files };
    const args = ['stat', '-f', '-c', '%b %S %c', volumePath];
    const { stdout } = this.rec.podmanMountNs ? await run('nsenter', [`--mount=${this.rec.podmanMountNs}`, '--', ...args]) : await run(args[0]!, args.slice(1));
    const [blocks, size, files] = stdout.trim().split(' ').map(Number);
    const bytes = blocks! * size!;
    if (Math.abs(bytes - want.bytesLimit) > 0.01 * want.bytesLimit || files !== want.inodesLimit) {
      throw new StockadeError('LIMITS_NOT_ENFORCED', `the job's volumes are not on its own filesystem in Podman's namespace (${bytes} bytes / ${files} inodes seen, ${want.bytesLimit} / ${want.inodesLimit} expected)`);
    }
  }

  async usage(): Promise<DiskUsage> {
    const s = await fsp.statfs(this.rec.root);
    const reserved = RESERVED_INODES + 2;
    return { bytesUsed: (s.blocks - s.bfree) * s.bsize, bytesLimit: s.blocks * s.bsize, inodesUsed: Math.max(0, s.files - s.ffree - reserved), inodesLimit: s.files - reserved };
  }

  /** Frees up to `n` of the inodes held for the runner (a step used up the rest); how many were freed. */
  async releaseReserve(n: number): Promise<number> {
    const dir = join(this.rec.root, RESERVE_DIR);
    const names = (await fsp.readdir(dir).catch(() => [] as string[])).slice(0, n);
    for (const f of names) await fsp.rm(join(dir, f), { force: true });
    return names.length;
  }

  /** True when the filesystem has no room left for a write (blocks or inodes). */
  async full(): Promise<boolean> {
    const s = await fsp.statfs(this.rec.root);
    return s.bavail * s.bsize < 1024 * 1024 || s.ffree < 16;
  }

  /** Unmounts everything of this disk in both namespaces, detaches the loop device, deletes the image. Never throws. */
  async remove(): Promise<void> {
    await removeDisk(this.rec, this.recordFile, this.logger);
  }

  private async save(): Promise<void> {
    await writeRecord(this.recordFile, this.rec);
  }

  /** Runs a mount command here and in Podman's mount namespace. */
  private async inBoth(args: string[]): Promise<void> {
    await run(args[0]!, args.slice(1));
    if (this.rec.podmanMountNs) await run('nsenter', [`--mount=${this.rec.podmanMountNs}`, '--', ...args]);
  }
}

/** Written whole or not at all (a runner killed mid-write leaves the previous record, never half of one). */
async function writeRecord(file: string, rec: DiskRecord): Promise<void> {
  const tmp = `${file}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(rec), { mode: 0o600 });
  await fsp.rename(tmp, file);
}

/** Mount points (deepest first) whose source is one of `devices`, from a mountinfo table. */
export function mountsOf(mountinfo: string, devices: string[]): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!before || !after) continue;
    const source = after.split(' ')[1];
    const point = before.split(' ')[4];
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    if (source && point && devices.includes(source)) out.push(point.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Removes a job disk whatever its record says: the loop devices backing the image are found with
 * `losetup -j`, every mount of them is found in the kernel's own mount tables (here and in Podman's
 * namespace) and unmounted, then the devices are detached and the image, mount point and record deleted.
 */
async function removeDisk(rec: Pick<DiskRecord, 'image' | 'root' | 'podmanMountNs'> & Partial<DiskRecord>, recordFile: string, logger: Logger): Promise<void> {
  const attached = await run('losetup', ['-j', rec.image]).then((r) => r.stdout, () => '');
  const devices = [...new Set([...(rec.device ? [rec.device] : []), ...attached.split('\n').map((l) => l.split(':')[0]!).filter(Boolean)])];
  const tables: Array<{ info: string; ns?: string }> = [{ info: readFileSync('/proc/self/mountinfo', 'utf8') }];
  const ns = rec.podmanMountNs && existsSync(rec.podmanMountNs) ? rec.podmanMountNs : undefined;
  if (ns) tables.push({ info: readFileSync(ns.replace(/ns\/mnt$/, 'mountinfo'), 'utf8'), ns });
  for (const t of tables) {
    for (const point of mountsOf(t.info, devices)) {
      const args = ['umount', '-l', point];
      await (t.ns ? run('nsenter', [`--mount=${t.ns}`, '--', ...args]) : run(args[0]!, args.slice(1))).catch((e: unknown) => logger.warn({ err: e, point }, 'job disk not unmounted'));
    }
  }
  for (const dev of devices) await run('losetup', ['-d', dev]).catch(() => undefined);
  if (existsSync(rec.root)) await fsp.rmdir(rec.root).catch((e: unknown) => logger.warn({ err: e, path: rec.root }, 'job disk mount point not removed'));
  await fsp.rm(rec.image, { force: true });
  await fsp.rm(recordFile, { force: true });
  await fsp.rm(`${recordFile}.tmp`, { force: true });
}

/**
 * Removes the disks of runners that are gone (after a crash): found by their images, so a runner
 * killed before or while it wrote its record leaves nothing behind either.
 */
export async function reapJobDisks(dir: string, logger: Logger, podmanMountNs?: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  let n = 0;
  const bases = new Set(readdirSync(dir).map((f) => f.replace(/\.(img|json|json\.tmp|fs)$/, '')));
  for (const base of bases) {
    const tag = /^(\d+\.\d+)-/.exec(base)?.[1];
    if (!tag || isOwnerAlive(tag)) continue;
    const path = join(dir, base);
    try {
      await removeDisk({ image: `${path}.img`, root: `${path}.fs`, podmanMountNs }, `${path}.json`, logger);
      n++;
    } catch (e) {
      logger.warn({ err: e, disk: path }, "a dead runner's job disk could not be removed");
    }
  }
  return n;
}
