import { DEFAULT_PERMISSIONS, type JobModel, type PermissionScope, type Permissions, type WorkflowModel } from '../workflow';

/** Installation-token permission names of the workflow scopes (id-token and models are not token permissions). */
const APP_PERMISSION: Partial<Record<PermissionScope, string>> = {
  actions: 'actions',
  attestations: 'attestations',
  checks: 'checks',
  contents: 'contents',
  deployments: 'deployments',
  discussions: 'discussions',
  issues: 'issues',
  packages: 'packages',
  pages: 'pages',
  'pull-requests': 'pull_requests',
  'repository-projects': 'repository_projects',
  'security-events': 'security_events',
  statuses: 'statuses',
};

export type TokenPermissions = Record<string, 'read' | 'write'>;

/** Mints each job's GITHUB_TOKEN (app mode: an installation token for the job's repository only). */
export interface JobTokenSource {
  mint(permissions: TokenPermissions, jobId: string): Promise<{ token: string; revoke(): Promise<void> }>;
  /** Every write becomes read: a fork's pull request, as on GitHub. */
  readOnly: boolean;
}

/**
 * The job's token permissions: the job's `permissions:`, else the workflow's, else GitHub's
 * restricted default; `metadata: read` always (GitHub adds it); writes read-only for forks.
 */
export function tokenPermissions(wf: WorkflowModel, job: JobModel, readOnly: boolean): TokenPermissions {
  const p: Permissions = job.permissions ?? wf.permissions ?? DEFAULT_PERMISSIONS;
  const out: TokenPermissions = { metadata: 'read' };
  for (const [scope, level] of Object.entries(p) as Array<[PermissionScope, string]>) {
    const name = APP_PERMISSION[scope];
    if (!name || level === 'none') continue;
    out[name] = readOnly ? 'read' : (level as 'read' | 'write');
  }
  return out;
}
