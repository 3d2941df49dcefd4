import { lstat } from 'node:fs/promises';
import { dirname, relative, basename } from 'node:path';
import { readWorkflowFile, readWorkflowFiles } from '../runner';
import { parseWorkflowText, workflowRunsFor, type Diagnostic, type WorkflowModel } from '../workflow';

export interface LoadedWorkflows {
  workflows: WorkflowModel[];
  diagnostics: Diagnostic[];
}

/**
 * Reads the named workflow, or every workflow under .github/workflows that the event triggers
 * (with GitHub's filters). Files are read without following links (a checkout is hostile
 * too), regular files only, within GitHub's size limit.
 */
export async function loadWorkflows(repoDir: string, file: string | undefined, event: string, payload: Record<string, unknown> = {}): Promise<LoadedWorkflows> {
  const workflows: WorkflowModel[] = [];
  const diagnostics: Diagnostic[] = [];
  let files;
  // act's -W takes a directory too: its workflows, chosen by the event like .github/workflows'.
  const isDir = !!file && (await lstat(file).then((s) => s.isDirectory(), () => false));
  if (file && isDir) {
    const r = await readWorkflowFiles(dirname(file), basename(file));
    diagnostics.push(...r.diagnostics);
    files = r.files;
  } else if (file) {
    // A file named on the command line is the user's choice: it is read from its own directory, without links.
    const r = await readWorkflowFile(dirname(file), basename(file));
    const shown = relative(repoDir, file) || file;
    files = 'error' in r ? (diagnostics.push({ ...r.error, file: shown }), []) : [{ path: shown, text: r.text }];
  } else {
    const r = await readWorkflowFiles(repoDir, '.github/workflows');
    diagnostics.push(...r.diagnostics);
    files = r.files;
  }
  for (const f of files) {
    const r = parseWorkflowText(f.path, f.text);
    diagnostics.push(...r.diagnostics);
    if (r.value && ((file && !isDir) || workflowRunsFor(r.value.on, event, payload).runs)) workflows.push(r.value);
  }
  return { workflows, diagnostics };
}
