// The server's config file: one schema, every unknown key and wrong type at file:line:col, one table of settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigText, configSchema, mergeServeValues, SERVER_SETTINGS } from '../../src/host';
import { SERVE_OPTIONS } from '../../src/cli/serve-command';
import { DEFAULT_RUNNER_LABELS } from '../../src/github';

const cli = join(process.cwd(), 'dist/cli.js');

test('every serve flag is a setting of the table and a key of the schema, and the published schema is the generated one', () => {
  const flags = Object.keys(SERVE_OPTIONS).filter((k) => k !== 'config').sort();
  assert.deepEqual(SERVER_SETTINGS.map((s) => s.key).sort(), flags);
  const schema = configSchema() as { properties: { server: { properties: Record<string, unknown> } } };
  assert.deepEqual(Object.keys(schema.properties.server.properties).sort(), flags);
  assert.equal(readFileSync('docs/config.schema.json', 'utf8'), `${JSON.stringify(configSchema(), null, 2)}\n`, 'docs/config.schema.json is stale: node dist/cli.js config schema > docs/config.schema.json');
  assert.equal(SERVER_SETTINGS.find((s) => s.key === 'labels')!.default, DEFAULT_RUNNER_LABELS.join(','));
  // Environment variables never collide with each other or with the host's own (STOCKADE_STATE_DIR is the host's state).
  const envs = SERVER_SETTINGS.flatMap((s) => (s.env ? [s.env] : []));
  assert.equal(new Set(envs).size, envs.length);
  assert.ok(!envs.includes('STOCKADE_STATE_DIR') && !envs.includes('STOCKADE_USER'));
});

test('unknown keys, wrong types, bad values and broken YAML are each reported at their line and column, with the key meant', () => {
  const text = ['server:', '  port: 8080', '  prot: 9', '  concurrency: lots', 'quotas:', '  repos:', '    octo-org/x: {concurrency: 0}', 'egress:', '  modes:', '    octo-org: loud', 'imagess: {}', ''].join('\n');
  const r = checkConfigText(text);
  assert.ok('problems' in r);
  const got = r.problems.map((p) => `${p.line}:${p.column}: ${p.message}`);
  assert.deepEqual(got, [
    '3:3: server.prot is unknown (did you mean port?)',
    '4:16: server.concurrency must be integer',
    '7:31: quotas.repos.octo-org/x.concurrency must be >= 1',
    '10:15: egress.modes.octo-org must be one of enforce, audit',
    '11:1: imagess is unknown (did you mean images?)',
  ]);
  const yaml = checkConfigText('server:\n  port: 1\n  port: 2\n');
  assert.ok('problems' in yaml && /3:3: .*unique|3:3: .*duplicate|Map keys must be unique/i.test(yaml.problems.map((p) => `${p.line}:${p.column}: ${p.message}`).join('\n')), JSON.stringify(yaml));
  const ok = checkConfigText('server:\n  app-id: 12345\n  labels: [self-hosted, gpu]\n  no-request-pacing: true\negress:\n  mode: audit\n');
  assert.ok('value' in ok, JSON.stringify(ok));
});

test('a flag wins over its environment variable, which wins over the file, which wins over the table\'s default', () => {
  const multiple = new Set(['allow-domain']);
  const file = { port: 9000, host: '0.0.0.0', labels: ['a', 'b'], 'allow-domain': ['x.test'], 'no-request-pacing': true };
  const v = mergeServeValues({ port: '7000' }, { STOCKADE_LISTEN_HOST: '::1' }, file, multiple);
  assert.equal(v.port, '7000');
  assert.equal(v.host, '::1');
  assert.equal(v.labels, 'a,b', 'a list becomes the flag\'s comma form');
  assert.deepEqual(v['allow-domain'], ['x.test'], 'a repeatable flag stays a list');
  assert.equal(v['no-request-pacing'], true);
  assert.equal(v['reconcile-seconds'], '60', 'the table\'s default');
  assert.equal(mergeServeValues({}, {}, undefined, multiple, { defaults: false })['reconcile-seconds'], undefined);
});

test('stockade config check prints ok or each problem as file:line:col (exit 2); serve refuses the same file before it starts anything', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-config-'));
  try {
    writeFileSync(join(dir, 'good.yml'), 'server:\n  port: 8081\nquotas:\n  default: {concurrency: 2}\n');
    const good = spawnSync('node', [cli, 'config', 'check', join(dir, 'good.yml')], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stderr);
    assert.equal(good.stdout, `${join(dir, 'good.yml')}: ok\n`);
    writeFileSync(join(dir, 'bad.yml'), 'server:\n  webhook-secret-fil: /x\n');
    const bad = spawnSync('node', [cli, 'config', 'check', join(dir, 'bad.yml')], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, `${join(dir, 'bad.yml')}:2:3: error: server.webhook-secret-fil is unknown (did you mean webhook-secret-file?)\n`);
    const serve = spawnSync('node', [cli, 'serve', '--config', join(dir, 'bad.yml'), '--state-dir', join(dir, 'state')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(serve.status, 2);
    assert.match(serve.stderr, /bad\.yml:2:3: error: server\.webhook-secret-fil is unknown/);
    assert.ok(!require('node:fs').existsSync(join(dir, 'state')), 'nothing was created');
    const rules = join(dir, 'rules.yml');
    writeFileSync(rules, 'egress:\n  orgs:\n    o: [a.test]\n  repos:\n    o/r: [b.test]\n');
    const wide = spawnSync('node', [cli, 'config', 'check', rules], { encoding: 'utf8' });
    assert.equal(wide.status, 2, 'the rules past the schema are checked too');
    assert.match(wide.stderr, /egress\.repos\.o\/r: egress to b\.test is not allowed here/);
    const schema = spawnSync('node', [cli, 'config', 'schema'], { encoding: 'utf8' });
    assert.equal(schema.stdout, readFileSync('docs/config.schema.json', 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the README\'s settings table is the generated one', () => {
  const { settingsTable } = require('../../src/host') as typeof import('../../src/host');
  assert.ok(readFileSync('README.md', 'utf8').includes(settingsTable()), 'README lacks the current table: node dist/cli.js config settings');
});

test('egress mode per owner and repository: audit where configured (a repository wins over its owner), enforce elsewhere', () => {
  const { readEgressConfig } = require('../../src/cli/server-config') as typeof import('../../src/cli/server-config');
  const forRepo = readEgressConfig('c.yml', { upstreamDns: '192.0.2.53', orgs: { acme: ['registry.npmjs.org'] }, modes: { acme: 'audit', 'acme/locked': 'enforce', 'solo/new': 'audit' } })(process.cwd());
  assert.equal(forRepo('acme/web')?.policy.audit, true);
  assert.deepEqual(forRepo('acme/web')?.policy.allow, ['registry.npmjs.org']);
  assert.equal(forRepo('acme/locked')?.policy.audit, undefined, 'the repository entry wins');
  assert.equal(forRepo('solo/new')?.policy.audit, true, 'audit without any allowlist still gets a sidecar');
  assert.equal(forRepo('solo/other'), undefined, 'enforce with nothing allowed: no network');
  assert.throws(() => readEgressConfig('c.yml', { mode: 'loud' }), /egress\.mode: must be enforce or audit/);
});
