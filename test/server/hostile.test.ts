import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endWorld, deliver, examplePayload, makeWorld, setDiagnostics, sleep, startServer, until, type ServerProcess, type World } from './helpers';

// Issue 13: what a hostile pull request or client can send the server. Real HTTP, the real
// server process, the fake GitHub (checked against GitHub's OpenAPI description).

let w: World;
let state: string;
let server: ServerProcess;

const GOOD = `on: push
jobs:
  ok:
    runs-on: stockade
    steps:
      - run: echo fine
`;

/** A repository archive whose `.stockade/workflows/` holds links to the App's key, to the server's environment and to /etc/shadow. */
function hostileTarball(sha: string, keyFile: string): Buffer {
  return archive(sha, { '.stockade/workflows/a-good.yml': GOOD, '.stockade/workflows/key.yml': { link: keyFile }, '.stockade/workflows/env.yml': { link: '/proc/self/environ' }, '.stockade/workflows/shadow.yml': { link: '/etc/shadow' } });
}

before(async () => {
  w = await makeWorld({ '.stockade/workflows/app.yml': GOOD });
  state = mkdtempSync(join(tmpdir(), 'stockade-state-'));
  writeFileSync(join(w.dir, 'secrets.json'), JSON.stringify({ 'octo-org/hello': { DEPLOY_TOKEN: 'tok-secret-4711' } }));
  server = await startServer(w, state, ['--secrets-file', join(w.dir, 'secrets.json'), '--reconcile-seconds', '0', '--concurrency', '1', '--modes', 'app', '--github-retry-seconds', '0.5', '--github-give-up-seconds', '5']);
  setDiagnostics(() => `\nserver: ${server.stderr().slice(-3000)}`);
});

after(() => endWorld(w, server, state));

const completed = (key: string) => () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === key && c.fields.status === 'completed');

test('a workflow committed as a link to the App key, /proc/self/environ or /etc/shadow is refused by name; nothing of their content reaches the check run', async () => {
  const sha = 'c'.repeat(40);
  w.fake.repos.get('octo-org/hello')!.tarball = hostileTarball(sha, w.keyFile);
  await deliver(w, server.url, 'push', examplePayload('push', undefined, (p) => Object.assign(p, { ref: 'refs/heads/main', after: sha, deleted: false })));
  const run = await until('hostile push reported', completed(`octo-org/hello/app/push/refs/heads/main/${sha}`), 90_000);
  const all = JSON.stringify(run.history);
  assert.equal(run.fields.conclusion, 'failure');
  const key = readFileSync(w.keyFile, 'utf8');
  assert.ok(!all.includes(key.split('\n')[1]!), 'no line of the App key in any check-run request');
  assert.doesNotMatch(all, /PRIVATE KEY|PATH=|STOCKADE_|root:/);
  for (const f of ['key.yml', 'env.yml', 'shadow.yml']) assert.match(all, new RegExp(`\\.stockade/workflows/${f.replace('.', '\\.')}:1:1: error: cannot read the workflow: [^"]*symbolic link`));
  // Each refusal is an annotation at the workflow file itself (issue 13, item 19).
  const ann = (run.fields.output as { annotations: Array<{ path: string; start_line: number }> }).annotations;
  assert.deepEqual(ann.map((a) => a.path).sort(), ['.stockade/workflows/env.yml', '.stockade/workflows/key.yml', '.stockade/workflows/shadow.yml']);
});

test('an invalid workflow is annotated at its path, line and column', async () => {
  const sha = 'd'.repeat(40);
  w.fake.repos.get('octo-org/hello')!.tarball = archive(sha, { '.stockade/workflows/bad.yml': 'on: push\njobs:\n  a:\n    runs-on: stockade\n    steps:\n      - run: echo\n        bogus-key: 1\n' });
  await deliver(w, server.url, 'push', examplePayload('push', undefined, (p) => Object.assign(p, { ref: 'refs/heads/main', after: sha, deleted: false })));
  const run = await until('bad push reported', completed(`octo-org/hello/app/push/refs/heads/main/${sha}`), 90_000);
  const ann = (run.fields.output as { annotations: Array<{ path: string; start_line: number; start_column?: number; message: string }> }).annotations;
  assert.equal(ann[0]!.path, '.stockade/workflows/bad.yml');
  assert.equal(ann[0]!.start_line, 7);
  assert.equal(ann[0]!.start_column, 9);
  assert.match(ann[0]!.message, /bogus-key/);
});

/** Sends raw bytes and returns the status line (or '' when the server closed without one). */
function raw(url: string, bytes: string | Buffer, waitMs = 2000): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname);
    let got = '';
    const t = setTimeout(() => (s.destroy(), resolve(got.split('\r\n')[0] ?? '')), waitMs);
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => (clearTimeout(t), resolve(got.split('\r\n')[0] ?? '')));
    s.end(bytes);
  });
}

const healthy = async (url: string) => (await fetch(`${url}/healthz`)).status === 200;

test('a few thousand malformed requests: each is answered 400/404/401/413 or dropped, the listener keeps serving and no job is touched', async () => {
  const before = await (await fetch(`${server.url}/healthz`)).json();
  const targets = ['/logs/%E0%A4%A', '/logs/%', '/%zz', '//x', '/webhook/../healthz', '/logs/' + '%ff'.repeat(200), 'http://[::1', '*', '/healthz?%=%', '/\u0000'];
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'BREW', 'G\u0000T'];
  const junkHeaders = ['content-length: -1', 'content-length: abc', 'transfer-encoding: chunked\r\ncontent-length: 5', 'x-github-event: ../../x', 'x-hub-signature-256: sha256=zz', 'host: \u00ff\u00fe'];
  let sent = 0;
  const statuses = new Map<string, number>();
  const batch: Array<Promise<string>> = [];
  for (let i = 0; i < 2400; i++) {
    const target = targets[i % targets.length]!;
    const method = methods[i % methods.length]!;
    const header = junkHeaders[i % junkHeaders.length]!;
    const kind = i % 4;
    const req =
      kind === 0 ? `${method} ${target} HTTP/1.1\r\nhost: x\r\n${header}\r\n\r\n` : kind === 1 ? `${target}\r\n\r\n` : kind === 2 ? `POST /webhook HTTP/1.1\r\nhost: x\r\n${header}\r\ncontent-length: 7\r\n\r\n{"a":1}` : Buffer.from(Array.from({ length: 64 }, (_, j) => (i * 31 + j * 7) % 256));
    batch.push(raw(server.url, req, 1500));
    sent++;
    if (batch.length >= 50) {
      for (const st of await Promise.all(batch.splice(0))) statuses.set(st.slice(9, 12) || 'closed', (statuses.get(st.slice(9, 12) || 'closed') ?? 0) + 1);
    }
  }
  for (const st of await Promise.all(batch)) statuses.set(st.slice(9, 12) || 'closed', (statuses.get(st.slice(9, 12) || 'closed') ?? 0) + 1);
  assert.equal(sent, 2400);
  assert.ok(![...statuses.keys()].some((k) => k.startsWith('5')), `no 5xx: ${JSON.stringify([...statuses])}`);
  assert.ok(await healthy(server.url), 'the listener still answers');
  assert.equal(server.child.exitCode, null, 'the server process is alive');
  assert.deepEqual(await (await fetch(`${server.url}/healthz`)).json(), before, 'no job was added or moved');
  process.stderr.write(`fuzz: ${sent} requests, answers ${JSON.stringify(Object.fromEntries(statuses))}\n`);
});

test('many slow unauthenticated 25 MB bodies: the ones past the in-flight budget get 503, memory stays bounded, the server keeps answering', async () => {
  const u = new URL(server.url);
  const sockets = Array.from({ length: 40 }, () => connect(Number(u.port), u.hostname));
  const answers: string[] = [];
  for (const s of sockets) {
    s.on('error', () => undefined);
    s.on('data', (d) => answers.push(d.toString('latin1').split('\r\n')[0]!));
    s.write(`POST /webhook HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\nx-github-delivery: slow\r\ncontent-length: ${25 * 1024 * 1024}\r\n\r\n`);
  }
  // Each sends 4 MiB of its body, then stalls: 40 × 4 MiB would be 160 MiB held.
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  for (let i = 0; i < 16; i++) {
    for (const s of sockets) if (!s.destroyed) s.write(chunk);
    await sleep(50);
  }
  await sleep(1000);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))![1]) * 1024;
  assert.ok(await healthy(server.url), 'the listener answers while the slow bodies are held');
  assert.ok(answers.some((a) => / 503 /.test(a)), `some got 503: ${JSON.stringify(answers.slice(0, 5))}`);
  assert.ok(rss < 600 * 1024 * 1024, `server RSS ${Math.round(rss / 1024 ** 2)} MiB`);
  for (const s of sockets) s.destroy();
  process.stderr.write(`slow bodies: ${answers.filter((a) => / 503 /.test(a)).length} of 40 got 503; server RSS ${Math.round(rss / 1024 ** 2)} MiB\n`);
});

test('a repository whose check runs GitHub keeps refusing (archived) is backed off and given up, logged; other repositories are reported meanwhile', async () => {
  const hello = w.fake.repos.get('octo-org/hello')!;
  const sha = 'e'.repeat(40);
  w.fake.repos.set('octo-org/archived', { ...hello, tarball: archive(sha, { '.stockade/workflows/ci.yml': GOOD }) });
  w.fake.refusedRepos.add('octo-org/archived');
  const push = (repo: string, s: string) =>
    examplePayload('push', undefined, (p) => {
      Object.assign(p, { ref: 'refs/heads/main', after: s, deleted: false });
      p.repository.full_name = `octo-org/${repo}`;
      p.repository.name = repo;
    });
  const started = Date.now();
  await deliver(w, server.url, 'push', push('archived', sha));
  const okSha = 'f'.repeat(40);
  w.fake.repos.get('octo-org/hello')!.tarball = hostileTarball(okSha, w.keyFile);
  await deliver(w, server.url, 'push', push('hello', okSha));
  await until('the other repository is reported', completed(`octo-org/hello/app/push/refs/heads/main/${okSha}`), 60_000);
  await until('the refused job is given up', () => /report-abandoned/.test(server.stderr()), 30_000);
  const attempts = w.fake.requests.filter((r) => r.operationId === 'checks/create' && r.params.repo === 'archived').length;
  const took = Date.now() - started;
  assert.ok(attempts >= 2 && attempts <= 6, `${attempts} attempts in ${took} ms (backoff from 0.5 s, given up after 5 s)`);
  await sleep(2000);
  const after = w.fake.requests.filter((r) => r.operationId === 'checks/create' && r.params.repo === 'archived').length;
  assert.equal(after, attempts, 'nothing is tried after giving up');
  const health = (await (await fetch(`${server.url}/healthz`)).json()) as Record<string, number>;
  assert.equal(health.accepted, 0, 'the refused job is not left accepted');
  process.stderr.write(`archived repository: ${attempts} check-run attempts, given up after ${took} ms\n`);

  // Archived while its job ran: the check run exists, the final report is refused, backed off, given up.
  const late = 'a'.repeat(39) + 'b';
  w.fake.repos.set('octo-org/late', { ...hello, tarball: archive(late, { '.stockade/workflows/ci.yml': GOOD }) });
  w.fake.refusedReports.add('octo-org/late');
  await deliver(w, server.url, 'push', push('late', late));
  const lateKey = `octo-org/late/app/push/refs/heads/main/${late}`;
  await until('the refused report is given up', () => server.stderr().split('\n').some((l) => l.includes('report-abandoned') && l.includes(lateKey)), 40_000);
  const updates = w.fake.requests.filter((r) => r.operationId === 'checks/update' && r.params.repo === 'late').length;
  assert.ok(updates >= 2 && updates <= 8, `${updates} check-run updates before giving up`);
  await sleep(2000);
  assert.equal(w.fake.requests.filter((r) => r.operationId === 'checks/update' && r.params.repo === 'late').length, updates, 'nothing is tried after giving up');
  process.stderr.write(`report refused after the run: ${updates} check-run updates, then given up\n`);
});

/** A repository archive of `files` (text, or `{ link: target }` for a symbolic link) at `sha`. */
function archive(sha: string, files: Record<string, string | { link: string }>): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'stk-archive-'));
  const top = join(dir, `octo-org-hello-${sha.slice(0, 7)}`);
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(top, p, '..'), { recursive: true });
    if (typeof c === 'string') writeFileSync(join(top, p), c);
    else symlinkSync(c.link, join(top, p));
  }
  return spawnSync('tar', ['-czf', '-', '-C', dir, `octo-org-hello-${sha.slice(0, 7)}`]).stdout;
}

const pushOf = (sha: string) => examplePayload('push', undefined, (p) => Object.assign(p, { ref: 'refs/heads/main', after: sha, deleted: false }));

test('a .stockade directory that is a link out of the repository is refused when the job runs; nothing behind the link is read', async () => {
  const sha = '1'.repeat(40);
  const outside = mkdtempSync(join(tmpdir(), 'stk-outside-'));
  mkdirSync(join(outside, 'workflows'));
  writeFileSync(join(outside, 'workflows/evil.yml'), `on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo OUTSIDE-RAN\n`);
  w.fake.repos.get('octo-org/hello')!.tarball = archive(sha, { '.stockade': { link: outside }, 'README.md': 'x' });
  await deliver(w, server.url, 'push', pushOf(sha));
  const run = await until('linked .stockade reported', completed(`octo-org/hello/app/push/refs/heads/main/${sha}`), 90_000);
  assert.equal(run.fields.conclusion, 'failure');
  const all = JSON.stringify(run.history);
  assert.match(all, /\.stockade is a symbolic link or not a directory \(links are never followed\)/);
  assert.doesNotMatch(all, /OUTSIDE-RAN/);
});

test('a workflow the sandbox refuses completes at once with its errors, before it is queued: it takes no job slot', async () => {
  const slowSha = '2'.repeat(40);
  const hello = w.fake.repos.get('octo-org/hello')!;
  hello.tarballs = { ...hello.tarballs };
  hello.tarballs[slowSha] = archive(slowSha, { '.stockade/workflows/slow.yml': `on: push\njobs:\n  slow:\n    runs-on: stockade\n    steps:\n      - run: sleep 20\n` });
  await deliver(w, server.url, 'push', pushOf(slowSha));
  const slowKey = `octo-org/hello/app/push/refs/heads/main/${slowSha}`;
  await until('the slow job holds the only slot', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === slowKey && c.fields.status === 'in_progress'), 60_000);
  const badSha = '3'.repeat(40);
  hello.tarballs[badSha] = archive(badSha, {
    '.stockade/workflows/bad.yml': `on: push\njobs:\n  a:\n    runs-on: stockade\n    container:\n      image: registry.example/tools:1\n      options: --privileged\n    steps:\n      - run: echo never\n        working-directory: /proc/self/cwd\n`,
  });
  await deliver(w, server.url, 'push', pushOf(badSha));
  const bad = await until('the refused job is reported', completed(`octo-org/hello/app/push/refs/heads/main/${badSha}`), 15_000);
  const slowNow = [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === slowKey)!;
  assert.equal(slowNow.fields.status, 'in_progress', 'the refused job was reported while the only slot was still taken');
  assert.equal(bad.fields.conclusion, 'failure');
  assert.ok(!bad.history.some((h) => h.status === 'in_progress'), 'it never ran');
  const ann = (bad.fields.output as { annotations: Array<{ path: string; start_line: number; message: string }> }).annotations;
  assert.deepEqual(ann.map((a) => [a.path, a.start_line]), [['.stockade/workflows/bad.yml', 6], ['.stockade/workflows/bad.yml', 6], ['.stockade/workflows/bad.yml', 10]], JSON.stringify(ann));
  assert.match(ann.map((a) => a.message).join('\n'), /--privileged' is not supported[^]*registry\.example\/tools:1' is neither[^]*'\/proc\/self\/cwd' is outside/);
  await until('the slow job finishes', completed(slowKey), 60_000);
});

test('a re-run request replayed with a fresh delivery id does not start a second run of the same check run at the same time; re-runs get no secrets', async () => {
  const sha = '4'.repeat(40);
  w.fake.repos.get('octo-org/hello')!.tarball = archive(sha, { '.stockade/workflows/slow.yml': `on: push\njobs:\n  slow:\n    runs-on: stockade\n    steps:\n      - run: sleep 4 && echo "secret=[\${{ secrets.DEPLOY_TOKEN }}]"\n` });
  await deliver(w, server.url, 'push', pushOf(sha));
  const key = `octo-org/hello/app/push/refs/heads/main/${sha}`;
  await until('the original run completes', completed(key), 90_000);
  const rerequest = examplePayload('check_run', 'rerequested', (p) => {
    p.check_run.external_id = key;
  });
  const [a, b] = await Promise.all([deliver(w, server.url, 'check_run', rerequest), deliver(w, server.url, 'check_run', rerequest)]);
  assert.deepEqual([a.status, b.status], [202, 202]);
  const reruns = () => [...w.fake.checkRuns.values()].filter((c) => String(c.fields.external_id).startsWith(`${key}#rerun/`));
  await until('one re-run started', () => reruns().length > 0, 30_000);
  await sleep(2500);
  assert.equal(reruns().length, 1, 'the replayed request started nothing while the re-run was under way');
  const original = (await until('original', completed(key), 1000)).fields.output as { text: string };
  assert.match(original.text, /secret=\[\*\*\*\]/, 'the push itself had its secret');
  const done = await until('the re-run completes', () => reruns().find((c) => c.fields.status === 'completed'), 90_000);
  assert.match((done.fields.output as { text: string }).text, /secret=\[\]/, 're-runs run as untrusted');
});
