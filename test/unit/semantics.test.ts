import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  expandMatrix,
  filterPatternToRegExp,
  matrixJobName,
  parseActionText,
  parseWorkflowCommand,
  SecretMasker,
  workflowRunsFor,
  evaluateValue,
  interpolate,
} from '../../src/workflow';
import { hashWorkspaceFiles, parseRemoteUses } from '../../src/runner';
import { dispatchInputs } from '../../src/cli/run-command';

test('filter patterns follow GitHub\'s cheat sheet', () => {
  const cases: Array<[string, string, boolean]> = [
    ['feature/*', 'feature/my-branch', true],
    ['feature/*', 'feature/your/branch', false],
    ['feature/**', 'feature/your/branch', true],
    ['main', 'main', true],
    ['main', 'mainline', false],
    ['v2*', 'v2.0', true],
    ['v[12].[0-9]+.[0-9]+', 'v1.10.1', true],
    ['v[12].[0-9]+.[0-9]+', 'v3.0.0', false],
    ['*.js', 'app.js', true],
    ['*.js', 'js/index.js', false],
    ['**.js', 'js/index.js', true],
    ['docs/*', 'docs/README.md', true],
    ['docs/**', 'docs/mona/octocat.txt', true],
    ['**/docs/**', 'a/b/docs/x.md', true],
    ['**/README.md', 'README.md', true],
    ['*ab?c', 'xabc', true],
    ['*ab?c', 'xabbbc', false],
    ['a+b', 'aaab', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'axb', false],
  ];
  for (const [p, v, want] of cases) assert.equal(filterPatternToRegExp(p).test(v), want, `${p} vs ${v}`);
});

const repo = { full_name: 'o/r' };
test('push filters: branches, branches-ignore, tags, paths, negation order', () => {
  const on = { push: { branches: ['main', 'releases/**', '!releases/**-alpha'] } };
  assert.equal(workflowRunsFor(on, 'push', { ref: 'refs/heads/main', repository: repo }).runs, true);
  assert.equal(workflowRunsFor(on, 'push', { ref: 'refs/heads/releases/10' }).runs, true);
  assert.equal(workflowRunsFor(on, 'push', { ref: 'refs/heads/releases/10-alpha' }).runs, false);
  assert.equal(workflowRunsFor(on, 'push', { ref: 'refs/heads/dev' }).runs, false);
  assert.equal(workflowRunsFor(on, 'push', { ref: 'refs/tags/v1' }).runs, false, 'branches only: tags do not run');
  assert.equal(workflowRunsFor(on, 'pull_request', { action: 'opened' }).runs, false, 'event not listened to');
  const tagsOnly = { push: { tags: ['v*'] } };
  assert.equal(workflowRunsFor(tagsOnly, 'push', { ref: 'refs/tags/v1.0' }).runs, true);
  assert.equal(workflowRunsFor(tagsOnly, 'push', { ref: 'refs/heads/main' }).runs, false);
  const ignore = { push: { 'branches-ignore': ['dependabot/**'] } };
  assert.equal(workflowRunsFor(ignore, 'push', { ref: 'refs/heads/dependabot/npm/x' }).runs, false);
  assert.equal(workflowRunsFor(ignore, 'push', { ref: 'refs/heads/main' }).runs, true);
  const paths = { push: { paths: ['src/**', '!src/**/*.md'] } };
  const commit = (files: string[]) => ({ ref: 'refs/heads/main', commits: [{ added: [], modified: files, removed: [] }] });
  assert.equal(workflowRunsFor(paths, 'push', commit(['src/a.ts'])).runs, true);
  assert.equal(workflowRunsFor(paths, 'push', commit(['src/docs/a.md'])).runs, false);
  assert.equal(workflowRunsFor(paths, 'push', commit(['README.md', 'src/x/y.c'])).runs, true);
  assert.equal(workflowRunsFor(paths, 'push', { ref: 'refs/heads/main' }).runs, true, 'unknown changes: runs');
  const pathsIgnore = { push: { 'paths-ignore': ['docs/**'] } };
  assert.equal(workflowRunsFor(pathsIgnore, 'push', commit(['docs/a.md'])).runs, false);
  assert.equal(workflowRunsFor(pathsIgnore, 'push', commit(['docs/a.md', 'main.c'])).runs, true);
  assert.equal(workflowRunsFor(paths, 'push', commit(['x']), { changedFiles: ['src/y'] }).runs, true, 'given files win');
});

test('pull_request: default types, types, base branch filter, workflow_run', () => {
  const pr = (action: string, base = 'main') => ({ action, pull_request: { base: { ref: base } } });
  assert.equal(workflowRunsFor('pull_request', 'pull_request', pr('opened')).runs, true);
  assert.equal(workflowRunsFor('pull_request', 'pull_request', pr('synchronize')).runs, true);
  assert.equal(workflowRunsFor('pull_request', 'pull_request', pr('labeled')).runs, false, 'not a default type');
  assert.equal(workflowRunsFor({ pull_request: { types: ['labeled'] } }, 'pull_request', pr('labeled')).runs, true);
  assert.equal(workflowRunsFor({ pull_request: { branches: ['main'] } }, 'pull_request', pr('opened', 'dev')).runs, false);
  assert.equal(workflowRunsFor({ pull_request: { paths: ['src/**'] } }, 'pull_request', pr('opened'), { changedFiles: ['docs/x'] }).runs, false);
  assert.equal(workflowRunsFor(['push', 'issues'], 'issues', { action: 'closed' }).runs, true, 'other events run for every type');
  const wr = { workflow_run: { workflows: ['CI'], types: ['completed'], branches: ['main'] } };
  assert.equal(workflowRunsFor(wr, 'workflow_run', { action: 'completed', workflow_run: { name: 'CI', head_branch: 'main' } }).runs, true);
  assert.equal(workflowRunsFor(wr, 'workflow_run', { action: 'completed', workflow_run: { name: 'Other', head_branch: 'main' } }).runs, false);
});

test('matrix expansion: product, exclude, include (the docs example), limits', () => {
  const r = expandMatrix({
    fruit: ['apple', 'pear'],
    animal: ['cat', 'dog'],
    include: [{ color: 'green' }, { color: 'pink', animal: 'cat' }, { fruit: 'apple', shape: 'circle' }, { fruit: 'banana' }, { fruit: 'banana', animal: 'cat' }],
  });
  assert.ok('combinations' in r);
  assert.deepEqual(r.combinations, [
    { fruit: 'apple', animal: 'cat', color: 'pink', shape: 'circle' },
    { fruit: 'apple', animal: 'dog', color: 'green', shape: 'circle' },
    { fruit: 'pear', animal: 'cat', color: 'pink' },
    { fruit: 'pear', animal: 'dog', color: 'green' },
    { fruit: 'banana' },
    { fruit: 'banana', animal: 'cat' },
  ]);
  const ex = expandMatrix({ os: ['a', 'b'], v: [1, 2], exclude: [{ os: 'a', v: 2 }] });
  assert.ok('combinations' in ex && ex.combinations.length === 3);
  assert.match(JSON.stringify(expandMatrix({ a: Array.from({ length: 20 }, (_, i) => i), b: Array.from({ length: 20 }, (_, i) => i) })), /limit is 256/);
  assert.match(JSON.stringify(expandMatrix({ a: [] })), /empty/);
  assert.match(JSON.stringify(expandMatrix({ a: [1], exclude: [{ a: 1 }] })), /no jobs/);
  assert.match(JSON.stringify(expandMatrix({ a: [1], exclude: [{ b: 1 }] })), /not a matrix key/);
  assert.equal(matrixJobName('build', { node: 18, os: 'ubuntu' }), 'build (18, ubuntu)');
});

test('workflow commands parse with GitHub escaping', () => {
  assert.deepEqual(parseWorkflowCommand('::error file=a%2Cb.js,line=3,title=T%3A1::x%0Ay%25'), {
    command: 'error',
    properties: { file: 'a,b.js', line: '3', title: 'T:1' },
    message: 'x\ny%',
  });
  assert.deepEqual(parseWorkflowCommand('  ::add-mask::v'), { command: 'add-mask', properties: {}, message: 'v' });
  assert.equal(parseWorkflowCommand('echo ::error::x'), undefined);
  assert.equal(parseWorkflowCommand('::not a command'), undefined);
});

test('secret masking: raw, lines, JSON, URL and base64 forms, overlaps merged', () => {
  const m = new SecretMasker();
  m.add('s3cr"et/v&l');
  assert.equal(m.mask('x s3cr"et/v&l y'), 'x *** y');
  assert.equal(m.mask(JSON.stringify({ k: 's3cr"et/v&l' })), '{"k":"***"}');
  assert.equal(m.mask(encodeURIComponent('s3cr"et/v&l')), '***');
  for (const prefix of ['', 'a', 'ab', 'abc']) {
    const b64 = Buffer.from(`${prefix}s3cr"et/v&l-and-more`).toString('base64');
    assert.ok(m.mask(b64).includes('***'), `base64 with a ${prefix.length}-byte prefix: ${b64}`);
  }
  const multi = new SecretMasker();
  multi.add('first-line-secret\nsecond-line-secret');
  assert.equal(multi.mask('got second-line-secret'), 'got ***');
  const overlap = new SecretMasker();
  overlap.add('abcdef');
  overlap.add('defghi');
  assert.equal(overlap.mask('xabcdefghiy'), 'x***y');
  assert.equal(new SecretMasker().add('   '), false);
  assert.equal(overlap.maskDeep({ a: ['abcdef'] }).a[0], '***');
});

test('expressions: }} inside strings, typed single expressions', () => {
  assert.equal(interpolate("${{ format('{{0}} {0}', 'x') }}", {}), '{0} x');
  assert.equal(interpolate("a ${{ '}}' }} b", {}), 'a }} b');
  assert.equal(evaluateValue('${{ 3 }}', {}), 3);
  assert.equal(evaluateValue(' ${{ true }} ', {}), true);
  assert.equal(evaluateValue('x${{ 1 }}', {}), 'x1');
  assert.throws(() => interpolate('${{ github.sha', {}), /not closed/);
});

test('action metadata: composite, node, docker (image required, args a list), missing shell located', () => {
  const comp = parseActionText('a/action.yml', 'name: x\ninputs:\n  who:\n    default: w\nruns:\n  using: composite\n  steps:\n    - run: echo\n      shell: bash\n');
  assert.equal(comp.value?.runs.using, 'composite');
  assert.equal(comp.value?.inputs.who?.default, 'w');
  const node = parseActionText('a/action.yml', 'name: x\nruns:\n  using: node20\n  main: index.js\n  post: post.js\n');
  assert.deepEqual(node.value?.runs, { using: 'node', version: 'node20', main: 'index.js', pre: undefined, post: 'post.js', preIf: undefined, postIf: undefined });
  const docker = parseActionText('a', 'runs:\n  using: docker\n  image: Dockerfile\n  entrypoint: /e.sh\n  args: [a, "${{ inputs.x }}"]\n  env: {A: b}\n  post-entrypoint: /p.sh\n');
  assert.deepEqual(docker.diagnostics, []);
  assert.deepEqual(docker.value!.runs, { using: 'docker', image: 'Dockerfile', entrypoint: '/e.sh', args: ['a', '${{ inputs.x }}'], env: { A: 'b' }, preEntrypoint: undefined, postEntrypoint: '/p.sh', preIf: undefined, postIf: undefined });
  assert.match(parseActionText('a', 'runs:\n  using: docker\n').diagnostics[0]!.message, /needs runs.image/);
  assert.match(parseActionText('a', 'runs:\n  using: docker\n  image: Dockerfile\n  args: nope\n').diagnostics[0]!.message, /runs.args must be a list/);
  const noShell = parseActionText('a', 'runs:\n  using: composite\n  steps:\n    - run: echo\n');
  assert.equal(noShell.diagnostics[0]!.line, 4);
  assert.match(parseActionText('a', 'runs: [\n').diagnostics[0]!.message, /./);
});

test('remote uses are parsed strictly', () => {
  assert.deepEqual(parseRemoteUses('actions/setup-node@v4'), { owner: 'actions', repo: 'setup-node', path: '', ref: 'v4' });
  assert.deepEqual(parseRemoteUses('o/r/sub/dir@main'), { owner: 'o', repo: 'r', path: 'sub/dir', ref: 'main' });
  assert.equal(parseRemoteUses('o/r@../../etc'), undefined);
  assert.equal(parseRemoteUses('o/../r@v1'), undefined);
  assert.equal(parseRemoteUses('o@v1'), undefined);
});

test('hashFiles matches GitHub\'s algorithm and never follows links', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-hash-'));
  mkdirSync(join(dir, 'a/b'), { recursive: true });
  writeFileSync(join(dir, 'a/x.lock'), 'one');
  writeFileSync(join(dir, 'a/b/y.lock'), 'two');
  writeFileSync(join(dir, 'z.txt'), 'three');
  symlinkSync('/etc/hostname', join(dir, 'a/link.lock'));
  symlinkSync('/etc', join(dir, 'etc-dir'));
  const expected = createHash('sha256');
  for (const c of ['two', 'one']) expected.update(createHash('sha256').update(c).digest()); // a/b/y.lock sorts before a/x.lock
  assert.equal(hashWorkspaceFiles(dir, ['**/*.lock']), expected.digest('hex'));
  assert.equal(hashWorkspaceFiles(dir, ['nothing/**']), '');
  assert.equal(hashWorkspaceFiles(dir, ['etc-dir/**']), '', 'links are not followed');
  assert.equal(hashWorkspaceFiles(dir, ['/github/workspace/z.txt']), createHash('sha256').update(createHash('sha256').update('three').digest()).digest('hex'));
  assert.equal(hashWorkspaceFiles(dir, ['/etc/passwd']), '', 'paths outside the workspace are ignored');
  assert.equal(hashWorkspaceFiles(dir, ['a']), hashWorkspaceFiles(dir, ['a/**']), 'a directory matches what is under it');
  assert.notEqual(hashWorkspaceFiles(dir, ['**/*.lock', '!a/b/**']), hashWorkspaceFiles(dir, ['**/*.lock']));
});

test('workflow_dispatch inputs are typed and checked', () => {
  const on = { workflow_dispatch: { inputs: { n: { type: 'number', default: 2 }, b: { type: 'boolean' }, c: { type: 'choice', options: ['x', 'y'], default: 'x' }, r: { required: true } } } };
  assert.deepEqual(dispatchInputs(on, { r: 'v', b: 'true' }), { n: 2, b: true, c: 'x', r: 'v' });
  assert.throws(() => dispatchInputs(on, {}), /required/);
  assert.throws(() => dispatchInputs(on, { r: 'v', c: 'z' }), /one of x, y/);
  assert.throws(() => dispatchInputs(on, { r: 'v', n: 'abc' }), /number/);
  assert.throws(() => dispatchInputs(on, { r: 'v', nope: '1' }), /no such/);
});
