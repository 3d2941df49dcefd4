import { listDirBeneath, readFileBeneath } from '../common';
import { WORKFLOW_LIMITS, type Diagnostic } from '../workflow';

export interface WorkflowFile {
  /** Path relative to the repository root, as diagnostics show it. */
  path: string;
  text: string;
}

/** At most this many workflow files are read from one directory. */
export const MAX_WORKFLOW_FILES = 200;

/**
 * The `*.yml` / `*.yaml` files directly in `rel` (for example `.github/workflows`) of a
 * hostile repository checkout: the directory and each file are reached without following
 * any link, only regular files are read, each within GitHub's 512 KiB limit. A file that
 * is refused becomes a diagnostic naming it and why; its content is never read.
 */
export async function readWorkflowFiles(repoDir: string, rel: string): Promise<{ files: WorkflowFile[]; diagnostics: Diagnostic[] }> {
  const files: WorkflowFile[] = [];
  const diagnostics: Diagnostic[] = [];
  const listed = await listDirBeneath(repoDir, rel, 10_000);
  if (!listed.ok) {
    if (!listed.missing) diagnostics.push({ file: rel, line: 1, column: 1, severity: 'error', message: listed.error });
    return { files, diagnostics };
  }
  const names = listed.entries.filter((e) => /\.ya?ml$/.test(e.name));
  if (names.length > MAX_WORKFLOW_FILES) diagnostics.push({ file: rel, line: 1, column: 1, severity: 'error', message: `${names.length} workflow files; at most ${MAX_WORKFLOW_FILES} are read` });
  for (const e of names.slice(0, MAX_WORKFLOW_FILES)) {
    const r = await readWorkflowFile(repoDir, `${rel}/${e.name}`);
    if ('error' in r) diagnostics.push(r.error);
    else files.push(r);
  }
  return { files, diagnostics };
}

/** One workflow file of a hostile checkout, read without following links, a regular file within 512 KiB. */
export async function readWorkflowFile(repoDir: string, rel: string): Promise<WorkflowFile | { error: Diagnostic }> {
  const r = await readFileBeneath(repoDir, rel, WORKFLOW_LIMITS.maxFileBytes);
  if (!r.ok) return { error: { file: rel, line: 1, column: 1, severity: 'error', message: `cannot read the workflow: ${r.error}` } };
  return { path: rel, text: r.text };
}
