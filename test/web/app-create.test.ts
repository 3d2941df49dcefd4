// stockade app create: GitHub's App manifest flow, driven end to end in a real browser against the fake GitHub.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import type { Browser } from 'playwright-core';
import { FakeGitHub } from '../server/fake-github';
import { APP_EVENTS, APP_PERMISSIONS } from '../../src/cli/app-create';
import { launchBrowser } from './browser';

const cli = join(process.cwd(), 'dist/cli.js');
let fake: FakeGitHub;
let browser: Browser;
let dir: string;

before(async () => {
  fake = new FakeGitHub('unused');
  await fake.start();
  browser = await launchBrowser();
  dir = mkdtempSync(join(tmpdir(), 'stockade-app-create-'));
});

after(async () => {
  await browser?.close();
  await fake?.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(fake.violations, [], 'every request matched GitHub\'s OpenAPI description');
});

function start(args: string[]): { child: ChildProcess; url: Promise<string>; done: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn('node', [cli, 'app', 'create', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let found: (u: string) => void = () => undefined;
  const url = new Promise<string>((r) => (found = r));
  child.stdout!.on('data', (d: Buffer) => {
    out += d;
    const m = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
    if (m) found(m[1]!);
  });
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const done = new Promise<{ code: number | null; out: string; err: string }>((r) => child.on('exit', (code) => r({ code, out, err })));
  return { child, url, done };
}

test('the local page posts the manifest with exactly the permissions and events Stockade needs; the code comes back, is exchanged once, and the credentials are written 0600 with the config', async () => {
  const out = join(dir, 'etc');
  writeFileSync(join(dir, 'placeholder'), '');
  const run = start(['--public-url', 'https://ci.example.test', '--name', 'Stockade test', '--org', 'octo-org', '--github-url', fake.url, '--api-url', fake.url, '--out', out, '--port', '0']);
  const url = await run.url;
  const page = await browser.newPage();
  // A wrong state is refused before anything happens.
  const forged = await page.goto(`${url}callback?code=abc&state=${'0'.repeat(48)}`);
  assert.equal(forged?.status(), 400);
  // The page submits itself: GitHub's page answers, redirects back, and the callback page loads.
  await page.goto(url, { waitUntil: 'commit' });
  await page.waitForURL(/\/callback\?code=/, { timeout: 20_000 });
  assert.match(await page.textContent('body') ?? '', /GitHub created the App/);
  const r = await run.done;
  assert.equal(r.code, 0, r.err);
  assert.equal(fake.manifests.length, 1);
  const { manifest, org } = fake.manifests[0]!;
  assert.equal(org, 'octo-org', 'posted to the organisation\'s page');
  assert.deepEqual(manifest.default_permissions, APP_PERMISSIONS);
  assert.deepEqual(manifest.default_events, [...APP_EVENTS]);
  assert.deepEqual(manifest.hook_attributes, { url: 'https://ci.example.test/webhook', active: true });
  assert.equal(manifest.public, false);
  assert.match(String(manifest.redirect_url), /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
  const conversion = fake.requests.filter((q) => q.operationId === 'apps/create-from-manifest');
  assert.equal(conversion.length, 1);
  assert.equal(conversion[0]!.auth, '', 'the code is the only credential sent');
  for (const f of ['app.pem', 'webhook-secret', 'config.yml']) assert.equal(statSync(join(out, f)).mode & 0o777, 0o600, f);
  assert.match(readFileSync(join(out, 'app.pem'), 'utf8'), /^-----BEGIN RSA PRIVATE KEY-----/);
  const cfg = YAML.parse(readFileSync(join(out, 'config.yml'), 'utf8')) as { server: Record<string, string> };
  assert.equal(cfg.server['private-key-file'], join(out, 'app.pem'));
  assert.equal(cfg.server['public-url'], 'https://ci.example.test');
  assert.match(cfg.server['app-id']!, /^\d+$/);
  assert.match(r.out, /install it on the repositories Stockade should run: https:\/\/github\.com\/apps\/stockade-test\/installations\/new/);
  // The config it wrote passes the server's own check.
  const check = await new Promise<number | null>((done) => spawn('node', [cli, 'config', 'check', join(out, 'config.yml')], { stdio: 'ignore' }).on('exit', done));
  assert.equal(check, 0);
  // A second run never overwrites an App's credentials.
  const again = start(['--public-url', 'https://ci.example.test', '--out', out, '--api-url', fake.url]);
  const second = await again.done;
  assert.equal(second.code, 2);
  assert.match(second.err, /app\.pem exists: an App's credentials are never overwritten/);
  await page.close();
});
