import { execFile } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { readFileBeneath, StockadeError } from '../common';

const run = promisify(execFile);

/**
 * Host-side access to a job volume. A volume is written by hostile steps, so the
 * host only touches direct children of the volume's root, never follows a link,
 * reads only regular files, and reads only while no step container of the job runs.
 */
export interface VolumeOwner {
  uid: number;
  gid: number;
}

function childPath(mountpoint: string, name: string): string {
  if (basename(name) !== name || name === '.' || name === '..' || name === '') {
    throw new StockadeError('WORKSPACE_UNSAFE', `'${name}' is not a plain file name`);
  }
  return join(mountpoint, name);
}

/** Owner of the volume root: the host uid that container root maps to. */
export async function volumeOwner(mountpoint: string): Promise<VolumeOwner> {
  const st = await fsp.stat(mountpoint);
  return { uid: st.uid, gid: st.gid };
}

/** Creates a new file (fails if anything, a link included, exists under that name). */
export async function writeVolumeFile(mountpoint: string, name: string, content: string | Buffer, owner: VolumeOwner, mode = 0o644): Promise<void> {
  const fh = await fsp.open(childPath(mountpoint, name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    if (content.length) await fh.writeFile(content);
    if (process.getuid?.() === 0) await fh.chown(owner.uid, owner.gid);
  } finally {
    await fh.close();
  }
}

/** Removes a direct child of the volume root (a link is removed, never followed); missing is fine. */
export async function removeVolumeFile(mountpoint: string, name: string): Promise<void> {
  await fsp.unlink(childPath(mountpoint, name)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

export type ReadResult = { ok: true; text: string } | { ok: false; error: string };

/** Reads a file a step may have tampered with: no links, regular files only, size-capped. */
export async function readVolumeFile(mountpoint: string, name: string, maxBytes: number): Promise<ReadResult> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(childPath(mountpoint, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: true, text: '' };
    if (code === 'ELOOP') return { ok: false, error: `${name} was replaced by a symbolic link; it is ignored` };
    return { ok: false, error: `${name} cannot be read: ${code}` };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { ok: false, error: `${name} is not a regular file; it is ignored` };
    if (st.size > maxBytes) return { ok: false, error: `${name} is ${st.size} bytes; the limit is ${maxBytes}` };
    const buf = Buffer.alloc(Math.min(st.size, maxBytes));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return { ok: true, text: buf.subarray(0, bytesRead).toString('utf8') };
  } finally {
    await fh.close();
  }
}

/**
 * Copies a directory tree into a fresh volume (once per job), owned by the container's root.
 * With `link`, files are hard-linked instead of copied (same inodes: only for a source that
 * is thrown away with the job, such as the server's extracted tarball, never a user's
 * checkout); it falls back to copying across filesystems.
 */
export async function copyTreeIntoVolume(source: string, mountpoint: string, owner: VolumeOwner, o: { link?: boolean } = {}): Promise<void> {
  const copy = () => run('cp', ['-a', '--reflink=auto', '--no-preserve=ownership', `${source}/.`, `${mountpoint}/`], { maxBuffer: 1024 * 1024 });
  if (o.link) {
    try {
      await run('cp', ['-a', '--link', '--no-preserve=ownership', `${source}/.`, `${mountpoint}/`], { maxBuffer: 1024 * 1024 });
    } catch {
      await copy();
    }
  } else await copy();
  if (process.getuid?.() === 0) await run('chown', ['-R', '-P', `${owner.uid}:${owner.gid}`, mountpoint]);
}

/** Makes a directory directly under the volume root (before any step runs). */
export async function makeVolumeDir(mountpoint: string, name: string, owner: VolumeOwner): Promise<void> {
  const p = childPath(mountpoint, name);
  await fsp.mkdir(p, { mode: 0o755 });
  if (process.getuid?.() === 0) await fsp.chown(p, owner.uid, owner.gid);
}

/**
 * Reads `rel` (a relative path below the volume root) when no step of the job is
 * running: no link is followed in any component, the file must be a regular file,
 * size-capped. A file that does not exist reads as empty.
 */
export async function readVolumePath(mountpoint: string, rel: string, maxBytes: number): Promise<ReadResult> {
  const r = await readFileBeneath(mountpoint, rel, maxBytes);
  if (r.ok) return r;
  return r.missing ? { ok: true, text: '' } : { ok: false, error: r.error };
}
