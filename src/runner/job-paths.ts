/** Where a job's volumes appear inside every step container (GitHub's container-job layout). */
export const JOB_PATHS = {
  workspace: '/github/workspace',
  home: '/github/home',
  temp: '/__w/_temp',
  toolCache: '/__t',
  /** /tmp carries over between a job's steps, as on GitHub's runners (workflows `mktemp -d` a tool there and add it to GITHUB_PATH). */
  tmp: '/tmp',
} as const;

export type JobVolumeKind = keyof typeof JOB_PATHS;
export const JOB_VOLUME_KINDS = Object.keys(JOB_PATHS) as JobVolumeKind[];

/** `refs/heads/main` → `main`, `refs/tags/v1` → `v1` (GitHub's ref_name). */
export function refName(ref: string): string {
  return ref.replace(/^refs\/(heads|tags)\//, '');
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
