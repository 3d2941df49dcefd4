import { escapeHtml } from '../common';
import type { ServerJob, ServerStore } from './plan-delivery';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JobReport } from '../github';
import { checkLogSignature } from './log-link';
import type { LiveLogs } from './live-logs';

/**
 * The job page the check run's details link opens (`/jobs/KEY?sig=…`, the signature covers that one
 * job): state, the step table, blocked network attempts and the masked log, live while the job runs
 * (server-sent events from `/jobs/KEY/events`). Everything shown is escaped; the page runs only its
 * own script (a hash in the Content-Security-Policy) and talks only to this server.
 */

export const esc = escapeHtml;
const hash = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

export const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1f2328;max-width:75rem}
h1{font-size:1.3rem;margin:0 0 .3rem}table{border-collapse:collapse;margin:.8rem 0}td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}
th{background:#f6f8fa}pre{background:#0d1117;color:#e6edf3;padding:.8rem;overflow:auto;max-height:70vh;white-space:pre-wrap}
.success{color:#1a7f37}.failure,.timed_out,.cancelled{color:#cf222e}.muted{color:#656d76}code{background:#f6f8fa;padding:0 .2rem}`;

const LIVE = `(()=>{const log=document.getElementById('log'),st=document.getElementById('state');
const src=new EventSource(location.pathname+'/events'+location.search);
src.onmessage=(e)=>{const end=log.scrollTop+log.clientHeight>=log.scrollHeight-20;log.append(e.data+'\\n');if(end)log.scrollTop=log.scrollHeight;};
src.addEventListener('end',()=>{src.close();st.textContent='finished';setTimeout(()=>location.reload(),300);});})();`;

export function htmlPage(title: string, body: string, o: { script?: string; refresh?: number } = {}): { html: string; csp: string } {
  const csp = `default-src 'none'; style-src ${hash(STYLE)}; ${o.script ? `script-src ${hash(o.script)}; connect-src 'self';` : ''} form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">${o.refresh ? `<meta http-equiv="refresh" content="${o.refresh}">` : ''}
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body>${body}${o.script ? `<script>${o.script}</script>` : ''}</body></html>
`;
  return { html, csp };
}

export function sendPage(res: ServerResponse, status: number, page: { html: string; csp: string }, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': page.csp, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store', ...headers }).end(page.html);
}

const mib = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;

/** The step table and the network section of a finished job's report. */
export function reportHtml(r: JobReport): string {
  const rows = r.steps.map((s) => `<tr><td>${esc(s.name)}</td><td class="${esc(s.conclusion)}">${esc(s.conclusion)}</td><td>${(s.durationMs / 1000).toFixed(2)} s</td><td>${mib(s.peakMemoryBytes)}</td><td>${esc(s.exitReason)}</td></tr>`).join('');
  const parts = [`<p>Result: <strong class="${esc(r.conclusion)}" id="conclusion">${esc(r.conclusion)}</strong>${r.error ? `: ${esc(r.error)}` : ''}</p>`];
  if (r.steps.length) parts.push(`<table id="steps"><thead><tr><th>step</th><th>conclusion</th><th>duration</th><th>peak memory</th><th>exit</th></tr></thead><tbody>${rows}</tbody></table>`);
  const n = r.network;
  if (n) {
    const blocked = n.dnsRefused + n.connectionsRefused;
    parts.push(`<h2>Network</h2><p id="network">${blocked} blocked network attempt${blocked === 1 ? '' : 's'}; ${n.connectionsAllowed} connections allowed, ${mib(n.bytesOut)} sent.</p>`);
    if (n.refusals.length) parts.push(`<ul id="blocked">${n.refusals.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>`);
    if (n.audited) parts.push(`<p>Egress audit: ${n.audited.length} names reached; the allowlist that enforces the same:</p><pre>${esc(`egress:\n  allow:\n${n.audited.map((a) => `    - ${a}`).join('\n')}`)}</pre>`);
  }
  return parts.join('\n');
}

function spec(row: ServerJob): { jobName: string } {
  try {
    return row.spec;
  } catch {
    return { jobName: row.key };
  }
}

/** `GET /jobs/KEY?sig=…` and `GET /jobs/KEY/events?sig=…`. Answers 404 for a bad key or signature alike. */
export async function jobPageRoute(d: { store: ServerStore; logKey: Buffer; live: LiveLogs }, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  let rest: string;
  try {
    rest = decodeURIComponent(url.pathname.slice('/jobs/'.length));
  } catch {
    return void res.writeHead(404).end('not found\n');
  }
  const events = rest.endsWith('/events');
  const key = events ? rest.slice(0, -'/events'.length) : rest;
  // The signature first: a bad one costs no database read.
  if (!checkLogSignature(d.logKey, key, url.searchParams.get('sig'))) return void res.writeHead(404).end('not found\n');
  const row = await d.store.get(key);
  if (!row || !checkLogSignature(d.logKey, key, url.searchParams.get('sig'))) return void res.writeHead(404).end('not found\n');
  if (events) return streamEvents(d.live, key, req, res);
  const name = spec(row).jobName;
  const head = `<h1>stockade: ${esc(name)}</h1><p class="muted">${esc(row.repository)} · commit <code>${esc(row.headSha.slice(0, 12))}</code> · <span id="state">${esc(row.state)}</span></p>`;
  const terminal = row.state === 'completed' || row.state === 'failed' || row.state === 'cancelled';
  if (terminal) {
    let report: JobReport | undefined;
    try {
      report = row.result ?? undefined;
    } catch {
      report = undefined;
    }
    const body = `${head}${report ? reportHtml(report) : ''}<h2>Log</h2><pre id="log">${esc(row.log ?? '(no log kept: past the log retention)')}</pre>`;
    return sendPage(res, 200, htmlPage(`stockade: ${name}`, body));
  }
  if (!d.live.isLive(key)) return sendPage(res, 200, htmlPage(`stockade: ${name}`, `${head}<p>Waiting for a slot; this page reloads.</p><pre id="log"></pre>`, { refresh: 3 }));
  sendPage(res, 200, htmlPage(`stockade: ${name}`, `${head}<h2>Log</h2><pre id="log"></pre>`, { script: LIVE }));
}

/** Server-sent events: `id: N` per line (a reconnecting browser sends Last-Event-ID and gets the rest), `event: end` when the job ends. */
function streamEvents(live: LiveLogs, key: string, req: IncomingMessage, res: ServerResponse): void {
  const after = Number(req.headers['last-event-id'] ?? -1);
  const from = Number.isInteger(after) && after >= -1 ? after + 1 : 0;
  // Not running (finished, or not started): 204 tells EventSource to stop.
  if (!live.isLive(key)) return void res.writeHead(204).end();
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', 'x-content-type-options': 'nosniff' });
  res.write('retry: 2000\n\n');
  let n = 0;
  const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  beat.unref();
  const unwatch = live.watch(key, {
    line: (text) => {
      if (n++ < from) return;
      res.write(`id: ${n - 1}\ndata: ${text.replace(/[\r\n]/g, ' ')}\n\n`);
    },
    end: () => {
      clearInterval(beat);
      res.end('event: end\ndata: end\n\n');
    },
  });
  if (!unwatch) {
    // Too many watchers: said as a comment, and the stream ends (the browser retries later).
    clearInterval(beat);
    return void res.end(': too many watchers\n\n');
  }
  req.on('close', () => {
    clearInterval(beat);
    unwatch();
  });
}
