import { statfs } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../common';
import type { Sandbox } from '../sandbox';
import { jobPageRoute } from './job-pages';
import type { LiveLogs } from './live-logs';
import { checkLogSignature } from './log-link';
import type { ServerStore } from './plan-delivery';

export interface PublicRouteDeps {
  store: ServerStore;
  logger: Logger;
  logKey: Buffer;
  live: LiveLogs;
  intake: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

/** The webhook listener's routes: POST /webhook, GET /jobs/KEY?sig=… (the job's page), GET /logs/KEY?sig=… (its log as text), GET /healthz (counts only, no names). */
export function publicRoute(d: PublicRouteDeps, req: IncomingMessage, res: ServerResponse): void {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://x');
  } catch {
    return void res.writeHead(400).end('malformed request target\n');
  }
  if (req.method === 'POST' && url.pathname === '/webhook') {
    return void d.intake(req, res).catch((e: unknown) => {
      d.logger.error({ err: e }, 'intake failed');
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  }
  const failed = (e: unknown) => {
    d.logger.warn({ err: e }, 'request failed');
    if (!res.headersSent) res.writeHead(503).end('the database is unreachable; try again\n');
    else res.destroy();
  };
  if (req.method === 'GET' && url.pathname.startsWith('/logs/')) return void serveLog(d, url, res).catch(failed);
  if (req.method === 'GET' && url.pathname.startsWith('/jobs/')) return void jobPageRoute({ store: d.store, logKey: d.logKey, live: d.live }, req, res, url).catch(failed);
  if (req.method === 'GET' && url.pathname === '/healthz') return void d.store.counts().then((c) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(c)), failed);
  res.writeHead(404).end();
}

async function serveLog(d: PublicRouteDeps, url: URL, res: ServerResponse): Promise<void> {
  let key: string;
  try {
    key = decodeURIComponent(url.pathname.slice('/logs/'.length));
  } catch {
    return void res.writeHead(404).end('not found\n');
  }
  if (!checkLogSignature(d.logKey, key, url.searchParams.get('sig'))) return void res.writeHead(404).end('not found\n');
  const row = await d.store.get(key);
  if (!row) return void res.writeHead(404).end('not found\n');
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end(row.log ?? `(job ${row.state}; no log yet)\n`);
}

/** /readyz: Podman answers, the database takes a write, free disk in the state directory above `minFreeBytes`. */
export async function readiness(d: { sandbox: Sandbox; store: ServerStore; stateDir: string; minFreeBytes: number }): Promise<{ ok: boolean; checks: Record<string, string> }> {
  const checks: Record<string, string> = {};
  let ok = true;
  try {
    await d.sandbox.deps.engine.ping();
    checks.podman = 'ok';
  } catch (e) {
    ok = false;
    checks.podman = (e as Error).message;
  }
  try {
    await d.store.quotas.addUsage(['readyz'], 0);
    checks.database = 'ok';
  } catch (e) {
    ok = false;
    checks.database = (e as Error).message;
  }
  try {
    const s = await statfs(d.stateDir);
    const free = s.bavail * s.bsize;
    const min = d.minFreeBytes;
    checks.disk = free >= min ? `ok (${Math.round(free / 1024 ** 2)} MiB free)` : `${Math.round(free / 1024 ** 2)} MiB free, below ${Math.round(min / 1024 ** 2)} MiB`;
    if (free < min) ok = false;
  } catch (e) {
    ok = false;
    checks.disk = (e as Error).message;
  }
  return { ok, checks };
}
