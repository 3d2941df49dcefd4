import { chownSync, copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

/** What of an installed runner a fresh runner directory does not take: its registration, its work and logs. */
const SKIPPED = new Set(['_work', '_diag', '.runner', '.credentials', '.credentials_rsaparams', '.env', '.path', '.service']);

/**
 * A fresh directory for one just-in-time runner: the installed runner's files by hard link (a copy
 * where a link cannot be made), its directories owned by the runner's user, its own empty `_work`;
 * never the install's registration, credentials or work.
 */
export function layoutRunnerDir(installDir: string, dir: string, owner: { uid: number; gid: number }): void {
  const walk = (from: string, to: string, top: boolean) => {
    mkdirSync(to, { mode: 0o755 });
    chownSync(to, owner.uid, owner.gid);
    for (const e of readdirSync(from, { withFileTypes: true })) {
      if (top && SKIPPED.has(e.name)) continue;
      const a = join(from, e.name);
      const b = join(to, e.name);
      if (e.isDirectory()) walk(a, b, false);
      else if (e.isSymbolicLink()) symlinkSync(readlinkSync(a), b);
      else if (e.isFile()) {
        try {
          linkSync(a, b);
        } catch {
          copyFileSync(a, b);
          chownSync(b, owner.uid, owner.gid);
        }
      }
    }
  };
  if (!existsSync(join(installDir, 'run.sh'))) throw new Error(`no official runner at ${installDir} (run.sh is missing); install it with stockade setup --runner TARBALL`);
  walk(installDir, dir, true);
  mkdirSync(join(dir, '_work'), { mode: 0o755 });
  chownSync(join(dir, '_work'), owner.uid, owner.gid);
}
