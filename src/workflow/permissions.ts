import type { SourcePos } from './model';

/**
 * GITHUB_TOKEN permission scopes a workflow may name
 * (https://docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions#permissions).
 */
export const PERMISSION_SCOPES = ['actions', 'attestations', 'checks', 'contents', 'deployments', 'discussions', 'id-token', 'issues', 'models', 'packages', 'pages', 'pull-requests', 'repository-projects', 'security-events', 'statuses'] as const;
export type PermissionScope = (typeof PERMISSION_SCOPES)[number];
export type PermissionLevel = 'read' | 'write' | 'none';
/** Every scope with its level: `read-all`, `write-all` and `{}` written out. */
export type Permissions = Record<PermissionScope, PermissionLevel>;

const all = (level: PermissionLevel): Permissions => Object.fromEntries(PERMISSION_SCOPES.map((s) => [s, level])) as Permissions;

/** GitHub's default for a repository whose token is restricted (the default since 2023): contents and packages read. */
export const DEFAULT_PERMISSIONS: Permissions = { ...all('none'), contents: 'read', packages: 'read' };

/** `permissions:` of a workflow or job; undefined when absent. Errors name the scope or value. */
export function parsePermissions(v: unknown, pos: Omit<SourcePos, 'file'>, err: (pos: Omit<SourcePos, 'file'>, message: string) => void): Permissions | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'read-all') return all('read');
  if (v === 'write-all') return all('write');
  if (typeof v !== 'object' || Array.isArray(v)) {
    err(pos, `permissions must be read-all, write-all or a mapping of scopes to read, write or none (got ${JSON.stringify(v)})`);
    return undefined;
  }
  const out = all('none');
  for (const [k, level] of Object.entries(v as Record<string, unknown>)) {
    if (!(PERMISSION_SCOPES as readonly string[]).includes(k)) {
      err(pos, `permissions: '${k}' is not a permission scope (${PERMISSION_SCOPES.join(', ')})`);
      continue;
    }
    const okLevels = k === 'id-token' || k === 'models' ? ['write', 'read', 'none'] : ['read', 'write', 'none'];
    if (typeof level !== 'string' || !okLevels.includes(level)) {
      err(pos, `permissions: ${k} must be read, write or none (got ${JSON.stringify(level)})`);
      continue;
    }
    out[k as PermissionScope] = level as PermissionLevel;
  }
  return out;
}
