import { constants, promises as fsp } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { minimatch } from 'minimatch';
import { listDirBeneath, readBytesBeneath } from '../common';

/**
 * Files the sandboxed script hands back to the workflow (input `results`): globs inside the
 * workspace copy, copied after the run into a folder of their own (input `results-path`), never
 * over the workspace. The copy is written by hostile code, so only regular files are taken, no
 * link is followed on either side, and the count and the bytes are capped.
 */
export interface ResultsRequest {
  /** Globs relative to the workspace (`dist/**`, `report.xml`); `!glob` excludes. */
  patterns: string[];
  /** Absolute destination folder: new, or an empty directory. */
  dest: string;
  maxFiles: number;
  maxBytes: number;
}

export interface ResultsReport {
  files: Array<{ path: string; bytes: number }>;
  /** Matched entries that were not copied, with why (a link, a FIFO, …). */
  skipped: Array<{ path: string; why: string }>;
  /** Set when nothing was copied because a cap or the destination refused it. */
  error?: string;
}

/** Most entries walked in the workspace copy, and deepest directory, before the walk gives up. */
const MAX_WALK_ENTRIES = 200_000;
const MAX_DEPTH = 64;

/** Checks the `results` globs: relative, no `..`, not empty. Throws a message naming the input. */
export function parseResultsPatterns(text: string): string[] {
  const patterns = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (patterns.length > 100) throw new Error(`input 'results' has ${patterns.length} patterns; at most 100`);
  for (const p of patterns) {
    const body = (p.startsWith('!') ? p.slice(1) : p).replace(/^\.\//, '');
    if (!body || body.startsWith('/') || body.split('/').includes('..') || body.includes('\0')) throw new Error(`input 'results': '${p.slice(0, 200)}' must be a glob relative to the workspace, without '..'`);
  }
  return patterns.map((p) => (p.startsWith('!') ? `!${p.slice(1).replace(/^\.\//, '')}` : p.replace(/^\.\//, '')));
}

/**
 * The destination folder for `results-path`, relative to the workspace when not absolute. It may not
 * be the workspace or hold it, and no existing component may be a link (a checked-out repository can
 * commit `out -> /etc`); it must not exist or be an empty directory.
 */
export async function resultsDestination(input: string, workspace: string): Promise<string> {
  const dest = resolve(workspace, input);
  const up = relative(dest, workspace);
  if (up === '' || (!up.startsWith('..') && !isAbsolute(up))) throw new Error(`input 'results-path' '${input}' is the workspace or holds it: results go into a folder of their own`);
  let at = dest.startsWith(sep) ? sep : '';
  for (const part of dest.split(sep).filter(Boolean)) {
    at = join(at, part);
    const st = await fsp.lstat(at).catch(() => undefined);
    if (!st) break;
    if (st.isSymbolicLink()) throw new Error(`input 'results-path': ${at} is a symbolic link; links are never followed`);
    if (!st.isDirectory()) throw new Error(`input 'results-path': ${at} is not a directory`);
  }
  const existing = await fsp.readdir(dest).catch(() => undefined);
  if (existing?.length) throw new Error(`input 'results-path': ${dest} is not empty; results never overwrite files`);
  return dest;
}

function matches(path: string, patterns: string[]): boolean {
  let hit = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    const glob = negate ? p.slice(1) : p;
    // A pattern naming a directory takes everything below it, as upload-artifact does.
    if (minimatch(path, glob, { dot: true, nocomment: true, nonegate: true }) || minimatch(path, `${glob.replace(/\/+$/, '')}/**`, { dot: true, nocomment: true, nonegate: true })) hit = !negate;
  }
  return hit;
}

/** Walks the workspace copy (`root`, a job volume) without following links and copies what matches. */
export async function collectResults(root: string, req: ResultsRequest): Promise<ResultsReport> {
  const matched: Array<{ path: string; kind: string }> = [];
  let walked = 0;
  const walk = async (rel: string, depth: number): Promise<string | undefined> => {
    const list = await listDirBeneath(root, rel);
    if (!list.ok) return `${rel || '.'}: ${list.error}`;
    for (const e of list.entries) {
      if (++walked > MAX_WALK_ENTRIES) return `the workspace has more than ${MAX_WALK_ENTRIES} entries; narrow the results patterns`;
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.kind === 'directory') {
        if (depth >= MAX_DEPTH) return `${path}: deeper than ${MAX_DEPTH} directories`;
        const err = await walk(path, depth + 1);
        if (err) return err;
      } else if (matches(path, req.patterns)) matched.push({ path, kind: e.kind });
    }
    return undefined;
  };
  const walkError = await walk('', 0);
  if (walkError) return { files: [], skipped: [], error: walkError };
  const skipped = matched.filter((m) => m.kind !== 'file').map((m) => ({ path: m.path, why: m.kind === 'link' ? 'a symbolic link (links are never followed)' : 'not a regular file' }));
  const wanted = matched.filter((m) => m.kind === 'file');
  if (wanted.length > req.maxFiles) return { files: [], skipped, error: `${wanted.length} files match the results patterns; the limit is ${req.maxFiles} (results-max-files): nothing was copied` };
  const files: ResultsReport['files'] = [];
  let total = 0;
  const contents: Buffer[] = [];
  for (const f of wanted) {
    const r = await readBytesBeneath(root, f.path, req.maxBytes - total);
    if (!r.ok) {
      if (/limit/.test(r.error)) return { files: [], skipped, error: `the results are larger than ${req.maxBytes} bytes (results-max-size) at ${f.path}: nothing was copied` };
      skipped.push({ path: f.path, why: r.error });
      continue;
    }
    total += r.bytes.length;
    files.push({ path: f.path, bytes: r.bytes.length });
    contents.push(r.bytes);
  }
  await fsp.mkdir(req.dest, { recursive: true, mode: 0o755 });
  for (const [i, f] of files.entries()) {
    const target = join(req.dest, f.path);
    // Directories below dest are made here, so none of them can be a link; the file must be new.
    await fsp.mkdir(dirname(target), { recursive: true, mode: 0o755 });
    const fh = await fsp.open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      await fh.writeFile(contents[i]!);
    } finally {
      await fh.close();
    }
  }
  return { files, skipped };
}
