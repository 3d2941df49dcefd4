/**
 * A fake GitHub API on loopback. Every request it receives is checked against
 * GitHub's official OpenAPI description (@octokit/openapi): the path and method
 * must be an operation, path and query parameters must be declared and typed,
 * required ones present, and the JSON body must match the operation's schema
 * (plus: a check run with status completed needs a conclusion). Any mismatch is
 * recorded in `violations` and answered 422; tests assert there are none.
 */
import { extract } from 'tar-stream';
import { gunzipSync } from 'node:zlib';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createVerify, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import Ajv, { type ValidateFunction } from 'ajv';

interface Param {
  name: string;
  in: string;
  required?: boolean;
  schema?: { type?: string; enum?: unknown[] };
}
interface Operation {
  operationId: string;
  parameters?: Param[];
  requestBody?: { required?: boolean; content: Record<string, { schema: unknown }> };
}
interface Route {
  template: string;
  method: string;
  re: RegExp;
  names: string[];
  op: Operation;
  literal: number;
}

let spec: { paths: Record<string, Record<string, Operation>> } | undefined;
function loadSpec() {
  if (!spec) {
    const require = createRequire(__filename);
    spec = JSON.parse(readFileSync(require.resolve('@octokit/openapi/generated/api.github.com.deref.json'), 'utf8')) as typeof spec;
  }
  return spec!;
}

function buildRoutes(): Route[] {
  const routes: Route[] = [];
  for (const [template, ops] of Object.entries(loadSpec().paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      const names: string[] = [];
      const re = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{([^}]+)\\?\}/g, (_m, n: string) => {
        names.push(n);
        return n === 'path' ? '(.+)' : '([^/]+)';
      });
      routes.push({ template, method: method.toUpperCase(), re: new RegExp(`^${re.replace(/\{([^}]+)\}/g, '([^/]+)')}$`), names, op, literal: template.replace(/\{[^}]+\}/g, '').length });
    }
  }
  return routes.sort((a, b) => b.literal - a.literal);
}

export interface RecordedRequest {
  method: string;
  path: string;
  operationId: string;
  params: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
  auth: string;
}

export interface CheckRun {
  id: number;
  owner: string;
  repo: string;
  fields: Record<string, unknown>;
  history: Array<Record<string, unknown>>;
  /** When each request of `history` arrived (ms since the epoch). */
  times: number[];
}

export interface FakeRepo {
  workflows: Record<string, string>;
  tarball: Buffer;
  /** Archives by commit: a ref found here is served its own archive (and tree), others `tarball`. */
  tarballs?: Record<string, Buffer>;
  runs: Record<number, { path: string; event: string; head_sha: string; fork?: boolean }>;
  /** Branch and tag names → commit (repos/get-commit resolves them). */
  refs?: Record<string, string>;
  /** Anonymous GETs are answered, as GitHub answers them for a public repository. */
  public?: boolean;
}

type Handler = (r: RecordedRequest, res: ServerResponse) => void;

type TreeEntry = { type: 'file' | 'dir' | 'symlink'; content?: Buffer; target?: string };
const trees = new WeakMap<Buffer, Promise<Map<string, TreeEntry>>>();

/** The tree of a repository archive (its top-level directory stripped), as the contents API sees the repository. */
function treeOf(tarball: Buffer): Promise<Map<string, TreeEntry>> {
  let t = trees.get(tarball);
  if (!t) {
    t = new Promise((resolve, reject) => {
      const tree = new Map<string, TreeEntry>();
      const ex = extract();
      ex.on('entry', (h, body, next) => {
        const rel = h.name.split('/').slice(1).join('/').replace(/\/+$/, '');
        const chunks: Buffer[] = [];
        body.on('data', (c: unknown) => void chunks.push(c as Buffer));
        body.on('end', () => {
          if (rel) {
            if (h.type === 'directory') tree.set(rel, { type: 'dir' });
            else if (h.type === 'symlink') tree.set(rel, { type: 'symlink', target: h.linkname ?? '' });
            else tree.set(rel, { type: 'file', content: Buffer.concat(chunks) });
            for (let p = rel; p.includes('/'); ) {
              p = p.slice(0, p.lastIndexOf('/'));
              if (!tree.has(p)) tree.set(p, { type: 'dir' });
            }
          }
          next();
        });
      });
      ex.on('finish', () => resolve(tree));
      ex.on('error', reject);
      ex.end(gunzipSync(tarball));
    });
    trees.set(tarball, t);
  }
  return t;
}

/** A runner GitHub knows (JIT runners are minted through generate-jitconfig). */
export interface FakeRunnerEntry {
  id: number;
  name: string;
  owner: string;
  repo: string;
  labels: string[];
  busy: boolean;
  deleted: boolean;
  /** The runner process, as it told the fake when it asked for a job. */
  pid?: number;
  jobs: number[];
  /** When GitHub minted it, and when its process first asked for a job (ms since the epoch). */
  mintedAt: number;
  firstPollAt?: number;
}

/** A job GitHub queued for a repository's runners: the `run:` steps of its one job, as scripts. */
export interface FakeQueuedJob {
  id: number;
  steps: string[];
  conclusion?: string;
  runner?: string;
}

export class FakeGitHub {
  readonly violations: string[] = [];
  readonly runners = new Map<number, FakeRunnerEntry>();
  /** Jobs waiting for a runner, by `owner/repo`; a JIT runner of that repository takes the next. */
  readonly queuedJobs = new Map<string, FakeQueuedJob[]>();
  readonly finishedJobs: FakeQueuedJob[] = [];
  /** The most runners of one repository busy at the same moment. */
  maxBusy = new Map<string, number>();
  readonly requests: RecordedRequest[] = [];
  readonly checkRuns = new Map<number, CheckRun>();
  readonly repos = new Map<string, FakeRepo>();
  /** Repositories whose check-run writes are refused with 403 (archived, App uninstalled). */
  readonly refusedRepos = new Set<string>();
  /** Repositories whose check-run updates (progress and the final report) are refused with 403. */
  readonly refusedReports = new Set<string>();
  /** Deliveries GitHub "made" (for /app/hook/deliveries), newest first. */
  readonly deliveries: Array<{ id: number; guid: string; event: string; action: string | null; payload: unknown }> = [];
  private readonly routes = buildRoutes();
  private readonly ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly tokens = new Set<string>();
  /** Scoped installation tokens (repositories and permissions asked for), as GitHub enforces them. */
  readonly scopedTokens = new Map<string, { repositories?: string[]; permissions?: Record<string, string>; revoked: boolean }>();
  /** What the App's installation was granted (apps/get-installation); a token asking for more is refused with 422, as GitHub does. */
  installationPermissions: Record<string, string> = { metadata: 'read', contents: 'read', checks: 'write', actions: 'read', issues: 'write', pull_requests: 'write', statuses: 'write' };
  /** Actions variables per `owner/repo`: the repository's own and the organisation's it sees. */
  readonly variables = new Map<string, { repo: Array<{ name: string; value: string }>; org: Array<{ name: string; value: string }> }>();
  /** Issue comments made through the API, per `owner/repo#number`. */
  readonly comments: Array<{ repo: string; issue: number; body: string; token: string }> = [];
  /** Manifests posted to GitHub's "new App" page, and the single-use codes it redirected back with. */
  readonly manifests: Array<{ org?: string; state: string; manifest: Record<string, unknown> }> = [];
  private readonly manifestCodes = new Map<string, { manifest: Record<string, unknown>; org?: string }>();
  private server?: Server;
  private nextId = 1000;
  url = '';

  constructor(private readonly appPublicKey: string) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const a = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${a.port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private bodyValidator(op: Operation): ValidateFunction | undefined {
    const schema = op.requestBody?.content['application/json']?.schema;
    if (!schema) return undefined;
    let v = this.validators.get(op.operationId);
    if (!v) {
      v = this.ajv.compile(schema as object);
      this.validators.set(op.operationId, v);
    }
    return v;
  }

  private violation(res: ServerResponse, message: string): void {
    this.violations.push(message);
    res.writeHead(422, { 'content-type': 'application/json' }).end(JSON.stringify({ message }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    // The runner's own protocol with GitHub (not REST, not documented) is played by these two calls.
    if (url.pathname.startsWith('/_fake/')) return this.runnerProtocol(method, url.pathname, Buffer.concat(chunks).toString('utf8'), res);
    // github.com's web page of the App manifest flow (not REST): the browser posts the manifest here.
    if (/^(\/organizations\/[^/]+)?\/settings\/apps\/new$/.test(url.pathname)) return this.manifestPage(method, url, Buffer.concat(chunks).toString('utf8'), req.headers['content-type'], res);
    const route = this.routes.find((r) => r.method === method && r.re.test(url.pathname));
    if (!route) return this.violation(res, `${method} ${url.pathname}: not an operation of GitHub's REST API`);
    const m = route.re.exec(url.pathname)!;
    const params: Record<string, string> = {};
    route.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)));
    const query = Object.fromEntries(url.searchParams.entries());
    const declared = route.op.parameters ?? [];
    for (const p of declared) {
      const v = p.in === 'path' ? params[p.name] : p.in === 'query' ? query[p.name] : undefined;
      if (v === undefined) {
        if (p.required && (p.in === 'path' || p.in === 'query')) return this.violation(res, `${route.op.operationId}: missing required ${p.in} parameter ${p.name}`);
        continue;
      }
      const t = p.schema?.type;
      if (t === 'integer' && !/^-?\d+$/.test(v)) return this.violation(res, `${route.op.operationId}: ${p.name}=${v} is not an integer`);
      if (t === 'boolean' && v !== 'true' && v !== 'false') return this.violation(res, `${route.op.operationId}: ${p.name}=${v} is not a boolean`);
      if (p.schema?.enum && !p.schema.enum.includes(v)) return this.violation(res, `${route.op.operationId}: ${p.name}=${v} is not one of ${p.schema.enum.join(', ')}`);
    }
    for (const q of Object.keys(query)) {
      if (!declared.some((p) => p.in === 'query' && p.name === q)) return this.violation(res, `${route.op.operationId}: undeclared query parameter ${q}`);
    }
    let body: unknown;
    const raw = Buffer.concat(chunks).toString('utf8');
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        return this.violation(res, `${route.op.operationId}: body is not JSON`);
      }
    }
    const validate = this.bodyValidator(route.op);
    if (route.op.requestBody?.required && body === undefined) return this.violation(res, `${route.op.operationId}: body is required`);
    if (validate && body !== undefined && !validate(body)) return this.violation(res, `${route.op.operationId}: body does not match the schema: ${this.ajv.errorsText(validate.errors)}`);
    if (route.op.operationId.startsWith('checks/') && body && typeof body === 'object') {
      const b = body as Record<string, unknown>;
      if (b.status === 'completed' && !b.conclusion) return this.violation(res, `${route.op.operationId}: status completed needs a conclusion`);
      const ann = (b.output as { annotations?: unknown[] } | undefined)?.annotations;
      if (ann && ann.length > 50) return this.violation(res, `${route.op.operationId}: more than 50 annotations in one request`);
      for (const k of ['summary', 'text']) {
        const v = (b.output as Record<string, unknown> | undefined)?.[k];
        if (typeof v === 'string' && v.length > 65535) return this.violation(res, `${route.op.operationId}: output.${k} is ${v.length} characters`);
      }
    }
    const auth = String(req.headers.authorization ?? '');
    const rec: RecordedRequest = { method, path: url.pathname, operationId: route.op.operationId, params, query, body, auth };
    this.requests.push(rec);
    const isAppCall = route.template.startsWith('/app') && route.op.operationId !== 'apps/create-from-manifest';
    // The manifest conversion takes no credential: the single-use code is the credential.
    if (route.op.operationId === 'apps/create-from-manifest') return this.handlers[route.op.operationId]!(rec, res);
    const bearer = auth.replace(/^(token|bearer) /i, '');
    const anonymousRead = !auth && method === 'GET' && !!this.repos.get(`${params.owner}/${params.repo}`)?.public;
    if (!anonymousRead && (isAppCall ? !this.checkJwt(auth) : !this.tokens.has(bearer))) {
      return void res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Bad credentials' }));
    }
    const scoped = isAppCall ? undefined : this.scopedTokens.get(bearer);
    if (scoped) {
      // What GitHub answers a token outside its repositories (404) or without the permission (403).
      if (params.repo && scoped.repositories && !scoped.repositories.includes(params.repo)) return this.json(res, 404, { message: 'Not Found' });
      const need = permissionFor(route.op.operationId, method);
      const have = need ? scoped.permissions?.[need.name] : 'read';
      if (need && !(have === 'write' || (have === 'read' && need.level === 'read'))) return this.json(res, 403, { message: 'Resource not accessible by integration', documentation_url: 'https://docs.github.com/rest' });
    }
    // A repository GitHub refuses writes for (archived, or the App uninstalled from it): 403, as GitHub
    // answers; reading its check runs still works, as on an archived repository.
    const refused = this.refusedRepos.has(`${params.owner}/${params.repo}`) && route.op.operationId.startsWith('checks/') && method !== 'GET';
    // Or only its reports (the check run was made, then the repository was archived).
    const refusedReport = this.refusedReports.has(`${params.owner}/${params.repo}`) && route.op.operationId === 'checks/update';
    if (refused || refusedReport) {
      return void res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Repository was archived so is read-only.', documentation_url: 'https://docs.github.com/rest' }));
    }
    const handler = this.handlers[route.op.operationId];
    if (!handler) return this.violation(res, `${route.op.operationId}: the fake does not implement it (the runner should not call it)`);
    handler(rec, res);
  }

  /**
   * GitHub's "Register new GitHub App" page as the manifest flow uses it: a form POST with the field
   * `manifest` (JSON) and `?state=`; GitHub checks the manifest, the user confirms, and GitHub
   * redirects to `redirect_url?code=…&state=…` (the code is single-use, exchanged through
   * apps/create-from-manifest). The fake confirms at once.
   */
  private manifestPage(method: string, url: URL, raw: string, type: string | undefined, res: ServerResponse): void {
    if (method !== 'POST' || !String(type).startsWith('application/x-www-form-urlencoded')) return this.violation(res, `${method} ${url.pathname}: the manifest flow posts a form`);
    let manifest: Record<string, unknown>;
    try {
      manifest = JSON.parse(new URLSearchParams(raw).get('manifest') ?? '') as Record<string, unknown>;
    } catch {
      return this.violation(res, 'manifest flow: the manifest field is not JSON');
    }
    const hook = manifest.hook_attributes as { url?: unknown } | undefined;
    if (typeof manifest.url !== 'string' || typeof hook?.url !== 'string' || typeof manifest.redirect_url !== 'string') return this.violation(res, 'manifest flow: url, hook_attributes.url and redirect_url are required');
    const state = url.searchParams.get('state') ?? '';
    const org = /^\/organizations\/([^/]+)\//.exec(url.pathname)?.[1];
    this.manifests.push({ org, state, manifest });
    const code = `code-${randomUUID()}`;
    this.manifestCodes.set(code, { manifest, org });
    const back = new URL(manifest.redirect_url);
    back.searchParams.set('code', code);
    back.searchParams.set('state', state);
    res.writeHead(302, { location: back.toString() }).end();
  }

  /**
   * Stands in for the runner's session with GitHub's broker: `POST /_fake/runners/{id}/next` {pid}
   * assigns the runner the next job queued for its repository (204: none yet; 410: the runner was
   * deleted), `POST /_fake/runners/{id}/done` {conclusion} ends it; an ephemeral runner is then removed.
   */
  private runnerProtocol(method: string, path: string, raw: string, res: ServerResponse): void {
    const m = /^\/_fake\/runners\/(\d+)\/(next|done)$/.exec(path);
    const runner = m ? this.runners.get(Number(m[1])) : undefined;
    if (method !== 'POST' || !m || !runner) return this.json(res, 404, { message: 'Not Found' });
    const body = (raw ? JSON.parse(raw) : {}) as { pid?: number; conclusion?: string };
    if (runner.deleted) return this.json(res, 410, { message: 'runner deleted' });
    const full = `${runner.owner}/${runner.repo}`;
    if (m[2] === 'next') {
      runner.pid = body.pid;
      runner.firstPollAt ??= Date.now();
      if (runner.busy) return this.json(res, 409, { message: 'already busy' });
      const job = this.queuedJobs.get(full)?.shift();
      if (!job) return void res.writeHead(204).end();
      runner.busy = true;
      runner.jobs.push(job.id);
      job.runner = runner.name;
      const busy = [...this.runners.values()].filter((r) => r.busy && `${r.owner}/${r.repo}` === full).length;
      this.maxBusy.set(full, Math.max(this.maxBusy.get(full) ?? 0, busy));
      return this.json(res, 200, job);
    }
    runner.busy = false;
    runner.deleted = true;
    const job = runner.jobs.length ? { id: runner.jobs[runner.jobs.length - 1]!, steps: [], conclusion: body.conclusion, runner: runner.name } : undefined;
    if (job) this.finishedJobs.push(job);
    this.json(res, 200, {});
  }

  /** The App JWT must be RS256-signed by the App's key and current. */
  private checkJwt(auth: string): boolean {
    const m = /^(?:bearer|Bearer) ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(auth);
    if (!m) return false;
    const verify = createVerify('RSA-SHA256');
    verify.update(`${m[1]}.${m[2]}`);
    if (!verify.verify(this.appPublicKey, Buffer.from(m[3]!, 'base64url'))) return false;
    const claims = JSON.parse(Buffer.from(m[2]!, 'base64url').toString()) as { exp: number; iat: number; iss: unknown };
    const now = Date.now() / 1000;
    return claims.exp > now && claims.iat < now + 60 && claims.exp - claims.iat <= 660;
  }

  private runnerView(r: FakeRunnerEntry): Record<string, unknown> {
    return { id: r.id, name: r.name, os: 'linux', status: r.pid ? 'online' : 'offline', busy: r.busy, labels: r.labels.map((name, i) => ({ id: i + 1, name, type: 'custom' })) };
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
  }

  private repo(r: RecordedRequest): FakeRepo | undefined {
    return this.repos.get(`${r.params.owner}/${r.params.repo}`);
  }

  private readonly handlers: Record<string, Handler> = {
    'apps/create-installation-access-token': (r, res) => {
      // A real token's length is not fixed; this one is deliberately longer than the classic 40.
      const token = `ghs_${randomBytes(40).toString('hex')}`;
      this.tokens.add(token);
      const b = (r.body ?? {}) as { repositories?: string[]; permissions?: Record<string, string> };
      const beyond = Object.entries(b.permissions ?? {}).filter(([k, v]) => !(this.installationPermissions[k] === 'write' || (this.installationPermissions[k] === 'read' && v === 'read')));
      if (beyond.length) return this.json(res, 422, { message: 'The permissions requested are not granted to this installation.', documentation_url: 'https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app' });
      if (b.repositories || b.permissions) {
        this.scopedTokens.set(token, { repositories: b.repositories, permissions: b.permissions, revoked: false });
        return this.json(res, 201, { token, expires_at: new Date(Date.now() + 3600_000).toISOString(), permissions: b.permissions ?? {}, repository_selection: 'selected' });
      }
      this.json(res, 201, { token, expires_at: new Date(Date.now() + 3600_000).toISOString(), permissions: { checks: 'write', contents: 'read', actions: 'read' }, repository_selection: 'all' });
    },
    'actions/get-workflow-run': (r, res) => {
      const run = this.repo(r)?.runs[Number(r.params.run_id)];
      if (!run) return this.json(res, 404, { message: 'Not Found' });
      const full = `${r.params.owner}/${r.params.repo}`;
      this.json(res, 200, {
        id: Number(r.params.run_id), path: run.path, event: run.event, head_sha: run.head_sha, run_number: 7, run_attempt: 1,
        actor: { login: 'octocat' }, repository: { full_name: full }, head_repository: { full_name: run.fork ? `fork-owner/${r.params.repo}` : full },
      });
    },
    'apps/revoke-installation-access-token': (r, res) => {
      const t = r.auth.replace(/^(token|bearer) /i, '');
      this.tokens.delete(t);
      const s = this.scopedTokens.get(t);
      if (s) s.revoked = true;
      res.writeHead(204).end();
    },
    'actions/list-repo-variables': (r, res) => {
      const v = this.variables.get(`${r.params.owner}/${r.params.repo}`)?.repo ?? [];
      this.json(res, 200, { total_count: v.length, variables: v.map((x) => ({ ...x, created_at: '2024-01-01T00:00:00Z', updated_at: '2024-01-01T00:00:00Z' })) });
    },
    'actions/list-repo-organization-variables': (r, res) => {
      const v = this.variables.get(`${r.params.owner}/${r.params.repo}`)?.org ?? [];
      this.json(res, 200, { total_count: v.length, variables: v.map((x) => ({ ...x, created_at: '2024-01-01T00:00:00Z', updated_at: '2024-01-01T00:00:00Z', visibility: 'all' })) });
    },
    'apps/create-from-manifest': (r, res) => {
      const found = this.manifestCodes.get(r.params.code!);
      if (!found) return this.json(res, 404, { message: 'Not Found' });
      this.manifestCodes.delete(r.params.code!);
      const m = found.manifest;
      const id = this.nextId++;
      const slug = String(m.name ?? 'app').toLowerCase().replace(/[^a-z0-9]+/g, '-');
      const now = new Date().toISOString();
      this.json(res, 201, {
        id, slug, node_id: `A_${id}`, name: m.name, description: m.description ?? null, external_url: m.url, html_url: `https://github.com/apps/${slug}`, created_at: now, updated_at: now,
        owner: { login: found.org ?? 'octocat', id: 1, node_id: 'U_1', type: found.org ? 'Organization' : 'User' },
        permissions: m.default_permissions ?? {}, events: m.default_events ?? [],
        client_id: `Iv1.${id}`, client_secret: `secret-${randomUUID()}`, webhook_secret: `whsec-${randomUUID()}`,
        pem: generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey,
      });
    },
    'apps/get-installation': (r, res) => this.json(res, 200, { id: Number(r.params.installation_id), account: { login: 'octo-org' }, app_id: 1, target_type: 'Organization', permissions: this.installationPermissions, events: [], repository_selection: 'all' }),
    'repos/get-commit': (r, res) => {
      const repo = this.repo(r);
      const ref = r.params.ref ?? '';
      const sha = /^[0-9a-f]{40}$/.test(ref) ? ref : repo?.refs?.[ref];
      if (!repo || !sha) return this.json(res, 422, { message: `No commit found for SHA: ${ref}`, documentation_url: 'https://docs.github.com/rest/commits/commits#get-a-commit' });
      this.json(res, 200, { sha, node_id: 'C_x', url: '', html_url: '', commit: { message: 'x', tree: { sha: sha, url: '' } }, parents: [], files: [] });
    },
    'repos/get': (r, res) => this.json(res, 200, { id: 1, name: r.params.repo, full_name: `${r.params.owner}/${r.params.repo}`, private: false, default_branch: 'main', owner: { login: r.params.owner } }),
    'issues/create-comment': (r, res) => {
      const body = String((r.body as { body?: unknown }).body ?? '');
      this.comments.push({ repo: `${r.params.owner}/${r.params.repo}`, issue: Number(r.params.issue_number), body, token: r.auth.replace(/^(token|bearer) /i, '') });
      this.json(res, 201, { id: this.nextId++, body, html_url: `https://github.com/${r.params.owner}/${r.params.repo}/issues/${r.params.issue_number}#issuecomment-1` });
    },
    'repos/get-content': (r, res) => {
      const repo = this.repo(r);
      const path = (r.params.path ?? '').replace(/\/+$/, '');
      const fallback = () => {
        const text = repo?.workflows[path];
        if (text === undefined) return this.json(res, 404, { message: 'Not Found' });
        this.json(res, 200, { type: 'file', encoding: 'base64', content: Buffer.from(text).toString('base64'), path, name: path.split('/').pop(), size: Buffer.byteLength(text) });
      };
      if (!repo) return fallback();
      // As GitHub answers from the repository's tree at the ref: the archive is that tree here.
      void treeOf(repo.tarballs?.[r.query.ref ?? ''] ?? repo.tarball).then((tree) => {
        const e = tree.get(path);
        if (!e) return fallback();
        const name = path.split('/').pop();
        if (e.type === 'dir') {
          const prefix = `${path}/`;
          const children = [...tree.entries()].filter(([p]) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/'));
          return this.json(res, 200, children.map(([p, c]) => ({ type: c.type, name: p.slice(prefix.length), path: p, size: c.content?.length ?? 0, sha: 'f'.repeat(40) })));
        }
        if (e.type === 'symlink') return this.json(res, 200, { type: 'symlink', target: e.target, path, name, size: e.target?.length ?? 0 });
        this.json(res, 200, { type: 'file', encoding: 'base64', content: e.content!.toString('base64'), path, name, size: e.content!.length });
      }, () => fallback());
    },
    'repos/download-tarball-archive': (r, res) => {
      const repo = this.repo(r);
      if (!repo) return this.json(res, 404, { message: 'Not Found' });
      res.writeHead(200, { 'content-type': 'application/x-gzip' }).end(repo.tarballs?.[r.params.ref ?? ''] ?? repo.tarball);
    },
    'checks/create': (r, res) => {
      const id = this.nextId++;
      const fields = { ...(r.body as Record<string, unknown>) };
      this.checkRuns.set(id, { id, owner: r.params.owner!, repo: r.params.repo!, fields, history: [fields], times: [Date.now()] });
      this.json(res, 201, { id, ...fields });
    },
    'checks/list-for-ref': (r, res) => {
      const runs = [...this.checkRuns.values()].filter((c) => c.owner === r.params.owner && c.repo === r.params.repo && c.fields.head_sha === r.params.ref && (!r.query.check_name || c.fields.name === r.query.check_name));
      this.json(res, 200, { total_count: runs.length, check_runs: runs.map((c) => ({ id: c.id, ...c.fields })) });
    },
    'checks/update': (r, res) => {
      const c = this.checkRuns.get(Number(r.params.check_run_id));
      if (!c) return this.json(res, 404, { message: 'Not Found' });
      const patch = r.body as Record<string, unknown>;
      c.history.push(patch);
      c.times.push(Date.now());
      c.fields = { ...c.fields, ...patch };
      this.json(res, 200, { id: c.id, ...c.fields });
    },
    'actions/cancel-workflow-run': (_r, res) => this.json(res, 202, {}),
    'actions/generate-runner-jitconfig-for-repo': (r, res) => {
      const b = r.body as { name: string; labels: string[] };
      if ([...this.runners.values()].some((x) => x.name === b.name && !x.deleted)) return this.json(res, 409, { message: 'A runner with this name already exists' });
      const id = this.nextId++;
      const runner: FakeRunnerEntry = { id, name: b.name, owner: r.params.owner!, repo: r.params.repo!, labels: b.labels, busy: false, deleted: false, jobs: [], mintedAt: Date.now() };
      this.runners.set(id, runner);
      // GitHub's encoded JIT config is the runner's settings and credentials, base64; here what the fake runner needs.
      const encoded = Buffer.from(JSON.stringify({ fake: this.url, runnerId: id, credentials: `JIT-CREDENTIAL-CANARY-${id}` })).toString('base64');
      this.json(res, 201, { runner: this.runnerView(runner), encoded_jit_config: encoded });
    },
    'actions/get-self-hosted-runner-for-repo': (r, res) => {
      const runner = this.runners.get(Number(r.params.runner_id));
      if (!runner || runner.deleted || runner.owner !== r.params.owner || runner.repo !== r.params.repo) return this.json(res, 404, { message: 'Not Found' });
      this.json(res, 200, this.runnerView(runner));
    },
    'actions/delete-self-hosted-runner-from-repo': (r, res) => {
      const runner = this.runners.get(Number(r.params.runner_id));
      if (!runner || runner.deleted) return this.json(res, 404, { message: 'Not Found' });
      runner.deleted = true;
      runner.busy = false;
      res.writeHead(204).end();
    },
    'apps/list-webhook-deliveries': (_r, res) =>
      this.json(res, 200, this.deliveries.map((d) => ({ id: d.id, guid: d.guid, event: d.event, action: d.action, delivered_at: new Date().toISOString(), redelivery: false, duration: 0.1, status: 'OK', status_code: 502, installation_id: 1, repository_id: 1 }))),
    'apps/get-webhook-delivery': (r, res) => {
      const d = this.deliveries.find((x) => x.id === Number(r.params.delivery_id));
      if (!d) return this.json(res, 404, { message: 'Not Found' });
      this.json(res, 200, { id: d.id, guid: d.guid, event: d.event, action: d.action, delivered_at: new Date().toISOString(), redelivery: false, duration: 0.1, status: 'OK', status_code: 502, installation_id: 1, repository_id: 1, request: { headers: {}, payload: d.payload }, response: { headers: {}, payload: null } });
    },
  };
}

/** The permission an installation token needs for an operation (GitHub's "permissions required for GitHub Apps" pages, in short). */
function permissionFor(operationId: string, method: string): { name: string; level: 'read' | 'write' } | undefined {
  const level = method === 'GET' ? 'read' : 'write';
  const group = operationId.split('/')[0]!;
  if (operationId === 'repos/get') return { name: 'metadata', level: 'read' };
  if (operationId === 'apps/revoke-installation-access-token') return undefined;
  const byGroup: Record<string, string> = { issues: 'issues', pulls: 'pull_requests', checks: 'checks', actions: 'actions', git: 'contents', repos: 'contents', statuses: 'statuses', deployments: 'deployments' };
  const name = byGroup[group];
  return name ? { name, level } : undefined;
}
