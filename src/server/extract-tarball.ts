import { execFile } from 'node:child_process';
import { mkdir, writeFile, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Unpacks GitHub's repository archive (one top-level directory) into `dir`: GNU
 * tar refuses members with `..` and strips leading `/`; ownership and special
 * permission bits from the archive are not kept.
 */
export async function extractTarball(tarball: Buffer, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Unique per call: two jobs starting in the same millisecond once shared a name here.
  const file = join(dir, '..', `${randomBytes(8).toString('hex')}.tar.gz`);
  await writeFile(file, tarball, { mode: 0o600 });
  try {
    await run('tar', ['-xzf', file, '-C', dir, '--strip-components=1', '--no-same-owner', '--no-same-permissions', '--no-overwrite-dir'], { maxBuffer: 1024 * 1024 });
  } finally {
    await rm(file, { force: true });
  }
}
