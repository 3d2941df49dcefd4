import { constants, promises as fsp } from 'node:fs';

/**
 * Reading files of a repository or an action, which are hostile: a committed
 * symbolic link (`.stockade/workflows/x.yml -> /proc/self/environ`), a FIFO that
 * blocks the reader, a device, or a huge file. Every path is walked one component
 * at a time from a directory descriptor (`/proc/self/fd/N/<name>` with O_NOFOLLOW,
 * the openat(2) of Node), so no link is followed anywhere on the way, not even by
 * a race; only regular files are opened, and never more than `maxBytes` is read.
 */
export type BeneathRead = { ok: true; text: string } | { ok: false; missing: boolean; error: string };

export interface BeneathEntry {
  name: string;
  kind: 'file' | 'directory' | 'link' | 'other';
}

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Path components of `rel`, or an error when it is absolute, empty or climbs with `..`. */
export function pathComponents(rel: string): string[] | string {
  if (rel.startsWith('/')) return `'${rel}' is an absolute path`;
  const parts = rel.split('/').filter((p) => p && p !== '.');
  if (!parts.length) return `'${rel}' names no file`;
  if (parts.includes('..')) return `'${rel}' climbs out with '..'`;
  return parts;
}

function describe(code: string | undefined): string {
  if (code === 'ELOOP' || code === 'ENOTDIR') return 'is a symbolic link or not a directory (links are never followed)';
  if (code === 'ENOENT') return 'does not exist';
  return `cannot be opened (${code ?? 'error'})`;
}

/** Opens the directory `parts` below `root` without following any link; the caller closes it. */
async function openDirBeneath(root: string, parts: string[]): Promise<{ fh: fsp.FileHandle } | { error: string; missing: boolean }> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(root, DIR_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { error: `the directory ${describe(code)}`, missing: code === 'ENOENT' };
  }
  for (const [i, p] of parts.entries()) {
    try {
      const next = await fsp.open(`/proc/self/fd/${fh.fd}/${p}`, DIR_FLAGS);
      await fh.close();
      fh = next;
    } catch (e) {
      await fh.close();
      const code = (e as NodeJS.ErrnoException).code;
      return { error: `${parts.slice(0, i + 1).join('/')} ${describe(code)}`, missing: code === 'ENOENT' };
    }
  }
  return { fh };
}

/** Reads `rel` below `root` as text: see readBytesBeneath. */
export async function readFileBeneath(root: string, rel: string, maxBytes: number): Promise<BeneathRead> {
  const r = await readBytesBeneath(root, rel, maxBytes);
  return r.ok ? { ok: true, text: r.bytes.toString('utf8') } : r;
}

/** Reads `rel` below `root`: no link followed in any component, a regular file only, at most `maxBytes`. */
export async function readBytesBeneath(root: string, rel: string, maxBytes: number): Promise<{ ok: true; bytes: Buffer } | { ok: false; missing: boolean; error: string }> {
  const parts = pathComponents(rel);
  if (typeof parts === 'string') return { ok: false, missing: false, error: parts };
  const dir = await openDirBeneath(root, parts.slice(0, -1));
  if ('error' in dir) return { ok: false, missing: dir.missing, error: dir.error };
  const name = parts[parts.length - 1]!;
  const at = `/proc/self/fd/${dir.fh.fd}/${name}`;
  try {
    // lstat first so that a FIFO or a device is never even opened; fstat after the open closes the race.
    let st;
    try {
      st = await fsp.lstat(at);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return { ok: false, missing: code === 'ENOENT', error: `${rel} ${describe(code)}` };
    }
    if (st.isSymbolicLink()) return { ok: false, missing: false, error: `${rel} is a symbolic link; links are never followed` };
    if (!st.isFile()) return { ok: false, missing: false, error: `${rel} is not a regular file` };
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(at, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
    } catch (e) {
      return { ok: false, missing: false, error: `${rel} ${describe((e as NodeJS.ErrnoException).code)}` };
    }
    try {
      const fst = await fh.stat();
      if (!fst.isFile()) return { ok: false, missing: false, error: `${rel} is not a regular file` };
      if (fst.size > maxBytes) return { ok: false, missing: false, error: `${rel} is ${fst.size} bytes; the limit is ${maxBytes}` };
      // One byte more than the limit is asked for: a file that grew after fstat is still refused.
      const buf = Buffer.alloc(Math.min(fst.size, maxBytes) + 1);
      let bytesRead = 0;
      for (;;) {
        const r = await fh.read(buf, bytesRead, buf.length - bytesRead, bytesRead);
        bytesRead += r.bytesRead;
        if (r.bytesRead === 0 || bytesRead === buf.length) break;
      }
      if (bytesRead > maxBytes) return { ok: false, missing: false, error: `${rel} is larger than the limit of ${maxBytes} bytes` };
      return { ok: true, bytes: buf.subarray(0, bytesRead) };
    } finally {
      await fh.close();
    }
  } finally {
    await dir.fh.close();
  }
}

/** The entries of directory `rel` below `root` (`''` for root itself), reached without following links; at most `maxEntries`. */
export async function listDirBeneath(root: string, rel: string, maxEntries = 10_000): Promise<{ ok: true; entries: BeneathEntry[] } | { ok: false; missing: boolean; error: string }> {
  const parts = rel === '' || rel === '.' ? [] : pathComponents(rel);
  if (typeof parts === 'string') return { ok: false, missing: false, error: parts };
  const dir = await openDirBeneath(root, parts);
  if ('error' in dir) return { ok: false, missing: dir.missing, error: dir.error };
  try {
    const entries: BeneathEntry[] = [];
    const d = await fsp.opendir(`/proc/self/fd/${dir.fh.fd}`);
    for await (const e of d) {
      if (entries.length >= maxEntries) return { ok: false, missing: false, error: `${rel || '.'} has more than ${maxEntries} entries` };
      entries.push({ name: e.name, kind: e.isSymbolicLink() ? 'link' : e.isFile() ? 'file' : e.isDirectory() ? 'directory' : 'other' });
    }
    return { ok: true, entries: entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
  } finally {
    await dir.fh.close();
  }
}
