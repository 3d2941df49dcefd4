/**
 * GitHub's environment-file commands (GITHUB_ENV, GITHUB_OUTPUT, GITHUB_STATE):
 * `NAME=value` lines and the multi-line `NAME<<DELIMITER … DELIMITER` form.
 */
export interface FileCommandResult {
  values: Record<string, string>;
  errors: string[];
}

/** Largest environment file read back from a step (GitHub caps outputs at 1 MiB per job). */
export const MAX_FILE_COMMAND_BYTES = 1024 * 1024;

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export function parseFileCommands(text: string): FileCommandResult {
  const values: Record<string, string> = {};
  const errors: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const heredoc = line.indexOf('<<');
    const eq = line.indexOf('=');
    if (heredoc > 0 && (eq < 0 || heredoc < eq)) {
      const name = line.slice(0, heredoc);
      const delimiter = line.slice(heredoc + 2);
      if (!NAME.test(name) || delimiter === '') {
        errors.push(`line ${i + 1}: invalid heredoc start '${truncate(line)}'`);
        continue;
      }
      const end = lines.indexOf(delimiter, i + 1);
      if (end < 0) {
        errors.push(`line ${i + 1}: matching delimiter not found '${truncate(delimiter)}'`);
        break;
      }
      values[name] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (eq > 0) {
      const name = line.slice(0, eq);
      if (!NAME.test(name)) {
        errors.push(`line ${i + 1}: invalid name '${truncate(name)}'`);
        continue;
      }
      values[name] = line.slice(eq + 1);
    } else {
      errors.push(`line ${i + 1}: expected NAME=value or NAME<<DELIMITER, got '${truncate(line)}'`);
    }
  }
  return { values, errors };
}

/**
 * Environment names a step may not set for later steps through GITHUB_ENV: they make
 * the shell, the dynamic loader or a runtime execute code the next step did not ask for.
 * GitHub itself refuses NODE_OPTIONS. ACTIONS_ALLOW_UNSECURE_COMMANDS may only come from the
 * workflow's own `env:`: a step must not switch ::set-env:: and ::add-path:: on for the steps after it.
 * The same list applies to ::set-env:: (when allowed at all).
 */
export function isForbiddenEnvName(name: string): boolean {
  const upper = name.toUpperCase();
  return (
    ['NODE_OPTIONS', 'LD_PRELOAD', 'LD_AUDIT', 'LD_LIBRARY_PATH_PRELOAD', 'BASH_ENV', 'ENV', 'PROMPT_COMMAND', 'SHELLOPTS', 'BASHOPTS', 'PS4', 'IFS', 'GCONV_PATH', 'PYTHONSTARTUP'].includes(upper) ||
    upper.startsWith('BASH_FUNC_') ||
    upper.startsWith('GITHUB_') ||
    upper.startsWith('RUNNER_') ||
    upper === 'CI' ||
    upper === 'ACTIONS_ALLOW_UNSECURE_COMMANDS' ||
    upper === 'HOME' ||
    upper === 'PATH'
  );
}

/** GITHUB_PATH: one directory per line, prepended in reverse order of appearance. */
export function parsePathFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
