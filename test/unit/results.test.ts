/**
 * The results service over real HTTP on its Unix socket, as a hostile step would talk to it:
 * tokens, signed URLs, scopes, quotas, retention and malformed requests.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintRuntimeToken, ResultsServer, ResultsStore, DEFAULT_RESULTS_LIMITS, type ResultsJob } from '../../src/results';
import { silentLogger } from '../../src/common';

const work = mkdtempSync(join(tmpdir(), 'stockade-results-unit-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function call(socketPath: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const CACHE = '/twirp/github.actions.results.api.v1.CacheService/';
const ART = '/twirp/github.actions.results.api.v1.ArtifactService/';
const VERSION = 'a'.repeat(64);

async function service(store: ResultsStore, job: ResultsJob) {
  const token = await mintRuntimeToken(job, 600);
  const sock = join(work, `s-${Math.random().toString(36).slice(2)}.sock`);
  const server = new ResultsServer({ store, job, token, publicUrl: 'http://127.0.0.1:61873/', logger: silentLogger() });
  await server.listen(sock);
  const twirp = (m: string, body: unknown, t = token) => call(sock, 'POST', m, JSON.stringify(body), { 'content-type': 'application/json', authorization: `Bearer ${t}` });
  const path = (url: string) => new URL(url).pathname + new URL(url).search;
  return { token, sock, server, twirp, path };
}

const jobOf = (repository: string, ref = 'refs/heads/main', extra: Partial<ResultsJob> = {}): ResultsJob => ({ repository, runBackendId: '11111111-1111-1111-1111-111111111111', jobBackendId: '22222222-2222-2222-2222-222222222222', writeScope: ref, readScopes: [ref, 'refs/heads/main'], ...extra });

describe('results service', () => {
  const store = new ResultsStore(join(work, 'store'));

  test('the runtime token is a JWT whose scp names Actions.Results:<run>:<job>', async () => {
    const t = await mintRuntimeToken(jobOf('a/b'), 600);
    const payload = JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { scp: string; exp: number };
    assert.match(payload.scp, /Actions\.Results:11111111-1111-1111-1111-111111111111:22222222-2222-2222-2222-222222222222/);
    assert.ok(payload.exp > Date.now() / 1000);
  });

  test('no token, another job\'s token or a wrong one: 401, and nothing is created', async () => {
    const s = await service(store, jobOf('acme/one'));
    const other = await mintRuntimeToken(jobOf('acme/one'), 600);
    for (const t of ['', 'x', other]) {
      const r = await call(s.sock, 'POST', `${CACHE}CreateCacheEntry`, JSON.stringify({ key: 'k', version: VERSION }), { 'content-type': 'application/json', ...(t ? { authorization: `Bearer ${t}` } : {}) });
      assert.equal(r.status, 401);
    }
    assert.equal(store.listCaches('acme/one').length, 0);
    assert.equal(s.server.events.filter((e) => e.kind === 'refused').length, 3);
    await s.server.close();
  });

  test('a signed URL: tampered, expired-looking or used for the other direction is refused', async () => {
    const s = await service(store, jobOf('acme/two'));
    const r = await s.twirp(`${CACHE}CreateCacheEntry`, { key: 'k1', version: VERSION });
    assert.equal(r.status, 200, r.body.toString());
    const up = (JSON.parse(r.body.toString()) as { signed_upload_url: string }).signed_upload_url;
    const p = s.path(up);
    assert.equal((await call(s.sock, 'GET', p)).status, 403, 'a write URL reads nothing');
    assert.equal((await call(s.sock, 'PUT', p.replace(/max=\d+/, 'max=99999999999'), 'x', { 'x-ms-blob-type': 'BlockBlob' })).status, 403, 'a raised limit breaks the signature');
    assert.equal((await call(s.sock, 'PUT', p.replace(/se=\d+/, 'se=99999999999999'), 'x', { 'x-ms-blob-type': 'BlockBlob' })).status, 403);
    assert.equal((await call(s.sock, 'PUT', p.replace(/\/blob\/[0-9a-f]{32}/, `/blob/${'0'.repeat(32)}`), 'x', { 'x-ms-blob-type': 'BlockBlob' })).status, 403, 'another blob');
    assert.equal((await call(s.sock, 'PUT', p, 'hello', { 'x-ms-blob-type': 'BlockBlob' })).status, 201);
    const fin = await s.twirp(`${CACHE}FinalizeCacheEntryUpload`, { key: 'k1', version: VERSION, size_bytes: '5' });
    assert.equal(fin.status, 200, fin.body.toString());
    const dl = await s.twirp(`${CACHE}GetCacheEntryDownloadURL`, { key: 'k1', version: VERSION });
    const url = (JSON.parse(dl.body.toString()) as { signed_download_url: string }).signed_download_url;
    assert.equal((await call(s.sock, 'GET', s.path(url))).body.toString(), 'hello');
    assert.equal((await call(s.sock, 'PUT', s.path(url), 'evil', { 'x-ms-blob-type': 'BlockBlob' })).status, 403, 'a read URL writes nothing');
    const ranged = await call(s.sock, 'GET', s.path(url), undefined, { range: 'bytes=1-3' });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.body.toString(), 'ell');
    // Caches are immutable: the same key and version cannot be reserved again.
    assert.equal((await s.twirp(`${CACHE}CreateCacheEntry`, { key: 'k1', version: VERSION })).status, 409);
    await s.server.close();
  });

  test('block uploads are assembled in the listed order; more than the quota is refused with 413', async () => {
    const small = new ResultsStore(join(work, 'small'), { ...DEFAULT_RESULTS_LIMITS, cacheQuotaBytes: 10 });
    const s = await service(small, jobOf('acme/blocks'));
    const up = s.path((JSON.parse((await s.twirp(`${CACHE}CreateCacheEntry`, { key: 'b', version: VERSION })).body.toString()) as { signed_upload_url: string }).signed_upload_url);
    const id = (n: string) => Buffer.from(n).toString('base64');
    assert.equal((await call(s.sock, 'PUT', `${up}&comp=block&blockid=${encodeURIComponent(id('2'))}`, 'def')).status, 201);
    assert.equal((await call(s.sock, 'PUT', `${up}&comp=block&blockid=${encodeURIComponent(id('1'))}`, 'abc')).status, 201);
    assert.equal((await call(s.sock, 'PUT', `${up}&comp=block&blockid=${encodeURIComponent(id('3'))}`, 'too much data')).status, 413);
    const list = `<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>${id('1')}</Latest><Latest>${id('2')}</Latest></BlockList>`;
    assert.equal((await call(s.sock, 'PUT', `${up}&comp=blocklist`, list, { 'x-ms-blob-content-type': 'application/zip' })).status, 201);
    const missing = `<BlockList><Latest>${id('9')}</Latest></BlockList>`;
    assert.equal((await call(s.sock, 'PUT', `${up}&comp=blocklist`, missing)).status, 400);
    assert.equal((await s.twirp(`${CACHE}FinalizeCacheEntryUpload`, { key: 'b', version: VERSION })).status, 200);
    const hit = small.findCache('acme/blocks', ['refs/heads/main'], ['b'], VERSION);
    assert.ok(hit);
    assert.equal(hit.size, 6);
    assert.equal((await call(s.sock, 'PUT', up, 'x'.repeat(11), { 'x-ms-blob-type': 'BlockBlob' })).status, 413);
    await s.server.close();
    small.close();
  });

  test('past the quota the least recently used caches go; retention removes unused ones and orphans', () => {
    const dir = join(work, 'lru');
    const st = new ResultsStore(dir, { ...DEFAULT_RESULTS_LIMITS, cacheQuotaBytes: 10 });
    const put = (key: string, size: number, at: number) => {
      const e = st.reserveCache('r/r', 'refs/heads/main', key, VERSION, at)!;
      writeFileSync(st.blobPath(e.blob), 'x'.repeat(size));
      assert.ok(st.finalizeCache(e, at).ok);
    };
    put('a', 4, 1000);
    put('b', 4, 2000);
    st.findCache('r/r', ['refs/heads/main'], ['a'], VERSION, 3000); // a is used again
    put('c', 4, 4000); // 12 bytes > 10: b, the least recently used, goes
    assert.deepEqual(st.listCaches('r/r').map((c) => c.key).sort(), ['a', 'c']);
    writeFileSync(join(st.blobDir, 'f'.repeat(32)), 'orphan');
    const pruned = st.prune(4000 + DEFAULT_RESULTS_LIMITS.cacheUnusedMs + 1);
    assert.equal(pruned.caches, 2);
    assert.equal(pruned.orphans, 1);
    assert.deepEqual(readdirSync(st.blobDir), []);
    st.close();
  });

  test('restore: primary key first, then restore keys by prefix (newest), in the job\'s scopes only', () => {
    const st = new ResultsStore(join(work, 'match'));
    const put = (scope: string, key: string, at: number) => {
      const e = st.reserveCache('m/m', scope, key, VERSION, at)!;
      writeFileSync(st.blobPath(e.blob), key);
      st.finalizeCache(e, at);
    };
    put('refs/heads/main', 'npm-linux-1', 1);
    put('refs/heads/main', 'npm-linux-2', 2);
    put('refs/heads/feature', 'npm-linux-3', 3);
    put('refs/pull/9/merge', 'npm-linux-4', 4);
    assert.equal(st.findCache('m/m', ['refs/heads/main'], ['npm-linux-1', 'npm-'], VERSION)?.key, 'npm-linux-1');
    assert.equal(st.findCache('m/m', ['refs/heads/main'], ['npm-linux-9', 'npm-'], VERSION)?.key, 'npm-linux-2');
    assert.equal(st.findCache('m/m', ['refs/heads/topic', 'refs/heads/main'], ['x', 'npm-'], VERSION)?.key, 'npm-linux-2');
    assert.equal(st.findCache('m/m', ['refs/heads/main'], ['npm-'], 'b'.repeat(64)), undefined, 'another version');
    assert.equal(st.findCache('other/repo', ['refs/heads/main'], ['npm-'], VERSION), undefined, 'another repository');
    assert.equal(st.findCache('m/m', ['refs/heads/main'], ['%', '_'], VERSION), undefined, 'no pattern characters');
    st.close();
  });

  test('artifacts: only the job\'s own run, names as upload-artifact allows, immutable once finalized', async () => {
    const s = await service(store, jobOf('acme/art'));
    const run = '11111111-1111-1111-1111-111111111111';
    const jobId = '22222222-2222-2222-2222-222222222222';
    assert.equal((await s.twirp(`${ART}ListArtifacts`, { workflow_run_backend_id: 'another-run', workflow_job_run_backend_id: jobId })).status, 403);
    assert.equal((await s.twirp(`${ART}CreateArtifact`, { workflow_run_backend_id: run, workflow_job_run_backend_id: jobId, name: '../escape', version: 4 })).status, 400);
    const made = await s.twirp(`${ART}CreateArtifact`, { workflow_run_backend_id: run, workflow_job_run_backend_id: jobId, name: 'dist', version: 4 });
    assert.equal(made.status, 200, made.body.toString());
    const up = s.path((JSON.parse(made.body.toString()) as { signed_upload_url: string }).signed_upload_url);
    assert.equal((await call(s.sock, 'PUT', up, 'PK-zip-bytes', { 'x-ms-blob-type': 'BlockBlob', 'x-ms-blob-content-type': 'application/zip' })).status, 201);
    const fin = await s.twirp(`${ART}FinalizeArtifact`, { workflow_run_backend_id: run, workflow_job_run_backend_id: jobId, name: 'dist', size: '12', hash: 'sha256:00' });
    assert.equal(fin.status, 200, fin.body.toString());
    const list = JSON.parse((await s.twirp(`${ART}ListArtifacts`, { workflow_run_backend_id: run, workflow_job_run_backend_id: jobId, name_filter: 'dist' })).body.toString()) as { artifacts: Array<{ name: string; size: string; database_id: string }> };
    assert.equal(list.artifacts.length, 1);
    assert.equal(list.artifacts[0]!.size, '12');
    const again = await s.twirp(`${ART}CreateArtifact`, { workflow_run_backend_id: run, workflow_job_run_backend_id: jobId, name: 'dist', version: 4 });
    assert.equal(again.status, 409);
    const signed = JSON.parse((await s.twirp(`${ART}GetSignedArtifactURL`, { workflow_run_backend_id: run, workflow_job_run_backend_id: jobId, name: 'dist' })).body.toString()) as { signed_url: string };
    const got = await call(s.sock, 'GET', s.path(signed.signed_url));
    assert.equal(got.headers['content-type'], 'application/zip');
    assert.equal(got.body.toString(), 'PK-zip-bytes');
    await s.server.close();
  });

  test('malformed requests get errors and the listener stays up', async () => {
    const s = await service(store, jobOf('acme/bad'));
    const auth = { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' };
    assert.equal((await call(s.sock, 'POST', `${CACHE}CreateCacheEntry`, '{not json', auth)).status, 400);
    assert.equal((await call(s.sock, 'POST', `${CACHE}CreateCacheEntry`, '[1,2]', auth)).status, 400);
    assert.equal((await call(s.sock, 'POST', `${CACHE}CreateCacheEntry`, JSON.stringify({ key: 'a,b', version: VERSION }), auth)).status, 400);
    assert.equal((await call(s.sock, 'POST', `${CACHE}CreateCacheEntry`, JSON.stringify({ key: 'k'.repeat(513), version: VERSION }), auth)).status, 400);
    assert.equal((await call(s.sock, 'POST', `${CACHE}CreateCacheEntry`, JSON.stringify({ key: 'k', version: '../../etc' }), auth)).status, 400);
    assert.equal((await call(s.sock, 'POST', `${CACHE}CreateCacheEntry`, 'x'.repeat(70_000), auth)).status, 400);
    assert.equal((await call(s.sock, 'POST', `${CACHE}Nope`, '{}', auth)).status, 404);
    assert.equal((await call(s.sock, 'POST', `${CACHE}CreateCacheEntry`, '{}', { ...auth, 'content-type': 'application/protobuf' })).status, 404);
    // Normalized to /etc/passwd: not a blob, and without the token.
    assert.equal((await call(s.sock, 'GET', '/blob/../../etc/passwd')).status, 401);
    assert.equal((await call(s.sock, 'GET', `/blob/${'0'.repeat(32)}?op=r&max=0&se=99999999999999&sig=forged`)).status, 403);
    assert.equal((await call(s.sock, 'PATCH', '/_apis/artifactcache/caches/1', 'x', { authorization: `Bearer ${s.token}`, 'content-range': 'bytes 0-0/*' })).status, 404, 'another job\'s upload id');
    const ok = await s.twirp(`${CACHE}GetCacheEntryDownloadURL`, { key: 'nothing', version: VERSION });
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.body.toString()) as { ok: boolean }).ok, false);
    await s.server.close();
  });
});
