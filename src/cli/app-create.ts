import { parseOptions } from './parse-options';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Octokit } from '@octokit/rest';
import { parseDocument } from 'yaml';
import { escapeHtml as html, StockadeError } from '../common';

export const APP_USAGE = `usage: stockade app create --public-url URL [--name NAME] [--org ORG] [--out /etc/stockade]
                           [--github-url https://github.com] [--api-url https://api.github.com] [--port 0] [--timeout 15m]
  Registers Stockade's GitHub App with GitHub's App manifest flow: a page on 127.0.0.1 posts the manifest
  (exactly the permissions and events Stockade needs) to GitHub; after you confirm there, the code GitHub
  sends back is exchanged for the App's id, key and webhook secret, written to --out (app.pem and
  webhook-secret mode 0600, config.yml's server: keys), and the install link is printed.`;

export const APP_OPTIONS = {
  'public-url': { type: 'string' },
  name: { type: 'string' },
  org: { type: 'string' },
  out: { type: 'string' },
  'github-url': { type: 'string' },
  'api-url': { type: 'string' },
  port: { type: 'string' },
  timeout: { type: 'string' },
} as const;

/**
 * What the App may do, each for a reason (the README lists them): the check runs it reports, the
 * workflows and commits it reads, the runs it looks up and cancels, the variables of `vars`, the
 * just-in-time runners of runner mode, the pull requests whose events start jobs.
 */
export const APP_PERMISSIONS = {
  checks: 'write',
  contents: 'read',
  metadata: 'read',
  pull_requests: 'read',
  actions: 'write',
  actions_variables: 'read',
  administration: 'write',
  organization_actions_variables: 'read',
  organization_self_hosted_runners: 'write',
} as const;

/** The deliveries Stockade acts on (its webhook intake takes these and answers 202 to no other). */
export const APP_EVENTS = ['push', 'pull_request', 'workflow_job', 'check_run', 'check_suite'] as const;

export function appManifest(o: { name: string; publicUrl: string; redirectUrl: string }): Record<string, unknown> {
  return {
    name: o.name,
    url: o.publicUrl,
    hook_attributes: { url: `${o.publicUrl.replace(/\/$/, '')}/webhook`, active: true },
    redirect_url: o.redirectUrl,
    public: false,
    default_permissions: APP_PERMISSIONS,
    default_events: APP_EVENTS,
  };
}


function page(action: string, manifest: Record<string, unknown>): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Create the Stockade GitHub App</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-${SUBMIT_HASH}'; form-action ${new URL(action).origin} 'self'">
</head><body>
<h1>Create the Stockade GitHub App</h1>
<p>This page sends the App's manifest to GitHub: ${html(String((manifest.default_events as string[]).length))} events and these permissions:</p>
<ul>${Object.entries(manifest.default_permissions as Record<string, string>).map(([k, v]) => `<li><code>${html(k)}</code>: ${html(v)}</li>`).join('')}</ul>
<form id="manifest" method="post" action="${html(action)}">
<input type="hidden" name="manifest" value="${html(JSON.stringify(manifest))}">
<button type="submit">Create the App on GitHub</button>
</form>
<script>${SUBMIT}</script>
</body></html>
`;
}

const SUBMIT = "document.getElementById('manifest').submit();";
const SUBMIT_HASH = createHash('sha256').update(SUBMIT).digest('base64');

function writeSecretFile(path: string, content: string): void {
  // Written beside, then renamed: a reader never sees half a key, and the mode is 0600 from the start.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, path);
}

/** `stockade app create`: the manifest flow, then the credentials on disk. Resolves with the exit code. */
export async function appCommand(argv: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'create') throw new StockadeError('USAGE', `app needs a subcommand: create (not '${(sub ?? '').slice(0, 40)}')`, { hint: APP_USAGE });
  const { values } = parseOptions('app create', APP_OPTIONS, rest);
  const publicUrl = values['public-url'];
  if (!publicUrl || !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(publicUrl)) throw new StockadeError('USAGE', '--public-url URL is required: where GitHub will send webhooks (https://ci.example.org)', { hint: APP_USAGE });
  const githubUrl = (values['github-url'] ?? 'https://github.com').replace(/\/$/, '');
  const apiUrl = values['api-url'] ?? env.STOCKADE_GITHUB_API_URL ?? 'https://api.github.com';
  const org = values.org;
  if (org !== undefined && !/^[A-Za-z0-9-]{1,39}$/.test(org)) throw new StockadeError('USAGE', `--org '${org.slice(0, 60)}' is not an organisation name`);
  const name = values.name ?? `Stockade (${hostname()})`.slice(0, 34);
  const outDir = resolve(values.out ?? '/etc/stockade');
  for (const f of ['app.pem', 'webhook-secret']) if (existsSync(join(outDir, f))) throw new StockadeError('USAGE', `${join(outDir, f)} exists: an App's credentials are never overwritten (move it away, or pass --out DIR)`);
  const port = Number(values.port ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new StockadeError('USAGE', `--port '${values.port}' is not a port number`);
  const timeoutMs = values.timeout ? Number(/^(\d+)m$/.exec(values.timeout)?.[1] ?? NaN) * 60_000 : 15 * 60_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new StockadeError('USAGE', `--timeout '${values.timeout}' is not minutes such as 15m`);

  const state = randomBytes(24).toString('hex');
  let server: Server | undefined;
  const code = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new StockadeError('USAGE', `no answer from GitHub within ${timeoutMs / 60_000} min: run stockade app create again`)), timeoutMs);
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const self = `http://127.0.0.1:${(server!.address() as { port: number }).port}`;
      if (req.method === 'GET' && url.pathname === '/') {
        const action = `${githubUrl}${org ? `/organizations/${org}` : ''}/settings/apps/new?state=${state}`;
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY' }).end(page(action, appManifest({ name, publicUrl, redirectUrl: `${self}/callback` })));
        return;
      }
      if (req.method === 'GET' && url.pathname === '/callback') {
        const got = Buffer.from(url.searchParams.get('state') ?? '');
        const c = url.searchParams.get('code') ?? '';
        if (got.length !== state.length || !timingSafeEqual(got, Buffer.from(state)) || !/^[A-Za-z0-9_-]{1,200}$/.test(c)) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end('This is not the answer to the manifest this command sent.\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Stockade</title><p>GitHub created the App. You can close this page; the terminal says what is next.</p>\n');
        clearTimeout(timer);
        done(c);
        return;
      }
      res.writeHead(404).end();
    });
    server.on('error', (e) => fail(new StockadeError('USAGE', `cannot listen on 127.0.0.1:${port}: ${e.message}`)));
    server.listen(port, '127.0.0.1', () => {
      const a = server!.address() as { port: number };
      out.write(`open http://127.0.0.1:${a.port}/ in a browser on this machine (or through an SSH tunnel: ssh -L ${a.port}:127.0.0.1:${a.port} HOST), then confirm on GitHub\n`);
    });
  }).finally(() => server?.close());

  // The code is single-use and expires within an hour; the conversion needs no other credential.
  const octokit = new Octokit({ baseUrl: apiUrl, userAgent: 'stockade' });
  const { data } = await octokit.rest.apps.createFromManifest({ code });
  const app = data as { id: number; slug?: string; html_url: string; pem: string; webhook_secret: string | null; client_id: string };
  if (!app.webhook_secret) throw new StockadeError('ENGINE_FAILED', 'GitHub created the App without a webhook secret: set one on the App\'s page and write it to webhook-secret');
  mkdirSync(outDir, { recursive: true, mode: 0o750 });
  writeSecretFile(join(outDir, 'app.pem'), app.pem);
  writeSecretFile(join(outDir, 'webhook-secret'), `${app.webhook_secret}\n`);
  const configFile = join(outDir, 'config.yml');
  const doc = parseDocument(existsSync(configFile) ? readFileSync(configFile, 'utf8') : '# Stockade server configuration (stockade config check FILE)\n');
  if (!doc.contents) doc.contents = doc.createNode({}) as never;
  doc.setIn(['server', 'app-id'], String(app.id));
  doc.setIn(['server', 'private-key-file'], join(outDir, 'app.pem'));
  doc.setIn(['server', 'webhook-secret-file'], join(outDir, 'webhook-secret'));
  doc.setIn(['server', 'public-url'], publicUrl);
  writeFileSync(configFile, doc.toString(), { mode: 0o600 });
  out.write(`created the App ${app.slug ?? name} (id ${app.id}): ${app.html_url}\n`);
  out.write(`wrote ${join(outDir, 'app.pem')}, ${join(outDir, 'webhook-secret')} (mode 0600) and ${configFile}\n`);
  out.write(`install it on the repositories Stockade should run: ${app.html_url.replace(/\/$/, '')}/installations/new\n`);
  return 0;
}
