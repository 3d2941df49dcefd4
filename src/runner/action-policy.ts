/** Which remote actions a runner's operator lets jobs use. */
export interface ActionPolicy {
  /** Only `owner/repo@<40-hex SHA>`: a tag or branch can be moved under the workflow, a commit cannot. */
  requireShaPins?: boolean;
  /** Only actions of these owners (case-insensitive; `*` for any). undefined: any owner. */
  allowedOwners?: string[];
}

/** Why `owner/repo@ref` may not run under `policy`, or undefined. */
export function actionPolicyRefusal(r: { owner: string; repo: string; ref: string }, policy: ActionPolicy | undefined): string | undefined {
  if (!policy) return undefined;
  const uses = `${r.owner}/${r.repo}@${r.ref}`;
  if (policy.allowedOwners && !policy.allowedOwners.some((o) => o === '*' || o.toLowerCase() === r.owner.toLowerCase())) {
    return `uses: ${uses}: actions of '${r.owner}' are not allowed on this runner (allowed owners: ${policy.allowedOwners.join(', ') || 'none'})`;
  }
  if (policy.requireShaPins && !/^[0-9a-f]{40}$/.test(r.ref)) return `uses: ${uses}: this runner requires actions pinned to a full commit SHA (owner/repo@<40 hex digits>)`;
  return undefined;
}
