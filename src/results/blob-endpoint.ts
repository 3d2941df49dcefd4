import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, openSync, closeSync, readSync, writeSync, renameSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { XMLParser } from 'fast-xml-parser';

/**
 * The part of Azure Blob Storage's REST API GitHub's clients use for signed URLs: Put Blob,
 * Put Block, Put Block List and Get Blob (with ranges). `@azure/storage-blob`, inside
 * actions/cache and @actions/artifact, talks to it unchanged.
 */
export interface SignedBlob {
  blob: string;
  op: 'r' | 'w';
  /** Bytes a write may total. */
  maxBytes: number;
  /** Name a download is offered under (Content-Disposition). */
  fileName?: string;
}

/** Azure's limits: 50,000 blocks a blob, block ids of 64 bytes at most. */
const MAX_BLOCKS = 50_000;
const MAX_BLOCK_LIST_BYTES = 4 * 1024 * 1024;
const URL_LIFETIME_MS = 6 * 3600_000;

export class BlobSigner {
  constructor(private readonly key: Buffer) {}

  /** `base` + a path and query that only this signer accepts, for `lifetime` ms. */
  url(base: string, s: SignedBlob, now = Date.now()): string {
    const se = String(now + URL_LIFETIME_MS);
    const q = new URLSearchParams({ op: s.op, max: String(s.maxBytes), se, ...(s.fileName ? { fn: s.fileName } : {}) });
    q.set('sig', this.sign(s.blob, q));
    const tail = s.fileName ? `/${encodeURIComponent(s.fileName)}` : '';
    return new URL(`blob/${s.blob}${tail}?${q}`, base).href;
  }

  /** The blob a request's URL grants, or undefined when its signature, expiry or form is wrong. */
  verify(url: URL, now = Date.now()): SignedBlob | undefined {
    const m = /^\/blob\/([0-9a-f]{32})(?:\/[^/]*)?$/.exec(url.pathname);
    const sig = url.searchParams.get('sig');
    if (!m || !sig) return undefined;
    const q = new URLSearchParams();
    for (const k of ['op', 'max', 'se', 'fn']) {
      const v = url.searchParams.get(k);
      if (v !== null) q.set(k, v);
    }
    const want = Buffer.from(this.sign(m[1]!, q));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
    if (!(Number(q.get('se')) > now)) return undefined;
    const op = q.get('op');
    if (op !== 'r' && op !== 'w') return undefined;
    return { blob: m[1]!, op, maxBytes: Number(q.get('max')), fileName: q.get('fn') ?? undefined };
  }

  private sign(blob: string, q: URLSearchParams): string {
    return createHmac('sha256', this.key).update(`${blob}\n${q.get('op')}\n${q.get('max')}\n${q.get('se')}\n${q.get('fn') ?? ''}`).digest('base64url');
  }
}

function azureHeaders(res: ServerResponse, status: number, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'x-ms-request-id': randomUUID(), 'x-ms-version': '2024-11-04', date: new Date().toUTCString(), ...extra });
}

export function azureError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) return void res.destroy();
  const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message.replace(/[<>&]/g, '')}</Message></Error>`;
  azureHeaders(res, status, { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)), 'x-ms-error-code': code });
  res.end(body);
}

/** Counts bytes through a stream and fails it past `max`. */
function limit(max: number): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      n += chunk.length;
      if (n > max) cb(Object.assign(new Error(`the upload is larger than the ${max} bytes allowed`), { tooLarge: true }));
      else cb(null, chunk);
    },
  });
}

const blockFile = (dir: string, id: string) => `${dir}/${Buffer.from(id).toString('hex')}`;

/** Serves one signed blob request; `path` is the blob's file on the host. */
export async function serveBlob(req: IncomingMessage, res: ServerResponse, url: URL, grant: SignedBlob, path: string): Promise<void> {
  const comp = url.searchParams.get('comp');
  if (req.method === 'GET' || req.method === 'HEAD') {
    if (grant.op !== 'r') return azureError(res, 403, 'AuthorizationPermissionMismatch', 'this URL only writes');
    return getBlob(req, res, grant, path);
  }
  if (req.method !== 'PUT') return azureError(res, 405, 'UnsupportedHttpVerb', `${req.method} is not supported`);
  if (grant.op !== 'w') return azureError(res, 403, 'AuthorizationPermissionMismatch', 'this URL only reads');
  const etag = `"0x${Date.now().toString(16).toUpperCase()}"`;
  try {
    if (comp === 'block') {
      const id = url.searchParams.get('blockid') ?? '';
      const raw = Buffer.from(id, 'base64');
      if (!id || raw.length > 64 || raw.length === 0) return azureError(res, 400, 'InvalidQueryParameterValue', 'blockid must be base64 of 1 to 64 bytes');
      const dir = `${path}.blocks`;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const used = dirBytes(dir);
      const file = blockFile(dir, id);
      await pipeline(req, limit(Math.max(0, grant.maxBytes - used)), createWriteStream(`${file}.part`, { mode: 0o600 }));
      renameSync(`${file}.part`, file);
      azureHeaders(res, 201, { 'content-length': '0', 'x-ms-request-server-encrypted': 'true' });
      return void res.end();
    }
    if (comp === 'blocklist') return await putBlockList(req, res, grant, path, etag);
    if (comp) return azureError(res, 400, 'InvalidQueryParameterValue', `comp=${comp} is not supported`);
    // Put Blob: the whole content in one request.
    await pipeline(req, limit(grant.maxBytes), createWriteStream(`${path}.part`, { mode: 0o600 }));
    renameSync(`${path}.part`, path);
    saveType(path, req.headers['x-ms-blob-content-type']);
    azureHeaders(res, 201, { etag, 'last-modified': new Date().toUTCString(), 'content-length': '0', 'x-ms-request-server-encrypted': 'true' });
    res.end();
  } catch (e) {
    rmSync(`${path}.part`, { force: true });
    if ((e as { tooLarge?: boolean }).tooLarge) return azureError(res, 413, 'RequestBodyTooLarge', (e as Error).message);
    azureError(res, 400, 'InvalidInput', (e as Error).message);
  }
}

async function putBlockList(req: IncomingMessage, res: ServerResponse, grant: SignedBlob, path: string, etag: string): Promise<void> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BLOCK_LIST_BYTES) return azureError(res, 413, 'RequestBodyTooLarge', 'the block list is too long');
    chunks.push(c);
  }
  const parsed = new XMLParser({ isArray: () => true, processEntities: false }).parse(Buffer.concat(chunks).toString('utf8')) as { BlockList?: Array<Record<string, unknown[]>> };
  const list = parsed.BlockList?.[0];
  if (!list) return azureError(res, 400, 'InvalidXmlDocument', 'no BlockList element');
  const ids: string[] = [];
  for (const tag of ['Latest', 'Committed', 'Uncommitted']) for (const v of list[tag] ?? []) ids.push(String(v));
  if (ids.length > MAX_BLOCKS) return azureError(res, 400, 'BlockListTooLong', `more than ${MAX_BLOCKS} blocks`);
  const dir = `${path}.blocks`;
  let total = 0;
  for (const id of ids) {
    const st = statOrUndefined(blockFile(dir, id));
    if (!st) return azureError(res, 400, 'InvalidBlockList', `block ${id} was not uploaded`);
    total += st.size;
  }
  if (total > grant.maxBytes) return azureError(res, 413, 'RequestBodyTooLarge', `the blob would be ${total} bytes, more than the ${grant.maxBytes} allowed`);
  const out = openSync(`${path}.part`, 'w', 0o600);
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (const id of ids) {
      const fd = openSync(blockFile(dir, id), 'r');
      try {
        for (let r = readSync(fd, buf); r > 0; r = readSync(fd, buf)) writeSync(out, buf, 0, r);
      } finally {
        closeSync(fd);
      }
    }
  } finally {
    closeSync(out);
  }
  renameSync(`${path}.part`, path);
  rmSync(dir, { recursive: true, force: true });
  saveType(path, req.headers['x-ms-blob-content-type']);
  azureHeaders(res, 201, { etag, 'last-modified': new Date().toUTCString(), 'content-length': '0', 'x-ms-request-server-encrypted': 'true' });
  res.end();
}

function getBlob(req: IncomingMessage, res: ServerResponse, grant: SignedBlob, path: string): void {
  const st = statOrUndefined(path);
  if (!st) return azureError(res, 404, 'BlobNotFound', 'the blob does not exist');
  // An artifact uploaded without a type is a zip (upload-artifact before v4.6 sent none).
  const type = loadType(path) ?? (grant.fileName ? 'application/zip' : 'application/octet-stream');
  const headers: Record<string, string> = { 'content-type': type, 'accept-ranges': 'bytes', 'x-ms-blob-type': 'BlockBlob', 'last-modified': st.mtime.toUTCString(), etag: `"0x${Math.floor(st.mtimeMs).toString(16).toUpperCase()}"` };
  if (grant.fileName) headers['content-disposition'] = `attachment; filename*=UTF-8''${encodeURIComponent(grant.fileName)}`;
  const range = String(req.headers['x-ms-range'] ?? req.headers.range ?? '');
  const m = /^bytes=(\d+)-(\d*)$/.exec(range);
  let start = 0;
  let end = st.size - 1;
  let status = 200;
  if (m) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), st.size - 1) : st.size - 1;
    if (start >= st.size || start > end) return azureError(res, 416, 'InvalidRange', 'the range is outside the blob');
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
  }
  headers['content-length'] = String(st.size === 0 ? 0 : end - start + 1);
  azureHeaders(res, status, headers);
  if (req.method === 'HEAD' || st.size === 0) return void res.end();
  pipeline(createReadStream(path, { start, end }), res).catch(() => res.destroy());
}

function saveType(path: string, type: string | string[] | undefined): void {
  const t = typeof type === 'string' && /^[\w.+-]+\/[\w.+-]+$/.test(type) ? type : undefined;
  if (t) writeFileSync(`${path}.type`, t, { mode: 0o600 });
}

function loadType(path: string): string | undefined {
  try {
    return readFileSync(`${path}.type`, 'utf8');
  } catch {
    return undefined;
  }
}

function statOrUndefined(p: string) {
  try {
    const st = statSync(p);
    return st.isFile() ? st : undefined;
  } catch {
    return undefined;
  }
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) n += statOrUndefined(`${dir}/${f}`)?.size ?? 0;
  return n;
}
