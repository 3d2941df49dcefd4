import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { lchown, open, type FileHandle } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { removeVolumeFile, type VolumeOwner } from './volume-files';

/** A direct child of a volume's root (names are the runner's own: no separator, no dot-dot). */
export function childPath(root: string, name: string): string {
  if (!name || name.includes('/') || name === '..' || name === '.') throw new Error(`bad name ${name}`);
  return normalize(join(root, name));
}

/**
 * A FIFO's write end, once its reader is blocked opening it (before that a writer's non-blocking
 * open fails with ENXIO, or ENOENT before the FIFO exists); its name is removed at once. undefined
 * when `ended()` says the reader is gone, the name is not a FIFO (a link is never followed), or
 * `waitMs` passed.
 */
export async function openFifoWriter(dir: string, name: string, ended: () => boolean, waitMs: number): Promise<FileHandle | undefined> {
  const path = childPath(dir, name);
  const until = Date.now() + waitMs;
  for (let wait = 1; Date.now() < until && !ended(); wait = Math.min(wait * 2, 5)) {
    let fifo: FileHandle | undefined;
    try {
      fifo = await open(path, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENXIO' && code !== 'ENOENT') break;
    }
    if (fifo) {
      const isFifo = await fifo.stat().then((st) => st.isFIFO(), () => false);
      await removeVolumeFile(dir, name).catch(() => undefined);
      if (isFifo) return fifo;
      await fifo.close();
      break;
    }
    await sleep(wait);
  }
  await removeVolumeFile(dir, name).catch(() => undefined);
  return undefined;
}

/** Makes a FIFO in a volume from the host side (mode 0600, owned by the volume's owner): Node has no mkfifo. */
export async function makeVolumeFifo(dir: string, name: string, owner: VolumeOwner): Promise<void> {
  const path = childPath(dir, name);
  await new Promise<void>((resolve, reject) => {
    const p = spawn('mkfifo', ['-m', '600', '--', path], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (c: Buffer) => (err += c.toString().slice(0, 500)));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mkfifo ${path} exited ${code}: ${err.trim()}`))));
  });
  // lchown: never through a link (mkfifo made the name just now; it is a FIFO or it failed).
  await lchown(path, owner.uid, owner.gid);
}

/**
 * Writes all of `data` to a non-blocking FIFO (a full pipe answers EAGAIN: waited on, up to
 * `waitMs`), then closes it: its reader sees the end.
 */
export async function writeFifoAndClose(fifo: FileHandle, data: string | Buffer, waitMs = 5000): Promise<void> {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const until = Date.now() + waitMs;
  try {
    for (let off = 0; off < buf.length; ) {
      try {
        off += (await fifo.write(buf, off, buf.length - off)).bytesWritten;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() > until) throw e;
        await sleep(1);
      }
    }
  } finally {
    await fifo.close();
  }
}
