/**
 * Shell completions generated from the commands' own option tables (the objects commander parses
 * with), so a flag added to a command is offered by every shell without a second list to keep.
 */

/** One option of a command's table. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
}

export interface CommandSpec {
  name: string;
  summary: string;
  options: Readonly<Record<string, OptionSpec>>;
  /** Words offered as the first argument after the command (subcommands, event names, shells). */
  words?: readonly string[];
}

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** Options whose value is a path: the shell offers files there. */
const PATH_OPTION = /(^|-)(file|dir|workflow|eventpath|cache|socket|config|path|cert|key)$/;

function flags(c: CommandSpec): string[] {
  return Object.entries(c.options).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]).concat('--help');
}

function valueFlags(c: CommandSpec, paths: boolean): string[] {
  return Object.entries(c.options)
    .filter(([name, o]) => o.type === 'string' && PATH_OPTION.test(name) === paths)
    .flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
}

/** Single-quoted for sh, bash, zsh and fish alike (the table has no quotes, but never trust that). */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * One `case` branch per command, for bash and zsh alike: what completes after a flag that takes a
 * path, after one that takes another value, and otherwise (the command's flags and first words).
 */
function caseBranches(commands: readonly CommandSpec[], shell: { paths(p: string[]): string; values(v: string[]): string; words(w: string[]): string; wordsFirst: boolean }): string {
  return commands
    .map((c) => {
      const paths = valueFlags(c, true);
      const values = valueFlags(c, false);
      const words = shell.words([...flags(c), ...(c.words ?? [])]);
      return [`    ${c.name})`, shell.wordsFirst ? words : '', paths.length ? shell.paths(paths) : '', values.length ? shell.values(values) : '', shell.wordsFirst ? '' : words, '      ;;'].filter(Boolean).join('\n');
    })
    .join('\n');
}

function bash(commands: readonly CommandSpec[]): string {
  const cases = caseBranches(commands, {
    wordsFirst: true,
    words: (w) => `      words=${q(w.join(' '))}`,
    paths: (p) => `      case "$prev" in ${p.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;; esac`,
    values: (v) => `      case "$prev" in ${v.join('|')}) return 0 ;; esac`,
  });
  return `# bash completion for stockade: source <(stockade completion bash), or save it in
# /etc/bash_completion.d/stockade.
_stockade() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W ${q(['--help', '--version', ...commands.map((c) => c.name)].join(' '))} -- "$cur"))
    return 0
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _stockade stockade
`;
}

function zsh(commands: readonly CommandSpec[]): string {
  const described = commands.map((c) => q(`${c.name}:${c.summary.replace(/:/g, '\\:')}`)).join(' ');
  const cases = caseBranches(commands, {
    wordsFirst: false,
    words: (w) => `      compadd -- ${w.map(q).join(' ')}`,
    paths: (p) => `      case $prev in (${p.join('|')}) _files; return ;; esac`,
    values: (v) => `      case $prev in (${v.join('|')}) _message 'value'; return ;; esac`,
  });
  return `#compdef stockade
# zsh completion for stockade: source <(stockade completion zsh), or save it as _stockade in a
# directory of $fpath.
_stockade() {
  local -a commands
  commands=(${described})
  if (( CURRENT == 2 )); then
    _describe -t commands 'stockade command' commands
    return
  fi
  local prev=\${words[CURRENT-1]}
  case \${words[2]} in
${cases}
  esac
}
if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  _stockade "$@"
else
  compdef _stockade stockade
fi
`;
}

function fish(commands: readonly CommandSpec[]): string {
  const lines = [
    '# fish completion for stockade: stockade completion fish | source, or save it as',
    '# ~/.config/fish/completions/stockade.fish.',
    'complete -c stockade -f',
    `complete -c stockade -n __fish_use_subcommand -l help -d ${q('print the usage')}`,
    `complete -c stockade -n __fish_use_subcommand -l version -d ${q('print the version')}`,
  ];
  for (const c of commands) {
    lines.push(`complete -c stockade -n __fish_use_subcommand -a ${q(c.name)} -d ${q(c.summary)}`);
    const when = `-n ${q(`__fish_seen_subcommand_from ${c.name}`)}`;
    for (const [name, o] of Object.entries(c.options)) {
      const value = o.type === 'string' ? (PATH_OPTION.test(name) ? ' -r -F' : ' -r') : '';
      lines.push(`complete -c stockade ${when} -l ${q(name)}${o.short ? ` -s ${q(o.short)}` : ''}${value}`);
    }
    lines.push(`complete -c stockade ${when} -l help`);
    if (c.words?.length) lines.push(`complete -c stockade ${when} -a ${q(c.words.join(' '))}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The completion script for one shell. */
export function completionScript(shell: Shell, commands: readonly CommandSpec[]): string {
  return shell === 'bash' ? bash(commands) : shell === 'zsh' ? zsh(commands) : fish(commands);
}
