import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join, posix } from 'node:path';
import { minimatch } from 'minimatch';
import { JOB_PATHS } from './job-paths';

/** Bounds on one hashFiles() call over an untrusted workspace. */
export const HASH_FILES_LIMITS = { maxEntries: 200_000, maxBytes: 4 * 1024 ** 3 };

/** @actions/glob's matching options (the runner's hashFiles uses that library). */
const MATCH = { dot: true, nobrace: true, nocomment: true, noext: true, nonegate: true } as const;

interface Pattern {
  negate: boolean;
  glob: string;
  dirOnly: boolean;
}

function toPatterns(args: string[]): Pattern[] {
  const out: Pattern[] = [];
  for (const line of args.flatMap((a) => a.split('\n'))) {
    let p = line.trim();
    if (!p || p.startsWith('#')) continue;
    let negate = false;
    while (p.startsWith('!')) {
      negate = !negate;
      p = p.slice(1);
    }
    if (p.startsWith(`${JOB_PATHS.workspace}/`)) p = p.slice(JOB_PATHS.workspace.length + 1);
    else if (posix.isAbsolute(p)) continue; // outside the workspace: GitHub ignores such files
    const dirOnly = p.endsWith('/');
    p = posix.normalize(p.replace(/\/+$/, ''));
    if (p === '.' || p.startsWith('../')) continue;
    out.push({ negate, glob: p, dirOnly });
  }
  return out;
}

/** A path matches a pattern when the pattern matches it or one of its parent directories (@actions/glob's implicit descendants). */
function matches(p: Pattern, rel: string): boolean {
  const parts = rel.split('/');
  for (let i = parts.length; i >= 1; i--) {
    const prefix = parts.slice(0, i).join('/');
    if (p.dirOnly && i === parts.length) continue; // the file itself is not a directory
    if (minimatch(prefix, p.glob, MATCH)) return true;
  }
  return false;
}

function hashFile(path: string, budget: { bytes: number }): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      budget.bytes -= n;
      if (budget.bytes < 0) throw new Error(`hashFiles read more than ${HASH_FILES_LIMITS.maxBytes} bytes`);
      h.update(buf.subarray(0, n));
    }
    return h.digest();
  } finally {
    closeSync(fd);
  }
}

/**
 * GitHub's `hashFiles()`: SHA-256 over the SHA-256 of each matching regular file
 * of the workspace, or '' when none matches. Runs on the host over the job's
 * workspace volume, so symbolic links are never followed (GitHub follows them;
 * here they could point at host files) and files are taken in name order.
 */
export function hashWorkspaceFiles(workspaceDir: string, args: string[]): string {
  const patterns = toPatterns(args);
  if (!patterns.some((p) => !p.negate)) return '';
  const result = createHash('sha256');
  let count = 0;
  let entries = 0;
  const budget = { bytes: HASH_FILES_LIMITS.maxBytes };
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(workspaceDir, rel)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (++entries > HASH_FILES_LIMITS.maxEntries) throw new Error(`hashFiles walked more than ${HASH_FILES_LIMITS.maxEntries} entries`);
      const r = rel ? `${rel}/${name}` : name;
      const abs = join(workspaceDir, r);
      let st;
      try {
        st = lstatSync(abs);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) {
        let included = false;
        for (const p of patterns) if (matches(p, r)) included = !p.negate;
        if (!included) continue;
        const digest = hashFile(abs, budget);
        if (!digest) continue;
        result.update(digest);
        count++;
      }
    }
  };
  walk('');
  return count ? result.digest('hex') : '';
}
