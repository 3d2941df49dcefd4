import { Command, CommanderError, Option } from 'commander';
import type { OptionSpec } from './completion';

/**
 * Every command's arguments are parsed by commander from the command's own option table (the one
 * object that `stockade completion` also reads): unknown options, missing values and stray
 * arguments are errors naming the option. Help and usage are the commands' own (printed by main
 * before anything is parsed), so commander prints nothing itself.
 */
export type ParsedValues<T extends Readonly<Record<string, OptionSpec>>> = {
  -readonly [K in keyof T]?: T[K] extends { type: 'boolean' } ? boolean : T[K] extends { multiple: true } ? string[] : string;
};

/** A parse error as main reports it: `stockade CMD: <message>` and the command's usage, exit 2. */
export class ParseError extends Error {
  readonly code = 'ERR_PARSE_ARGS';
}

function message(e: CommanderError): string {
  const text = e.message.replace(/^error: /, '');
  if (e.code === 'commander.unknownOption') return text.replace(/^unknown option/, 'Unknown option');
  const quoted = /'(.*)'/.exec(text)?.[0];
  if (e.code === 'commander.excessArguments') return `takes no argument${quoted ? ` (got ${quoted})` : ''}`;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function parseOptions<T extends Readonly<Record<string, OptionSpec>>>(name: string, spec: T, argv: string[], o: { positionals?: boolean } = {}): { values: ParsedValues<T>; positionals: string[] } {
  const cmd = new Command(name)
    .exitOverride()
    .helpOption(false)
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined, outputError: () => undefined });
  if (o.positionals) cmd.argument('[args...]');
  else cmd.allowExcessArguments(false);
  const attribute = new Map<string, string>();
  for (const [key, s] of Object.entries(spec)) {
    const opt = new Option(`${s.short ? `-${s.short}, ` : ''}--${key}${s.type === 'string' ? ' <value>' : ''}`);
    if (s.multiple) opt.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    cmd.addOption(opt);
    attribute.set(key, opt.attributeName());
  }
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) throw new ParseError(message(e));
    throw e;
  }
  const opts = cmd.opts() as Record<string, unknown>;
  const values: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    const v = opts[attribute.get(key)!];
    // commander reads `--no-X` as X = false (default true): the flag was given when X is false.
    if (key.startsWith('no-') && s.type === 'boolean') {
      if (v === false) values[key] = true;
    } else if (v !== undefined) values[key] = v;
  }
  return { values: values as ParsedValues<T>, positionals: o.positionals ? ((cmd.processedArgs[0] as string[] | undefined) ?? []) : [] };
}
