// The commands' argument parser (commander, from each command's option table).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOptions, ParseError } from '../../src/cli/parse-options';

const SPEC = {
  workflow: { type: 'string', short: 'W' },
  list: { type: 'boolean', short: 'l' },
  graph: { type: 'boolean', short: 'g' },
  secret: { type: 'string', short: 's', multiple: true },
  'output-limit': { type: 'string' },
  'no-request-pacing': { type: 'boolean' },
} as const;

test('values keep the table\'s names: short flags, grouping, --opt=value, repeatable flags, --no- flags, positionals and --', () => {
  const r = parseOptions('run', SPEC, ['push', '-lg', '-W', 'ci.yml', '--output-limit=2m', '-s', 'A=1', '--secret', 'B=2', '--no-request-pacing', '--', '--not-a-flag'], { positionals: true });
  assert.deepEqual(r.values, { workflow: 'ci.yml', list: true, graph: true, secret: ['A=1', 'B=2'], 'output-limit': '2m', 'no-request-pacing': true });
  assert.deepEqual(r.positionals, ['push', '--not-a-flag']);
  assert.deepEqual(parseOptions('run', SPEC, []).values, {}, 'nothing given, nothing set (a --no- flag included)');
});

test('unknown options, missing values and stray arguments are errors naming them', () => {
  assert.throws(() => parseOptions('run', SPEC, ['--bogus']), (e: unknown) => e instanceof ParseError && e.message === "Unknown option '--bogus'" && e.code === 'ERR_PARSE_ARGS');
  assert.throws(() => parseOptions('run', SPEC, ['-W']), /Option '-W, --workflow <value>' argument missing/);
  assert.throws(() => parseOptions('doctor', {}, ['extra']), /takes no argument/);
  assert.throws(() => parseOptions('run', SPEC, ['--list=yes']), ParseError);
});
