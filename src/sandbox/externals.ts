import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { ContainerEngine } from './engine';
import { volumeOwner } from './volume-files';

/**
 * Marks a volume of runner-provided tools (the Node.js that runs JavaScript
 * actions): shared by jobs, mounted read-only, never written by a step, and not
 * reaped with jobs. Created once per content hash.
 */
export const LABEL_EXTERNALS = 'io.stockade.externals';
const COMPLETE = '.complete';

/**
 * The named volume holding `files` (path in volume → host file), filled on first
 * use. Steps mount it read-only, so no host path is ever mounted into a step.
 */
export async function ensureExternalsVolume(engine: ContainerEngine, name: string, files: Record<string, { source: string; mode: number }>): Promise<string> {
  const existing = await engine.inspectVolume(name);
  const mountpoint = existing?.mountpoint ?? (await engine.createVolume(name, { [LABEL_EXTERNALS]: 'true' }).catch(async (e: unknown) => {
    // Another runner created it in between.
    const again = await engine.inspectVolume(name);
    if (!again) throw e;
    return again;
  })).mountpoint;
  const done = await fsp.stat(join(mountpoint, COMPLETE)).then(() => true, () => false);
  if (done) return name;
  const owner = await volumeOwner(mountpoint);
  for (const [rel, f] of Object.entries(files)) {
    const target = join(mountpoint, rel);
    await fsp.mkdir(join(target, '..'), { recursive: true, mode: 0o755 });
    // Unique per call: two jobs of one process may fill the same volume at once (the egress sidecar and the results forwarder).
    const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await fsp.copyFile(f.source, tmp, constants.COPYFILE_FICLONE);
    await fsp.chmod(tmp, f.mode);
    await fsp.rename(tmp, target);
  }
  if (process.getuid?.() === 0) {
    for (const rel of Object.keys(files)) {
      let p = rel;
      while (p && p !== '.') {
        await fsp.lchown(join(mountpoint, p), owner.uid, owner.gid);
        p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
      }
    }
  }
  await fsp.writeFile(join(mountpoint, COMPLETE), '');
  return name;
}
