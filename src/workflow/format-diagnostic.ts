import type { Diagnostic } from './model';

/** `file:line:column: error: message`, the form editors and CI logs link. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.column}: ${d.severity}: ${d.message}`;
}
