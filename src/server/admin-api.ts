import type { ServerStore } from './plan-delivery';
import { adminPages } from './admin-pages';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Quota } from '../store';
import type { ServerMetrics } from './metrics';

/** Allowed ranges of quota fields (null clears a limit). */
export const QUOTA_FIELDS: Record<keyof Quota, [number, number]> = {
  concurrency: [1, 256],
  minutesPerDay: [1, 1_440_000],
  minutesPerMonth: [1, 44_640_000],
};

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface AdminDeps {
  store: ServerStore;
  metrics: ServerMetrics;
  /** Cancels a queued or running job; false when there is no such job or it has finished. */
  cancel(key: string): Promise<boolean>;
  ready(): Promise<{ ok: boolean; checks: Record<string, string> }>;
  /**
   * The operator's ceiling for a scope (the server's configuration): an organisation's token
   * may lower its limits but never set one above it or clear it. Undefined fields: no ceiling.
   */
  ceiling?(scope: string): Quota;
  /** The admin pages (/ui): links to job pages need the public URL and the link key. */
  pages?: { publicUrl: string; logKey: Buffer };
}

type Reply = (status: number, body: unknown) => void;

/** Checks a quota body: only known fields, whole numbers in range or null; the error names the field and the range. */
export function validateQuota(body: unknown): { value: { [K in keyof Quota]?: number | null } } | { error: string } {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return { error: 'body must be a JSON object' };
  const out: { [K in keyof Quota]?: number | null } = {};
  for (const [k, v] of Object.entries(body)) {
    const range = QUOTA_FIELDS[k as keyof Quota];
    if (!range) return { error: `unknown field '${k}'; fields are ${Object.keys(QUOTA_FIELDS).join(', ')}` };
    if (v === null) {
      out[k as keyof Quota] = null;
      continue;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) return { error: `${k} must be a whole number from ${range[0]} to ${range[1]} (or null to clear it); got ${JSON.stringify(v)}` };
    out[k as keyof Quota] = v;
  }
  return { value: out };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 64 * 1024) throw new Error('body larger than 64 KiB');
    chunks.push(c as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
}

const NAME = /^[A-Za-z0-9_.-]{1,100}$/;

/**
 * The admin API (its own listener): quotas per repository and organisation,
 * the queue, job cancellation, /metrics and /readyz. Bearer tokens are stored
 * hashed and scoped to one organisation ('*': the operator); a token of org A
 * gets 403 for anything of org B.
 */
export function adminHandler(d: AdminDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const reply: Reply = (status, body) => void res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    try {
      await route(d, req, res, reply);
    } catch (e) {
      if (!res.headersSent) reply(500, { error: 'internal error' });
      else res.destroy();
      void e;
    }
  };
}

/** True for a client on this machine's loopback. */
function fromLoopback(req: IncomingMessage): boolean {
  const a = req.socket.remoteAddress ?? '';
  return a === '127.0.0.1' || a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
}

/** The path's segments decoded, or undefined when one is not valid percent-encoding. */
function segments(pathname: string): string[] | undefined {
  try {
    return pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

/** A field of a quota an organisation's token may not set: above the operator's ceiling, or cleared while one exists. */
function overCeiling(value: { [K in keyof Quota]?: number | null }, ceiling: Quota, scope: string): string | undefined {
  for (const [k, v] of Object.entries(value) as Array<[keyof Quota, number | null]>) {
    const max = ceiling[k];
    if (max === undefined) continue;
    if (v === null) return `${k} may not be cleared: the operator set a ceiling of ${max} for ${scope}`;
    if (v > max) return `${k} ${v} is above the ceiling of ${max} the operator set for ${scope}; ask the operator to raise it`;
  }
  return undefined;
}

async function route(d: AdminDeps, req: IncomingMessage, res: ServerResponse, reply: Reply): Promise<void> {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://x');
  } catch {
    return reply(400, { error: 'malformed request target' });
  }
  if (d.pages && (await adminPages({ store: d.store, scopeOf: (t) => d.store.quotas.tokenScope(hashToken(t)), publicUrl: d.pages.publicUrl, logKey: d.pages.logKey, ceiling: d.ceiling }, req, res, url))) return;
  const m = /^Bearer (\S{20,200})$/.exec(String(req.headers.authorization ?? ''));
  const scope = m ? await d.store.quotas.tokenScope(hashToken(m[1]!)) : undefined;
  // Metrics name repositories: only for a client on this machine or the operator's token.
  if (req.method === 'GET' && url.pathname === '/metrics') {
    if (!fromLoopback(req) && scope !== '*') return reply(401, { error: '/metrics needs the operator token (Authorization: Bearer TOKEN) from outside this machine' });
    res.writeHead(200, { 'content-type': d.metrics.registry.contentType }).end(await d.metrics.registry.metrics());
    return;
  }
  if (req.method === 'GET' && url.pathname === '/readyz') {
    const r = await d.ready();
    return reply(r.ok ? 200 : 503, r.checks);
  }
  if (!scope) return reply(401, { error: 'a valid admin token is required (Authorization: Bearer TOKEN)' });
  // Owner names are case-insensitive on GitHub and match exactly: acme never sees acme-rival.
  const may = (owner: string) => scope === '*' || scope.toLowerCase() === owner.toLowerCase();
  const parts = segments(url.pathname);
  if (!parts) return reply(400, { error: 'the path is not valid percent-encoding' });
  if (parts[0] === 'v1' && parts[1] === 'quotas') {
    const [owner, repo] = [parts[2], parts[3]];
    if (!owner) {
      const org = url.searchParams.get('org') ?? (scope === '*' ? '' : scope);
      if (org && !NAME.test(org)) return reply(400, { error: 'org must be an owner name' });
      if (!may(org || '*')) return reply(403, { error: `this token may not read ${org || 'every organisation'}` });
      const list = await d.store.quotas.list(org || undefined);
      return reply(200, await Promise.all(list.map(async (q) => ({ ...q, usage: await d.store.quotas.usage(q.scope) }))));
    }
    if (!NAME.test(owner) || (repo !== undefined && !NAME.test(repo)) || parts.length > 4) return reply(400, { error: 'path must be /v1/quotas/OWNER or /v1/quotas/OWNER/REPO' });
    if (!may(owner)) return reply(403, { error: `this token may not administer ${owner}` });
    const key = repo ? `repo:${owner}/${repo}` : `org:${owner}`;
    if (req.method === 'GET') return reply(200, { scope: key, quota: await d.store.quotas.get(key), usage: await d.store.quotas.usage(key) });
    if (req.method === 'PUT') {
      let body: unknown;
      try {
        body = await readJson(req);
      } catch (e) {
        return reply(400, { error: `body: ${(e as Error).message}` });
      }
      const v = validateQuota(body);
      if ('error' in v) return reply(400, { error: v.error });
      if (scope !== '*') {
        const over = overCeiling(v.value, d.ceiling?.(key) ?? {}, key);
        if (over) return reply(403, { error: over });
      }
      return reply(200, { scope: key, quota: await d.store.quotas.set(key, v.value) });
    }
    return reply(405, { error: 'use GET or PUT' });
  }
  if (parts[0] === 'v1' && parts[1] === 'queue' && req.method === 'GET') {
    const now = Date.now();
    const rows = (await Promise.all((['accepted', 'queued', 'running'] as const).map((s) => d.store.inState(s, 100_000)))).flat();
    const mine = rows.filter((r) => may(r.repository.split('/')[0]!));
    return reply(200, mine.map((r) => ({ key: r.key, repository: r.repository, state: r.state, waitingMs: (r.startedAt ?? now) - r.createdAt, runningMs: r.startedAt ? now - r.startedAt : 0 })));
  }
  if (parts[0] === 'v1' && parts[1] === 'fleet' && parts.length === 2 && req.method === 'GET') {
    // Every host of the fleet (one on SQLite): capacity, running jobs, last heartbeat. The operator's view.
    if (scope !== '*') return reply(403, { error: 'the fleet view needs the operator token' });
    const now = Date.now();
    const [hosts, counts] = await Promise.all([d.store.leases.hosts(), d.store.counts()]);
    return reply(200, { hosts: hosts.map((h) => ({ ...h, heartbeatAgeMs: now - h.heartbeatAt })), jobs: counts });
  }
  if (parts[0] === 'v1' && parts[1] === 'jobs' && parts[3] === 'cancel' && req.method === 'POST' && parts[2]) {
    const row = await d.store.get(parts[2]);
    if (!row || !may(row.repository.split('/')[0]!)) return reply(404, { error: `no job ${parts[2]} this token may see` });
    return (await d.cancel(row.key)) ? reply(202, { key: row.key, cancelling: true }) : reply(409, { error: `job ${row.key} has already finished (${row.state})` });
  }
  return reply(404, { error: 'no such endpoint' });
}
