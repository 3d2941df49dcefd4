import { posix } from 'node:path';
import { interpolate, type JobStatus } from '../workflow';
import { DEFAULT_PATH, JOB_PATHS } from './job-paths';

/** Evaluates each value of an `env:` map; later maps override earlier ones. */
export function evaluateEnv(maps: Array<Record<string, string>>, contexts: Record<string, unknown>, status: JobStatus): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of maps) {
    for (const [k, v] of Object.entries(m)) out[k] = interpolate(v, { ...contexts, env: { ...(contexts.env as object), ...out } }, status);
  }
  return out;
}

/** PATH with GITHUB_PATH additions first (last added first, as GitHub does). */
export function pathWith(additions: string[]): string {
  return [...additions].reverse().concat(DEFAULT_PATH).join(':');
}

/**
 * Resolves `working-directory`: relative paths are taken from the workspace and may
 * not leave it; absolute paths are inside the container and allowed.
 */
export function resolveWorkingDirectory(dir: string | undefined): { path: string } | { error: string } {
  if (!dir) return { path: JOB_PATHS.workspace };
  if (dir.includes('\0')) return { error: 'working-directory contains a NUL byte' };
  if (posix.isAbsolute(dir)) {
    // Only the job's own volumes: never /proc (/proc/self/fd/N leads out of the container), /dev or the image.
    const path = posix.normalize(dir);
    const inside = Object.values(JOB_PATHS).some((p) => path === p || path.startsWith(`${p}/`));
    return inside ? { path } : { error: `working-directory '${dir}' is outside the job's volumes (the workspace ${JOB_PATHS.workspace}, ${JOB_PATHS.home}, ${JOB_PATHS.temp}, ${JOB_PATHS.toolCache}); /proc, /dev and the image's directories are not allowed` };
  }
  const path = posix.normalize(posix.join(JOB_PATHS.workspace, dir));
  if (path !== JOB_PATHS.workspace && !path.startsWith(`${JOB_PATHS.workspace}/`)) {
    return { error: `working-directory '${dir}' leaves the workspace` };
  }
  return { path };
}
