import { constants, promises as fsp } from 'node:fs';
import { posix } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { StockadeError } from '../common';

/** What a repository archive may cost. Git stores identical blobs once, so a small push can expand enormously. */
export interface TarballLimits {
  /** Bytes downloaded (gzip). @default 512 MiB */
  maxCompressedBytes: number;
  /** Bytes of file content extracted. @default 4 GiB */
  maxExtractedBytes: number;
  /** Archive entries (files, directories, links). @default 200,000 */
  maxEntries: number;
  /** Wall time of download and extraction. @default 300 s */
  maxMs: number;
  /** Free space that must stay on the filesystem of the extraction (it holds the database too). @default 2 GiB */
  reserveBytes: number;
}

export const DEFAULT_TARBALL_LIMITS: TarballLimits = {
  maxCompressedBytes: 512 * 1024 ** 2,
  maxExtractedBytes: 4 * 1024 ** 3,
  maxEntries: 200_000,
  maxMs: 300_000,
  reserveBytes: 2 * 1024 ** 3,
};

export interface Extracted {
  entries: number;
  bytes: number;
  compressedBytes: number;
}

const fail = (message: string) => new StockadeError('REPOSITORY_ARCHIVE', message);

/** Free bytes on the filesystem of `dir` for an unprivileged writer. */
async function freeBytes(dir: string): Promise<number> {
  const s = await fsp.statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Unpacks GitHub's repository archive (one top-level directory, stripped) into `dir`,
 * streamed from the download, never buffered: at most `maxCompressedBytes` read,
 * `maxExtractedBytes` written (and never so much that less than `reserveBytes` stays free
 * on that filesystem, rechecked as it goes), `maxEntries` entries, within `maxMs`.
 * Only regular files, directories and symbolic links are taken; links are created as
 * links and never followed (no entry is written below a link), hard links, devices and
 * FIFOs fail the extraction, as do absolute names, `..` and a name seen twice. Modes keep
 * only the executable bit; ownership is never kept.
 */
export async function extractTarball(source: Readable | Buffer, dir: string, limits: Partial<TarballLimits> = {}): Promise<Extracted> {
  const l = { ...DEFAULT_TARBALL_LIMITS, ...limits };
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const free = await freeBytes(dir);
  const budget = Math.min(l.maxExtractedBytes, free - l.reserveBytes);
  if (budget <= 0) throw fail(`the disk holding ${dir} has ${Math.round(free / 1024 ** 2)} MiB free, less than the ${Math.round(l.reserveBytes / 1024 ** 2)} MiB that must stay free; the repository was not extracted`);
  const done: Extracted = { entries: 0, bytes: 0, compressedBytes: 0 };
  const kinds = new Map<string, 'directory' | 'file' | 'link'>([['', 'directory']]);
  // A timer of our own, not AbortSignal.timeout (unreferenced): the deadline holds whatever else keeps the process alive.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), l.maxMs);
  const signal = deadline.signal;
  let lastFreeCheck = 0;

  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done.compressedBytes += chunk.length;
      if (done.compressedBytes > l.maxCompressedBytes) return cb(fail(`the repository archive is larger than ${l.maxCompressedBytes} bytes compressed`));
      cb(null, chunk);
    },
  });

  const ensureParents = async (rel: string): Promise<void> => {
    const parts = rel.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const k = kinds.get(p);
      if (k === 'directory') continue;
      if (k) throw fail(`archive entry '${rel.slice(0, 200)}' lies below '${p.slice(0, 200)}', which is a ${k === 'link' ? 'symbolic link' : 'file'}`);
      await fsp.mkdir(posix.join(dir, p), { mode: 0o755 });
      kinds.set(p, 'directory');
    }
  };

  const writeEntry = async (header: Header, rel: string, body: Readable): Promise<void> => {
    const target = posix.join(dir, rel);
    if (header.type === 'directory') {
      const k = kinds.get(rel);
      if (k && k !== 'directory') throw fail(`archive entry '${rel.slice(0, 200)}' appears twice`);
      if (!k) {
        await ensureParents(rel);
        await fsp.mkdir(target, { mode: 0o755 });
        kinds.set(rel, 'directory');
      }
      body.resume();
      return;
    }
    if (kinds.has(rel)) throw fail(`archive entry '${rel.slice(0, 200)}' appears twice`);
    await ensureParents(rel);
    if (header.type === 'symlink') {
      await fsp.symlink(header.linkname ?? '', target);
      kinds.set(rel, 'link');
      body.resume();
      return;
    }
    kinds.set(rel, 'file');
    const size = header.size ?? 0;
    if (done.bytes + size > budget) throw fail(budgetMessage(budget, l, free));
    const fh = await fsp.open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, (header.mode ?? 0o644) & 0o111 ? 0o755 : 0o644);
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        done.bytes += chunk.length;
        if (done.bytes > budget) throw fail(budgetMessage(budget, l, free));
        await fh.write(chunk);
      }
    } finally {
      await fh.close();
    }
    if (done.bytes - lastFreeCheck > 64 * 1024 ** 2) {
      lastFreeCheck = done.bytes;
      if ((await freeBytes(dir)) < l.reserveBytes) throw fail(`extracting the repository would leave less than ${Math.round(l.reserveBytes / 1024 ** 2)} MiB free on the disk that holds the server's state; stopped after ${done.bytes} bytes`);
    }
  };

  const tar = extract();
  tar.on('entry', (header, body, next) => {
    // A failed extraction destroys the entry's stream with the error; the error is the extraction's, reported once.
    body.on('error', () => undefined);
    done.entries++;
    const go = async () => {
      if (done.entries > l.maxEntries) throw fail(`the repository archive has more than ${l.maxEntries} entries`);
      const rel = entryPath(header.name);
      if (rel === undefined) throw fail(`archive entry '${header.name.slice(0, 200)}' is absolute or climbs out with '..'`);
      const type = String(header.type);
      if (type === 'pax-global-header' || type === 'pax-header') return void body.resume();
      if (rel === '') return void body.resume();
      if (header.type !== 'file' && header.type !== 'contiguous-file' && header.type !== 'directory' && header.type !== 'symlink') {
        throw fail(`archive entry '${rel.slice(0, 200)}' is a ${type}; only files, directories and symbolic links are extracted`);
      }
      await writeEntry(header, rel, body as unknown as Readable);
    };
    go().then(() => next(), (e: unknown) => next(e as Error));
  });
  const input = Buffer.isBuffer(source) ? Readable.from([source]) : source;
  try {
    await pipeline(input, counter, createGunzip(), tar, { signal });
  } catch (e) {
    if (signal.aborted) throw fail(`downloading and extracting the repository took longer than ${Math.round(l.maxMs / 1000)} s`);
    if (e instanceof StockadeError) throw e;
    throw fail(`the repository archive could not be extracted: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  return done;
}

function budgetMessage(budget: number, l: TarballLimits, free: number): string {
  return budget < l.maxExtractedBytes
    ? `the repository expands to more than ${budget} bytes, all the disk can spare while keeping ${Math.round(l.reserveBytes / 1024 ** 2)} MiB free (${Math.round(free / 1024 ** 2)} MiB were free)`
    : `the repository expands to more than ${l.maxExtractedBytes} bytes (the limit of extracted bytes; compressed archives of repeated content expand far beyond their size)`;
}

/** An archive member's path with the top-level directory stripped; undefined for an absolute name or one with `..`. */
export function entryPath(name: string): string | undefined {
  if (name.startsWith('/')) return undefined;
  const parts = name.split('/').filter((p) => p && p !== '.');
  if (parts.includes('..')) return undefined;
  return parts.slice(1).join('/');
}
