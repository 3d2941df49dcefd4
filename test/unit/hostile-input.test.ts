import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, existsSync, lstatSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { readFileBeneath, listDirBeneath } from '../../src/common';
import { readWorkflowFiles } from '../../src/runner';
import { extractTarball } from '../../src/host/extract-tarball';
import { jobWorkDir } from '../../src/server/execute-job';
import { planDelivery, sameRepository, type AppSpec, type JobSpec } from '../../src/server/plan-delivery';
import type { JobReport } from '../../src/github';
import { JobStore } from '../../src/store';
import { adminHandler, hashToken } from '../../src/server/admin-api';
import { ServerMetrics } from '../../src/server/metrics';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { limitExcerpts } from '../../src/workflow/excerpt';
import { parseWorkflowText } from '../../src/workflow';
import { evaluateExpression, interpolate } from '../../src/workflow/expressions';

const tmp = () => mkdtempSync(join(tmpdir(), 'stk-hostile-'));

test('files of a repository are never read through a link, a FIFO or a device, and are size-capped', async () => {
  const root = tmp();
  const secret = join(tmp(), 'app.pem');
  writeFileSync(secret, '-----BEGIN RSA PRIVATE KEY----- the key');
  mkdirSync(join(root, '.stockade/workflows'), { recursive: true });
  writeFileSync(join(root, '.stockade/workflows/ok.yml'), 'on: push\n');
  symlinkSync(secret, join(root, '.stockade/workflows/key.yml'));
  symlinkSync('/proc/self/environ', join(root, '.stockade/workflows/env.yml'));
  symlinkSync('/dev/zero', join(root, '.stockade/workflows/zero.yml'));
  execFileSync('mkfifo', [join(root, '.stockade/workflows/fifo.yml')]);
  writeFileSync(join(root, '.stockade/workflows/big.yml'), 'x'.repeat(600 * 1024));
  // A link in a directory component: .github -> a directory outside holding a workflow.
  const outside = tmp();
  mkdirSync(join(outside, 'workflows'));
  writeFileSync(join(outside, 'workflows/ci.yml'), 'outside content');
  symlinkSync(outside, join(root, '.github'));

  assert.deepEqual(await readFileBeneath(root, '.stockade/workflows/ok.yml', 1024), { ok: true, text: 'on: push\n' });
  for (const name of ['key.yml', 'env.yml', 'zero.yml']) {
    const r = await readFileBeneath(root, `.stockade/workflows/${name}`, 1024);
    assert.equal(r.ok, false);
    assert.match((r as { error: string }).error, /symbolic link/);
  }
  const started = Date.now();
  const fifo = await readFileBeneath(root, '.stockade/workflows/fifo.yml', 1024);
  assert.ok(Date.now() - started < 1000, 'a FIFO is never opened (opening one blocks)');
  assert.match((fifo as { error: string }).error, /not a regular file/);
  assert.match(((await readFileBeneath(root, '.stockade/workflows/big.yml', 512 * 1024)) as { error: string }).error, /614400 bytes; the limit is 524288/);
  assert.match(((await readFileBeneath(root, '.github/workflows/ci.yml', 1024)) as { error: string }).error, /\.github is a symbolic link/);
  assert.match(((await readFileBeneath(root, '../etc/passwd', 1024)) as { error: string }).error, /climbs out/);
  assert.match(((await readFileBeneath(root, '/etc/passwd', 1024)) as { error: string }).error, /absolute/);
  assert.equal(((await listDirBeneath(root, '.github')) as { ok: boolean }).ok, false);

  // The workflow loader turns each refusal into a diagnostic naming the file, never its content.
  const r = await readWorkflowFiles(root, '.stockade/workflows');
  assert.deepEqual(r.files.map((f) => f.path), ['.stockade/workflows/ok.yml']);
  const text = JSON.stringify(r.diagnostics);
  assert.equal(r.diagnostics.length, 5, text);
  assert.doesNotMatch(text, /PRIVATE KEY|PATH=|outside content/);
  assert.match(text, /key\.yml/);
  const viaLink = await readWorkflowFiles(root, '.github/workflows');
  assert.equal(viaLink.files.length, 0);
  assert.match(viaLink.diagnostics[0]!.message, /symbolic link/);
});

test('a diagnostic quotes at most a short excerpt of the file', () => {
  const r = parseWorkflowText('.stockade/workflows/x.yml', `on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n        bogus: ${'S3CR3T'.repeat(30)}\n`);
  const msg = r.diagnostics.map((d) => d.message).join('\n');
  assert.ok(r.diagnostics.length > 0);
  assert.ok(!msg.includes('S3CR3T'.repeat(7)), msg);
  assert.equal(limitExcerpts(`Unexpected value '${'a'.repeat(100)}'`), `Unexpected value '${'a'.repeat(32)}…'`);
  assert.ok(limitExcerpts('x'.repeat(1000)).length <= 401);
  assert.equal(limitExcerpts('bell\u0007'), 'bell\\x07');
});

/** A gzipped tar of the given entries under a top-level directory, as GitHub's archives are. */
async function tarball(entries: Array<{ name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'; body?: Buffer | string; size?: number; linkname?: string; zeros?: number }>): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  for (const e of entries) {
    if (e.zeros !== undefined) {
      const s = p.entry({ name: e.name, size: e.zeros, type: 'file' });
      const block = Buffer.alloc(1024 * 1024);
      for (let left = e.zeros; left > 0; left -= block.length) s.write(left >= block.length ? block : block.subarray(0, left));
      await new Promise<void>((r, j) => s.end((err?: Error | null) => (err ? j(err) : r())));
      continue;
    }
    await new Promise<void>((r, j) => p.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, ...(e.type === 'character-device' ? { devmajor: 1, devminor: 5 } : {}) }, e.body ?? '', (err) => (err ? j(err) : r())));
  }
  p.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

test('a repository archive is extracted under its limits: bytes, entries, links, special files, time and free disk', async () => {
  const ok = await tarball([{ name: 'repo-abc/', type: 'directory' }, { name: 'repo-abc/README.md', body: 'hello' }, { name: 'repo-abc/link', type: 'symlink', linkname: '/etc/shadow' }, { name: 'repo-abc/src/a.ts', body: 'x' }]);
  const dir = join(tmp(), 'w');
  const r = await extractTarball(Readable.from([ok]), dir);
  assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), 'hello');
  assert.ok(lstatSync(join(dir, 'link')).isSymbolicLink(), 'a link stays a link, never followed');
  assert.equal(r.bytes, 6);

  // Git stores identical blobs once: 200 MiB of zeros is a 200 KiB download.
  const bomb = await tarball([{ name: 'repo-abc/zeros', zeros: 200 * 1024 * 1024 }]);
  assert.ok(bomb.length < 1024 * 1024, `bomb is ${bomb.length} bytes`);
  const bombDir = join(tmp(), 'w');
  await assert.rejects(extractTarball(bomb, bombDir, { maxExtractedBytes: 16 * 1024 * 1024 }), /expands to more than 16777216 bytes/);
  const written = readdirSync(bombDir).map((f) => lstatSync(join(bombDir, f)).size).reduce((a, b) => a + b, 0);
  assert.ok(written <= 16 * 1024 * 1024, `${written} bytes written before it stopped`);
  await assert.rejects(extractTarball(bomb, join(tmp(), 'w'), { maxCompressedBytes: 50_000 }), /larger than 50000 bytes compressed/);

  const many = await tarball(Array.from({ length: 30 }, (_, i) => ({ name: `repo-abc/f${i}`, body: 'x' })));
  await assert.rejects(extractTarball(many, join(tmp(), 'w'), { maxEntries: 10 }), /more than 10 entries/);

  const slip = await tarball([{ name: 'repo-abc/evil', type: 'symlink', linkname: '/tmp' }, { name: 'repo-abc/evil/planted', body: 'x' }]);
  const slipDir = join(tmp(), 'w');
  await assert.rejects(extractTarball(slip, slipDir), /lies below 'evil', which is a symbolic link/);
  assert.ok(!existsSync('/tmp/planted'));
  await assert.rejects(extractTarball(await tarball([{ name: 'repo-abc/../../x', body: 'x' }]), join(tmp(), 'w')), /climbs out/);
  await assert.rejects(extractTarball(await tarball([{ name: 'repo-abc/a', body: 'x' }, { name: 'repo-abc/h', type: 'link', linkname: 'repo-abc/a' }]), join(tmp(), 'w')), /is a link; only files/);
  await assert.rejects(extractTarball(await tarball([{ name: 'repo-abc/null', type: 'character-device' }]), join(tmp(), 'w')), /is a character-device/);
  await assert.rejects(extractTarball(await tarball([{ name: 'repo-abc/a', body: 'x' }, { name: 'repo-abc/a', body: 'y' }]), join(tmp(), 'w')), /appears twice/);
  await assert.rejects(extractTarball(ok, join(tmp(), 'w'), { reserveBytes: 1024 ** 5 }), /less than the 1073741824 MiB that must stay free/);
  const slow = new Readable({ read() {} });
  slow.push(ok.subarray(0, 10));
  await assert.rejects(extractTarball(slow, join(tmp(), 'w'), { maxMs: 300 }), /took longer than 0 s/);
  await assert.rejects(extractTarball(Buffer.from('not a gzip'), join(tmp(), 'w')), /could not be extracted/);
});

test('fork detection fails closed: unknown or null head repositories, check suites without a head branch, re-requests', () => {
  const base = { id: 1, full_name: 'octo-org/hello', default_branch: 'main' };
  assert.equal(sameRepository({ id: 1, full_name: 'Octo-Org/Hello' }, base), true);
  assert.equal(sameRepository(null, base), false);
  assert.equal(sameRepository(undefined, base), false);
  assert.equal(sameRepository({ id: 2, full_name: 'octo-org/hello' }, base), false, 'same name, other repository (a deleted and recreated fork)');
  assert.equal(sameRepository({ full_name: 'mallory/hello' }, base), false);
  assert.equal(sameRepository({}, base), false);
  const sha = 'a'.repeat(40);
  const pr = (head: unknown) => planDelivery('g', 'pull_request', { action: 'opened', number: 3, repository: base, installation: { id: 9 }, pull_request: { number: 3, head: { sha, repo: head } } }, []);
  const fork = (p: ReturnType<typeof planDelivery>) => (p.jobs[0]!.spec as AppSpec).fromFork;
  assert.equal(fork(pr({ id: 1, full_name: 'octo-org/hello' })), false);
  assert.equal(fork(pr(null)), true, 'GitHub reports null once the fork is deleted');
  assert.equal(fork(pr(undefined)), true);
  assert.equal(fork(pr({ id: 77, full_name: 'mallory/hello' })), true);
  const suite = (action: string, cs: Record<string, unknown>) => planDelivery('g', 'check_suite', { action, repository: base, installation: { id: 9 }, check_suite: { head_sha: sha, ...cs } }, []);
  assert.equal(fork(suite('requested', { head_branch: 'main', pull_requests: [] })), false);
  assert.equal(fork(suite('requested', { head_branch: null, pull_requests: [] })), true);
  assert.equal(fork(suite('requested', { head_branch: 'feature', pull_requests: [{ head: { repo: { id: 77, name: 'hello' } }, base: { repo: { id: 1 } } }] })), true);
  assert.equal(fork(suite('rerequested', { head_branch: 'main', pull_requests: [] })), true);
});

test('quota scopes match exactly and in any case: acme never sees acme-rival', async () => {
  const q = (await JobStore.open(':memory:')).quotas;
  await q.set('org:acme', { concurrency: 2 });
  await q.set('repo:acme/web', { concurrency: 1 });
  await q.set('org:acme-rival', { concurrency: 9 });
  await q.set('repo:acme-rival/web', { concurrency: 9 });
  await q.set('repo:ACME/Api', { concurrency: 3 });
  assert.deepEqual((await q.list('ACME')).map((x) => x.scope), ['org:acme', 'repo:acme/api', 'repo:acme/web']);
  assert.deepEqual(await q.get('Org:Acme'), { concurrency: 2 });
  await q.addUsage(['repo:Acme/Web'], 60_000);
  assert.equal((await q.usage('repo:acme/web')).dayMs, 60_000);
  assert.equal((await q.list()).length, 5);
});

/** Calls the admin handler as the HTTP server would, from a client at `remote`. */
async function adminCall(handler: ReturnType<typeof adminHandler>, o: { method: string; url: string; token?: string; body?: unknown; remote?: string }): Promise<{ status: number; body: string }> {
  const req = Readable.from(o.body === undefined ? [] : [Buffer.from(JSON.stringify(o.body))]) as unknown as IncomingMessage;
  Object.assign(req, { method: o.method, url: o.url, headers: o.token ? { authorization: `Bearer ${o.token}` } : {}, socket: { remoteAddress: o.remote ?? '127.0.0.1' } });
  let status = 0;
  let body = '';
  const res: { headersSent: boolean; [k: string]: unknown } = { headersSent: false, writeHead(s: number) { status = s; res.headersSent = true; return res; }, end(b?: string) { body = b ?? ''; return res; }, destroy() {} };
  await handler(req, res as unknown as ServerResponse);
  return { status, body };
}

test('admin API: exact, case-insensitive scopes; an organisation cannot raise its limits past the operator ceiling; metrics only for loopback or the operator', async () => {
  const store = await JobStore.open<JobSpec, JobReport>(':memory:');
  const acme = 'acme-token-0123456789abcdef';
  const op = 'operator-token-0123456789ab';
  await store.quotas.addToken(hashToken(acme), 'Acme');
  await store.quotas.addToken(hashToken(op), '*');
  await store.quotas.set('org:acme-rival', { concurrency: 9 });
  await store.quotas.set('repo:acme-rival/secret-project', { concurrency: 9 });
  await store.quotas.set('repo:acme/web', { concurrency: 1 });
  const metrics = new ServerMetrics(store);
  const h = adminHandler({ store, metrics, cancel: async () => false, ready: async () => ({ ok: true, checks: {} }), ceiling: (scope) => (scope === 'org:acme' ? { concurrency: 4, minutesPerDay: 600 } : {}) });
  const list = await adminCall(h, { method: 'GET', url: '/v1/quotas', token: acme });
  assert.equal(list.status, 200);
  assert.doesNotMatch(list.body, /rival/, 'acme never sees acme-rival');
  assert.match(list.body, /repo:acme\/web/);
  assert.equal((await adminCall(h, { method: 'GET', url: '/v1/quotas?org=acme-rival', token: acme })).status, 403);
  assert.equal((await adminCall(h, { method: 'GET', url: '/v1/quotas/ACME', token: acme })).status, 200, 'owner names are case-insensitive');
  assert.equal((await adminCall(h, { method: 'PUT', url: '/v1/quotas/acme-rival', token: acme, body: { concurrency: 1 } })).status, 403);
  const raise = await adminCall(h, { method: 'PUT', url: '/v1/quotas/acme', token: acme, body: { concurrency: 10 } });
  assert.equal(raise.status, 403);
  assert.match(raise.body, /above the ceiling of 4/);
  assert.equal((await adminCall(h, { method: 'PUT', url: '/v1/quotas/acme', token: acme, body: { minutesPerDay: null } })).status, 403, 'a ceiling cannot be cleared');
  assert.equal((await adminCall(h, { method: 'PUT', url: '/v1/quotas/acme', token: acme, body: { concurrency: 3 } })).status, 200);
  assert.equal((await adminCall(h, { method: 'PUT', url: '/v1/quotas/acme', token: op, body: { concurrency: 50 } })).status, 200, 'the operator is not capped');
  assert.equal((await adminCall(h, { method: 'GET', url: '/v1/quotas/%E0%A4%A', token: acme })).status, 400, 'bad percent-encoding is a 400, not a crash');
  assert.equal((await adminCall(h, { method: 'GET', url: '/metrics', remote: '192.0.2.7' })).status, 401, 'no metrics for an unauthenticated client from outside');
  assert.equal((await adminCall(h, { method: 'GET', url: '/metrics', remote: '192.0.2.7', token: acme })).status, 401, 'nor for an organisation token');
  assert.equal((await adminCall(h, { method: 'GET', url: '/metrics', remote: '192.0.2.7', token: op })).status, 200);
  assert.equal((await adminCall(h, { method: 'GET', url: '/metrics' })).status, 200, 'loopback clients, as documented');
  // The fleet view: the operator's only; each host with its capacity, running jobs and heartbeat age.
  await store.leases.heartbeat({ id: 'host-a/1', capacity: 2, running: 1, draining: false, startedAt: Date.now() });
  await store.leases.heartbeat({ id: 'host-b/2', capacity: 4, running: 0, draining: true, startedAt: Date.now() });
  assert.equal((await adminCall(h, { method: 'GET', url: '/v1/fleet', token: acme })).status, 403);
  const fleet = await adminCall(h, { method: 'GET', url: '/v1/fleet', token: op });
  assert.equal(fleet.status, 200);
  const view = JSON.parse(fleet.body) as { hosts: Array<{ id: string; capacity: number; running: number; draining: boolean; heartbeatAgeMs: number }>; jobs: Record<string, number> };
  assert.deepEqual(view.hosts.map((x) => [x.id, x.capacity, x.running, x.draining]), [['host-a/1', 2, 1, false], ['host-b/2', 4, 0, true]]);
  assert.ok(view.hosts.every((x) => x.heartbeatAgeMs >= 0 && x.heartbeatAgeMs < 60_000));
  assert.equal(view.jobs.running, 0);
  const metricsText = (await adminCall(h, { method: 'GET', url: '/metrics' })).body;
  assert.match(metricsText, /stockade_fleet_host_capacity\{host="host-b\/2",state="draining"\} 4/);
  assert.match(metricsText, /stockade_fleet_host_running\{host="host-a\/1",state="serving"\} 1/);
});

test('work directories are named from a hash of the whole job key: keys sharing a long prefix never share one', () => {
  const prefix = `octo-org/${'r'.repeat(100)}/app/pull_request/12/${'a'.repeat(40)}`;
  const a = jobWorkDir('/w', `${prefix}/opened`);
  const b = jobWorkDir('/w', `${prefix}/synchronize`);
  assert.notEqual(a, b);
  // The old naming: the first 120 characters of the key in base64url.
  const old = (k: string) => Buffer.from(k).toString('base64url').slice(0, 120);
  assert.equal(old(`${prefix}/opened`), old(`${prefix}/synchronize`), 'the truncated prefix collided');
  assert.match(a, /^\/w\/[0-9a-f]{32}$/);
});

test('expressions are evaluated under a memory budget: exponential format() and join() fail fast, ordinary ones work', () => {
  let e = "'ab'";
  for (let i = 0; i < 40; i++) e = `format('{0}{0}', ${e})`;
  const rss0 = process.memoryUsage().rss;
  const t0 = Date.now();
  assert.throws(() => evaluateExpression(e, {}), /format\(\) would exceed the expression memory budget of 4000000 characters/);
  let j = `fromJSON('["aaaaaaaaaa"]')`;
  for (let i = 0; i < 16; i++) j = `fromJSON(format('[{0},{0},{0},{0}]', toJSON(${j})))`;
  assert.throws(() => evaluateExpression(j, {}), /memory budget/);
  const wide = `format('${'{0}'.repeat(2000)}', format('{0}{0}{0}{0}', '${'x'.repeat(1000)}'))`;
  assert.throws(() => evaluateExpression(wide, {}), /format\(\) would exceed/);
  assert.ok(Date.now() - t0 < 2000, `${Date.now() - t0} ms`);
  assert.ok(process.memoryUsage().rss - rss0 < 200 * 1024 * 1024, 'memory stays flat');
  assert.equal(evaluateExpression("format('{0}-{1}', 'a', join(fromJSON('[1,2]'), ','))", {}), 'a-1,2');
  assert.equal(interpolate("x=${{ format('{{0}}{0}', 'y') }}", {}), 'x={0}y');
});
