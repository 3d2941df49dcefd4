// The server's web pages in a real browser: a job's page shows its masked log live while it runs,
// then the step table; the admin pages show an organisation's queue and jobs and refuse another's.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { deliver, endWorld, makeWorld, startServer, until, workflowJobPayload, type ServerProcess, type World } from '../server/helpers';
import { launchBrowser } from './browser';

const WORKFLOW = `on: push
jobs:
  build:
    runs-on: [self-hosted, stockade]
    steps:
      - name: Count slowly
        run: |
          echo "token=[\${{ secrets.DEPLOY_TOKEN }}]"
          for i in 1 2 3 4 5 6 7 8; do echo "line $i <b>not bold</b>"; sleep 0.7; done
      - run: echo "second step"
`;

let w: World;
let state: string;
let server: ServerProcess;
let browser: Browser;
/** Where the screenshots of the docs are written, when asked (STOCKADE_SCREENSHOTS=docs). */
const shots = process.env.STOCKADE_SCREENSHOTS;

before(async () => {
  w = await makeWorld({ '.github/workflows/ci.yml': WORKFLOW });
  state = mkdtempSync(join(tmpdir(), 'stockade-state-'));
  writeFileSync(join(w.dir, 'secrets.json'), JSON.stringify({ 'octo-org/hello': { DEPLOY_TOKEN: 'tok-live-4711' } }));
  server = await startServer(w, state, ['--reconcile-seconds', '0', '--admin-port', '0', '--secrets-file', join(w.dir, 'secrets.json')]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await endWorld(w, server, state);
});

function adminToken(org: string): string {
  // No GitHub call: safe to run synchronously beside the in-process fake.
  const r = spawnSync('node', [join(process.cwd(), 'dist/cli.js'), 'admin-token', 'create', '--org', org, '--state-dir', state], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('the check run\'s details link opens the job\'s page: the masked log appears line by line while it runs, then the step table', async () => {
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 31, name: 'build', labels: ['self-hosted', 'stockade'] }));
  const key = 'octo-org/hello/workflow_job/31/1';
  const run = await until('a check run with a details link', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === key && c.fields.details_url), 60_000);
  const details = String(run.fields.details_url).replace(/^http:\/\/127\.0\.0\.1:\d+/, server.url);
  assert.match(details, /\/jobs\/.+\?sig=[0-9a-f]{64}$/);
  const page = await browser.newPage();
  await page.goto(details);
  // Live: "line 2" is shown while the job is still running (its state still says so, the last line not yet there).
  // Polled from here: the page's CSP allows no evaluated script, the test's own included.
  await until('line 2 on the page', async () => /line 2 /.test((await page.textContent('#log')) ?? ''), 60_000);
  const during = (await page.textContent('#log')) ?? '';
  assert.doesNotMatch(during, /line 8 /, 'seen before the job ended');
  assert.equal(await page.textContent('#state'), 'running');
  assert.match(during, /token=\[\*\*\*\]/, 'masked in the live view');
  assert.doesNotMatch(await page.content(), /tok-live-4711/);
  assert.equal(await page.locator('#log b').count(), 0, 'log text is text, never markup');
  if (shots) {
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'job-running.png'), fullPage: true });
  }
  // The end: the page reloads and shows the result and the step table.
  await page.waitForSelector('#conclusion', { timeout: 60_000 });
  assert.equal(await page.textContent('#conclusion'), 'success');
  const rows = await page.locator('#steps tbody tr').allTextContents();
  assert.ok(rows.some((r) => /Count slowly\s*success/.test(r)), rows.join('\n'));
  assert.match((await page.textContent('#log')) ?? '', /line 8 <b>not bold<\/b>[^]*second step/);
  if (shots) await page.screenshot({ path: join(shots, 'job-finished.png'), fullPage: true });
  // A link with another job's or no signature shows nothing.
  const forged = await page.goto(details.replace(/sig=[0-9a-f]{4}/, 'sig=0000'));
  assert.equal(forged?.status(), 404);
  await page.close();
});

test('the admin pages: an organisation\'s token signs in, sees its queue, jobs and quotas; another organisation\'s page is refused', async () => {
  const mine = adminToken('octo-org');
  adminToken('rival-org');
  const page = await browser.newPage();
  await page.goto(`${server.adminUrl}/ui`);
  await page.fill('input[name=token]', mine);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/ui\/orgs\/octo-org$/);
  assert.match((await page.textContent('#finished')) ?? '', /build\s*octo-org\/hello\s*success/);
  assert.match((await page.textContent('#quotas')) ?? '', /org:octo-org/);
  if (shots) await page.screenshot({ path: join(shots, 'admin-org.png'), fullPage: true });
  const cookie = (await page.context().cookies()).find((c) => c.name === 'stockade_admin');
  assert.ok(cookie?.httpOnly && cookie.sameSite === 'Strict', 'the token is kept where page scripts cannot read it');
  // The job link goes to the job's signed page.
  const href = await page.locator('#finished a').first().getAttribute('href');
  assert.match(String(href), /\/jobs\/octo-org%2Fhello%2Fworkflow_job%2F31%2F1\?sig=[0-9a-f]{64}$/);
  const other = await page.goto(`${server.adminUrl}/ui/orgs/rival-org`);
  assert.equal(other?.status(), 403);
  assert.match((await page.textContent('body')) ?? '', /may not see rival-org/);
  const bad = await browser.newPage();
  await bad.goto(`${server.adminUrl}/ui`);
  await bad.fill('input[name=token]', 'stk_not-a-real-token-at-all-000');
  await bad.click('button[type=submit]');
  assert.match((await bad.textContent('body')) ?? '', /not a valid admin token/);
  const direct = await bad.goto(`${server.adminUrl}/ui/orgs/octo-org`);
  assert.equal(direct?.status(), 401);
  await page.close();
  await bad.close();
});
