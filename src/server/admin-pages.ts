import type { ServerJob, ServerStore } from './plan-delivery';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Quota } from '../store';
import { esc, htmlPage, sendPage } from './job-pages';
import { jobPageUrl } from './log-link';

/**
 * The admin pages (`/ui` on the admin listener), behind the same organisation-scoped tokens as the
 * admin API: the queue, the running jobs (each linked to its live page), the finished ones and the
 * quotas with their usage. A token of one organisation gets 403 for another's page. The token is
 * given once on a login form and kept in an HttpOnly, SameSite=Strict cookie scoped to /ui; no page
 * changes anything (the API does that), so there is nothing to forge a request for.
 */
export interface AdminPagesDeps {
  store: ServerStore;
  /** The token's scope (an owner, or '*' for the operator), from its hash; undefined: no such token. */
  scopeOf(token: string): Promise<string | undefined>;
  publicUrl: string;
  logKey: Buffer;
  /** The operator's ceiling for a scope (the config's quotas). */
  ceiling?(scope: string): Quota;
}

const COOKIE = 'stockade_admin';
const OWNER = /^[A-Za-z0-9_.-]{1,100}$/;

function tokenOf(req: IncomingMessage): string | undefined {
  const bearer = /^Bearer (\S{20,200})$/.exec(String(req.headers.authorization ?? ''))?.[1];
  if (bearer) return bearer;
  for (const part of String(req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

async function readForm(req: IncomingMessage, max = 4096): Promise<URLSearchParams | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) return undefined;
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const LOGIN = (message = '') => `<h1>Stockade</h1>${message ? `<p class="failure">${esc(message)}</p>` : ''}
<form method="post" action="/ui/login"><label>Admin token <input type="password" name="token" autocomplete="off" required minlength="20" maxlength="200"></label> <button type="submit">Sign in</button></form>
<p class="muted">An organisation's token (stockade admin-token create --org OWNER) shows that organisation; the operator's (--org '*') every one.</p>`;

const duration = (ms: number) => (ms < 60_000 ? `${Math.round(ms / 1000)} s` : ms < 3_600_000 ? `${Math.round(ms / 60_000)} min` : `${(ms / 3_600_000).toFixed(1)} h`);

function conclusionOf(row: ServerJob): string {
  try {
    return (row.result)?.conclusion ?? row.state;
  } catch {
    return row.state;
  }
}

function jobName(row: ServerJob): string {
  try {
    return (row.spec).jobName ?? row.key;
  } catch {
    return row.key;
  }
}

async function orgPage(d: AdminPagesDeps, owner: string): Promise<string> {
  const now = Date.now();
  const link = (r: ServerJob) => `<a href="${esc(jobPageUrl(d.publicUrl, d.logKey, r.key))}">${esc(jobName(r))}</a>`;
  const [waiting, running, finished] = await Promise.all([d.store.byOwner(owner, ['accepted', 'queued'], 500), d.store.byOwner(owner, ['running'], 500), d.store.byOwner(owner, ['completed', 'failed', 'cancelled'], 50)]);
  const table = (head: string[], rows: string[][]) => (rows.length ? `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>` : '<p class="muted">none</p>');
  const quotas = await d.store.quotas.list(owner);
  const scopes = [`org:${owner}`, ...quotas.map((q) => q.scope).filter((s) => s !== `org:${owner}`)];
  const quotaRows = await Promise.all(scopes.map(async (scope) => {
    const q = quotas.find((x) => x.scope === scope)?.quota ?? {};
    const u = await d.store.quotas.usage(scope);
    const ceiling = d.ceiling?.(scope) ?? {};
    const cell = (k: keyof Quota) => esc(q[k] ?? ceiling[k] ?? '—');
    return [esc(scope), cell('concurrency'), cell('minutesPerDay'), cell('minutesPerMonth'), `${(u.dayMs / 60_000).toFixed(1)} min`, `${(u.monthMs / 60_000).toFixed(1)} min`];
  }));
  return `<h1>Stockade: ${esc(owner)}</h1>
<h2>Queue</h2>${table(['job', 'repository', 'state', 'waiting'], waiting.map((r) => [link(r), esc(r.repository), esc(r.state), duration(now - r.createdAt)]))}
<h2>Running</h2><div id="running">${table(['job', 'repository', 'running for'], running.map((r) => [link(r), esc(r.repository), duration(now - (r.startedAt ?? r.createdAt))]))}</div>
<h2>Finished</h2><div id="finished">${table(['job', 'repository', 'result', 'finished'], finished.map((r) => [link(r), esc(r.repository), `<span class="${esc(conclusionOf(r))}">${esc(conclusionOf(r))}</span>`, esc(new Date(r.updatedAt).toISOString().replace('T', ' ').slice(0, 19))]))}</div>
<h2>Quotas and usage</h2><div id="quotas">${table(['scope', 'concurrency', 'minutes per day', 'minutes per month', 'used today', 'used this month'], quotaRows)}</div>
<form method="post" action="/ui/logout"><button type="submit">Sign out</button></form>`;
}

/** Handles `/ui…`; false for any other path. */
export async function adminPages(d: AdminPagesDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  if (url.pathname !== '/ui' && !url.pathname.startsWith('/ui/')) return false;
  const title = 'Stockade';
  if (url.pathname === '/ui/login' && req.method === 'POST') {
    const form = await readForm(req);
    const token = form?.get('token') ?? '';
    const scope = /^\S{20,200}$/.test(token) ? await d.scopeOf(token) : undefined;
    if (!scope) return sendPage(res, 401, htmlPage(title, LOGIN('That is not a valid admin token.'))), true;
    res.writeHead(303, { location: scope === '*' ? '/ui/orgs' : `/ui/orgs/${encodeURIComponent(scope)}`, 'set-cookie': `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=28800`, 'cache-control': 'no-store' }).end();
    return true;
  }
  if (url.pathname === '/ui/logout' && req.method === 'POST') {
    res.writeHead(303, { location: '/ui', 'set-cookie': `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0` }).end();
    return true;
  }
  if (req.method !== 'GET') return res.writeHead(405).end(), true;
  const token = tokenOf(req);
  const scope = token ? await d.scopeOf(token) : undefined;
  if (!scope) return sendPage(res, url.pathname === '/ui' ? 200 : 401, htmlPage(title, LOGIN(url.pathname === '/ui' ? '' : 'Sign in first.'))), true;
  if (url.pathname === '/ui') return res.writeHead(303, { location: scope === '*' ? '/ui/orgs' : `/ui/orgs/${encodeURIComponent(scope)}` }).end(), true;
  if (url.pathname === '/ui/orgs') {
    if (scope !== '*') return sendPage(res, 403, htmlPage(title, `<h1>Not allowed</h1><p>This token may see ${esc(scope)} only.</p>`)), true;
    const rows = (await Promise.all([d.store.inState('running', 10_000), d.store.inState('queued', 10_000), d.store.inState('completed', 1000)])).flat();
    const owners = [...new Set(rows.map((r) => r.repository.split('/')[0]!.toLowerCase()))].sort();
    const now = Date.now();
    const hosts = await d.store.leases.hosts();
    const fleet = hosts.length
      ? `<table><thead><tr><th>host</th><th>capacity</th><th>running</th><th>state</th><th>last heartbeat</th></tr></thead><tbody>${hosts.map((h) => `<tr><td>${esc(h.id)}</td><td>${h.capacity}</td><td>${h.running}</td><td>${h.draining ? 'draining' : 'serving'}</td><td>${duration(now - h.heartbeatAt)} ago</td></tr>`).join('')}</tbody></table>`
      : '<p class="muted">none</p>';
    return sendPage(res, 200, htmlPage(title, `<h1>Stockade: organisations</h1><ul>${owners.map((o) => `<li><a href="/ui/orgs/${esc(encodeURIComponent(o))}">${esc(o)}</a></li>`).join('')}</ul><h2>Hosts</h2><div id="hosts">${fleet}</div>`)), true;
  }
  let owner: string;
  try {
    owner = decodeURIComponent(url.pathname.slice('/ui/orgs/'.length));
  } catch {
    return res.writeHead(400).end(), true;
  }
  if (!url.pathname.startsWith('/ui/orgs/') || !OWNER.test(owner)) return sendPage(res, 404, htmlPage(title, '<h1>Not found</h1>')), true;
  // Owner names are case-insensitive on GitHub and match exactly: acme never sees acme-rival.
  if (scope !== '*' && scope.toLowerCase() !== owner.toLowerCase()) return sendPage(res, 403, htmlPage(title, `<h1>Not allowed</h1><p>This token may not see ${esc(owner)}.</p>`)), true;
  sendPage(res, 200, htmlPage(`Stockade: ${owner}`, await orgPage(d, owner), { refresh: 10 }));
  return true;
}
