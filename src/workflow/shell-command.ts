export interface ShellCommand {
  /** argv with the script path substituted for {0}. */
  argv(scriptPath: string): string[];
  /** File extension for the script file (python wants .py). */
  extension: string;
}

/** GitHub's shell templates for Linux runners. */
const BUILTIN: Record<string, { template: string; extension: string }> = {
  '': { template: 'bash -e {0}', extension: '.sh' },
  bash: { template: 'bash --noprofile --norc -eo pipefail {0}', extension: '.sh' },
  sh: { template: 'sh -e {0}', extension: '.sh' },
  python: { template: 'python3 {0}', extension: '.py' },
};

/**
 * Resolves a step's `shell:` to an argv template. Returns an error message for an
 * unknown shell instead of throwing.
 */
export function resolveShell(shell: string | undefined): ShellCommand | { error: string } {
  const key = (shell ?? '').trim();
  const builtin = BUILTIN[key];
  const template = builtin?.template ?? key;
  if (!builtin && !template.includes('{0}')) {
    return { error: `shell '${key}' is not supported: use bash, sh, python, or a command template containing {0}` };
  }
  const words = template.split(/\s+/).filter(Boolean);
  return {
    extension: builtin?.extension ?? '',
    argv: (scriptPath) => words.map((w) => w.replaceAll('{0}', scriptPath)),
  };
}
