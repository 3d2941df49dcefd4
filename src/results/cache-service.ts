import { openSync, closeSync, writeSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ResultsContext } from './results-server';
import { int, readJsonBody, sendJson, str, TwirpError } from './twirp';

/** GitHub's limits on a cache key: 512 characters, no commas (the v1 API lists keys comma-separated). */
const MAX_KEY = 512;
const MAX_RESTORE_KEYS = 10;
const MAX_BODY = 64 * 1024;

function checkKey(key: string, field = 'key'): string {
  if (!key) throw new TwirpError('invalid_argument', `${field} is empty`);
  if (key.length > MAX_KEY) throw new TwirpError('invalid_argument', `${field} is longer than ${MAX_KEY} characters`);
  if (key.includes(',')) throw new TwirpError('invalid_argument', `${field} cannot contain commas`);
  return key;
}

function checkVersion(v: string): string {
  if (!/^[0-9a-f]{1,128}$/i.test(v)) throw new TwirpError('invalid_argument', 'version must be the hexadecimal hash the cache client computes');
  return v;
}

/** Cache service v2: twirp `github.actions.results.api.v1.CacheService` (actions/cache v4.2+, @actions/cache 4+). */
export async function cacheTwirp(c: ResultsContext, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJsonBody(req, MAX_BODY);
  const { store, job } = c;
  if (method === 'CreateCacheEntry') {
    const key = checkKey(str(body, 'key'));
    const version = checkVersion(str(body, 'version'));
    if (!c.canSaveCaches) throw new TwirpError('permission_denied', 'this job may restore caches but not save them');
    const entry = store.reserveCache(job.repository, job.writeScope, key, version);
    if (!entry) throw new TwirpError('already_exists', 'cache entry with the same key, version, and scope already exists');
    c.events.push({ kind: 'cache-reserve', key });
    return sendJson(res, 200, { ok: true, signed_upload_url: c.signedUrl({ blob: entry.blob, op: 'w', maxBytes: store.limits.cacheQuotaBytes }) });
  }
  if (method === 'FinalizeCacheEntryUpload') {
    const key = checkKey(str(body, 'key'));
    const version = checkVersion(str(body, 'version'));
    const size = int(body, 'size_bytes');
    const entry = store.pendingCache(job.repository, { scope: job.writeScope, key, version });
    if (!entry) throw new TwirpError('not_found', `no upload of cache ${key} is in progress`);
    const done = store.finalizeCache(entry);
    if (!done.ok) throw new TwirpError('failed_precondition', done.why);
    if (size !== undefined && size !== done.size) c.logger.warn({ key, declared: size, stored: done.size }, 'cache size differs from the one declared');
    c.events.push({ kind: 'cache-save', key, bytes: done.size });
    return sendJson(res, 200, { ok: true, entry_id: String(entry.id) });
  }
  if (method === 'GetCacheEntryDownloadURL') {
    const key = checkKey(str(body, 'key'));
    const version = checkVersion(str(body, 'version'));
    const restore = body.restore_keys ?? [];
    if (!Array.isArray(restore) || restore.length > MAX_RESTORE_KEYS) throw new TwirpError('invalid_argument', `restore_keys must be a list of at most ${MAX_RESTORE_KEYS} keys`);
    const keys = [key, ...restore.map((k, i) => checkKey(typeof k === 'string' ? k : '', `restore_keys[${i}]`))];
    const hit = store.findCache(job.repository, job.readScopes, keys, version);
    if (!hit) {
      c.events.push({ kind: 'cache-miss', key });
      return sendJson(res, 200, { ok: false, signed_download_url: '', matched_key: '' });
    }
    c.events.push({ kind: hit.key === key ? 'cache-hit' : 'cache-partial', key: hit.key, bytes: hit.size });
    return sendJson(res, 200, { ok: true, signed_download_url: c.signedUrl({ blob: hit.blob, op: 'r', maxBytes: 0 }), matched_key: hit.key });
  }
  throw new TwirpError('bad_route', `CacheService has no method ${method}`);
}

/**
 * Cache service v1: the REST API under `_apis/artifactcache/` (@actions/cache on GitHub
 * Enterprise Server, where v2 is never used, and older clients).
 */
export async function cacheV1(c: ResultsContext, rest: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { store, job } = c;
  const fail = (status: number, message: string) => sendJson(res, status, { message, typeKey: 'ArtifactCacheException' });
  try {
    if (req.method === 'GET' && rest === 'cache') {
      const keys = (url.searchParams.get('keys') ?? '').split(',').filter(Boolean);
      if (!keys.length || keys.length > MAX_RESTORE_KEYS + 1) return fail(400, `keys must name 1 to ${MAX_RESTORE_KEYS + 1} keys`);
      keys.forEach((k) => checkKey(k));
      const version = checkVersion(url.searchParams.get('version') ?? '');
      const hit = store.findCache(job.repository, job.readScopes, keys, version);
      if (!hit) {
        c.events.push({ kind: 'cache-miss', key: keys[0]! });
        res.writeHead(204).end();
        return;
      }
      c.events.push({ kind: hit.key === keys[0] ? 'cache-hit' : 'cache-partial', key: hit.key, bytes: hit.size });
      return sendJson(res, 200, { scope: hit.scope, cacheKey: hit.key, cacheVersion: hit.version, creationTime: new Date(hit.createdAt).toISOString(), archiveLocation: c.signedUrl({ blob: hit.blob, op: 'r', maxBytes: 0 }) });
    }
    if (req.method === 'GET' && rest === 'caches') return sendJson(res, 200, { totalCount: 0, artifactCaches: [] });
    if (req.method === 'POST' && rest === 'caches') {
      const body = await readJsonBody(req, MAX_BODY);
      const key = checkKey(str(body, 'key'));
      const version = checkVersion(str(body, 'version'));
      const size = int(body, 'cacheSize');
      if (size !== undefined && size > store.limits.cacheQuotaBytes) return fail(400, `cache size of ${size} bytes is over the ${store.limits.cacheQuotaBytes}-byte limit`);
      if (!c.canSaveCaches) return fail(403, 'this job may restore caches but not save them');
      const entry = store.reserveCache(job.repository, job.writeScope, key, version);
      if (!entry) return fail(409, `Cache already exists. Scope: ${job.writeScope}, Key: ${key}, Version: ${version}`);
      c.events.push({ kind: 'cache-reserve', key });
      return sendJson(res, 201, { cacheId: entry.id });
    }
    const m = /^caches\/(\d{1,15})$/.exec(rest);
    if (m) {
      const entry = store.pendingCache(job.repository, { id: Number(m[1]) });
      if (!entry) return fail(404, `no upload of cache ${m[1]} is in progress`);
      if (req.method === 'PATCH') {
        const r = /^bytes (\d+)-(\d+)\/\*$/.exec(String(req.headers['content-range'] ?? ''));
        if (!r) return fail(400, 'Content-Range must be bytes START-END/*');
        const start = Number(r[1]);
        const end = Number(r[2]);
        if (end < start || end >= store.limits.cacheQuotaBytes) return fail(400, 'the range is outside what the cache quota allows');
        await writeAt(store.blobPath(entry.blob), start, end - start + 1, req);
        res.writeHead(204).end();
        return;
      }
      if (req.method === 'POST') {
        const body = await readJsonBody(req, MAX_BODY);
        const declared = int(body, 'size');
        const done = store.finalizeCache(entry);
        if (!done.ok) return fail(400, done.why);
        if (declared !== undefined && declared !== done.size) c.logger.warn({ key: entry.key, declared, stored: done.size }, 'cache size differs from the one declared');
        c.events.push({ kind: 'cache-save', key: entry.key, bytes: done.size });
        res.writeHead(204).end();
        return;
      }
    }
    return fail(404, `no such cache API: ${req.method} ${rest}`);
  } catch (e) {
    if (e instanceof TwirpError) return fail(400, e.message);
    throw e;
  }
}

/** Writes exactly `length` bytes of the request at `start` of `path`. */
async function writeAt(path: string, start: number, length: number, req: IncomingMessage): Promise<void> {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    fd = openSync(path, 'w', 0o600);
  }
  try {
    let pos = start;
    for await (const c of req as AsyncIterable<Buffer>) {
      if (pos + c.length > start + length) throw new TwirpError('invalid_argument', 'the chunk is longer than its Content-Range');
      writeSync(fd, c, 0, c.length, pos);
      pos += c.length;
    }
    if (pos !== start + length) throw new TwirpError('invalid_argument', 'the chunk is shorter than its Content-Range');
  } finally {
    closeSync(fd);
  }
}
