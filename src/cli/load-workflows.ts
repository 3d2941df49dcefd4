import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseWorkflowText, workflowRunsFor, type Diagnostic, type WorkflowModel } from '../workflow';

export interface LoadedWorkflows {
  workflows: WorkflowModel[];
  diagnostics: Diagnostic[];
}

/** Reads the named workflow, or every workflow under .github/workflows that the event triggers (with GitHub's filters). */
export function loadWorkflows(repoDir: string, file: string | undefined, event: string, payload: Record<string, unknown> = {}): LoadedWorkflows {
  const files = file
    ? [file]
    : existsSync(join(repoDir, '.github/workflows'))
      ? readdirSync(join(repoDir, '.github/workflows'))
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => join(repoDir, '.github/workflows', f))
      : [];
  const workflows: WorkflowModel[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const f of files) {
    const shown = relative(repoDir, f) || f;
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      diagnostics.push({ file: shown, line: 1, column: 1, severity: 'error', message: `cannot read: ${(e as NodeJS.ErrnoException).code}` });
      continue;
    }
    const r = parseWorkflowText(shown, text);
    diagnostics.push(...r.diagnostics);
    if (r.value && (file || workflowRunsFor(r.value.on, event, payload).runs)) workflows.push(r.value);
  }
  return { workflows, diagnostics };
}
