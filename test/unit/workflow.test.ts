import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateCondition, interpolate, parseFileCommands, parseWorkflowText, resolveShell, isForbiddenEnvName, findNeedsCycle } from '../../src/workflow';

const ok = { success: () => true, failure: () => false, cancelled: () => false };
const failed = { success: () => false, failure: () => true, cancelled: () => false };

test('a valid workflow parses into jobs and steps', () => {
  const r = parseWorkflowText('ci.yml', 'on: push\njobs:\n  a:\n    runs-on: x\n    timeout-minutes: 1.5\n    steps:\n      - run: echo hi\n        shell: bash\n');
  assert.deepEqual(r.diagnostics, []);
  assert.equal(r.value?.jobs[0]?.timeoutMinutes, 1.5);
  assert.equal(r.value?.jobs[0]?.steps[0]?.shell, 'bash');
});

const bad: Array<[string, string, RegExp, number]> = [
  ['unknown key', 'on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n        bogus: 1\n', /bogus/, 7],
  ['malformed YAML', 'on: push\njobs:\n  a: [\n', /./, 4],
  ['duplicate key', 'on: push\njobs:\n  a:\n    runs-on: x\n    runs-on: y\n    steps: [{run: x}]\n', /unique|duplicate/i, 5],
  ['custom tag', 'on: push\njobs:\n  a:\n    runs-on: !!js/function x\n    steps: [{run: x}]\n', /tag/i, 4],
  ['timeout too large', 'on: push\njobs:\n  a:\n    runs-on: x\n    timeout-minutes: 100000\n    steps: [{run: x}]\n', /timeout-minutes/, 5],
];
for (const [name, text, message, line] of bad) {
  test(`bad workflow (${name}) gives a diagnostic with its line`, () => {
    const r = parseWorkflowText('w.yml', text);
    assert.equal(r.value, undefined);
    const d = r.diagnostics[0]!;
    assert.match(d.message, message);
    assert.equal(d.line, line, JSON.stringify(r.diagnostics));
    assert.equal(d.file, 'w.yml');
  });
}

test('an alias bomb is refused at a bounded cost', () => {
  let y = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 1; i < 12; i++) y += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
  const started = Date.now();
  const r = parseWorkflowText('bomb.yml', `${y}on: push\njobs: {}\n`);
  assert.ok(r.diagnostics.length > 0);
  assert.ok(Date.now() - started < 5000);
});

test('needs cycles are found', () => {
  assert.deepEqual(findNeedsCycle([{ id: 'a', needs: ['b'] }, { id: 'b', needs: ['a'] }]), ['a', 'b', 'a']);
  assert.equal(findNeedsCycle([{ id: 'a', needs: [] }, { id: 'b', needs: ['a'] }]), undefined);
});

test('if: conditions follow GitHub status-check rules', () => {
  const ctx = { github: { ref: 'refs/heads/main' } };
  assert.equal(evaluateCondition(undefined, ctx, ok), true);
  assert.equal(evaluateCondition(undefined, ctx, failed), false);
  assert.equal(evaluateCondition("github.ref == 'refs/heads/main'", ctx, failed), false);
  assert.equal(evaluateCondition('${{ always() }}', ctx, failed), true);
  assert.equal(evaluateCondition('failure()', ctx, failed), true);
  assert.equal(evaluateCondition("github.ref == 'refs/heads/main'", ctx, ok), true);
  assert.throws(() => evaluateCondition('github.ref ==', ctx, ok), /expression/);
});

test('interpolation substitutes expressions', () => {
  assert.equal(interpolate('a ${{ 1 == 1 }} ${{ format(\'{0}-{1}\', env.X, 3) }}', { env: { X: 'x' } }), 'a true x-3');
});

test('GITHUB_ENV / GITHUB_OUTPUT files: simple and heredoc forms', () => {
  const r = parseFileCommands('A=1\nB<<EOF\nline1\nline2\nEOF\nC=x=y\n');
  assert.deepEqual(r.values, { A: '1', B: 'line1\nline2', C: 'x=y' });
  assert.match(parseFileCommands('X<<EOF\nno end\n').errors[0]!, /delimiter/);
  assert.match(parseFileCommands('garbage\n').errors[0]!, /expected/);
  assert.ok(isForbiddenEnvName('NODE_OPTIONS') && isForbiddenEnvName('LD_PRELOAD') && isForbiddenEnvName('BASH_FUNC_x%%'));
  assert.ok(!isForbiddenEnvName('MY_VAR'));
});

test('shells resolve to GitHub templates', () => {
  const b = resolveShell('bash');
  assert.ok(!('error' in b));
  assert.deepEqual(b.argv('/s.sh'), ['bash', '--noprofile', '--norc', '-eo', 'pipefail', '/s.sh']);
  assert.ok('error' in resolveShell('pwsh'));
});
