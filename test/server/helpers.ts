import { appendFileSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { FakeGitHub } from './fake-github';

export const root = process.cwd();
const cli = join(root, 'dist/cli.js');

export interface World {
  fake: FakeGitHub;
  dir: string;
  keyFile: string;
  secretFile: string;
  secret: string;
}

/** A fake GitHub with one repository (octo-org/hello) whose workflow and tarball are given, plus App credentials on disk. */
export async function makeWorld(files: Record<string, string>, sha = 'a'.repeat(40)): Promise<World> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const dir = mkdtempSync(join(tmpdir(), 'stockade-server-'));
  const keyFile = join(dir, 'app.pem');
  const secretFile = join(dir, 'webhook-secret');
  const secret = `whsec-${randomUUID()}`;
  writeFileSync(keyFile, privateKey, { mode: 0o600 });
  writeFileSync(secretFile, secret, { mode: 0o600 });
  const src = join(dir, 'src', `octo-org-hello-${sha.slice(0, 7)}`);
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(src, p)), { recursive: true });
    writeFileSync(join(src, p), c);
  }
  const tar = spawnSync('tar', ['-czf', '-', '-C', join(dir, 'src'), `octo-org-hello-${sha.slice(0, 7)}`]);
  const fake = new FakeGitHub(publicKey);
  fake.repos.set('octo-org/hello', {
    workflows: Object.fromEntries(Object.entries(files).filter(([p]) => p.startsWith('.github/workflows/'))),
    tarball: tar.stdout,
    runs: { 555: { path: '.github/workflows/ci.yml', event: 'push', head_sha: sha }, 556: { path: '.github/workflows/ci.yml', event: 'pull_request', head_sha: sha, fork: true } },
  });
  await fake.start();
  return { fake, dir, keyFile, secretFile, secret };
}

/** GitHub's own example of a queued workflow_job delivery, edited to name our repository, job and labels. */
export function workflowJobPayload(o: { jobId: number; name: string; labels: string[]; runId?: number; sha?: string; attempt?: number }): Record<string, unknown> {
  return examplePayload('workflow_job', 'queued', (p) => {
    Object.assign(p.workflow_job, { id: o.jobId, run_id: o.runId ?? 555, run_attempt: o.attempt ?? 1, name: o.name, labels: o.labels, head_sha: o.sha ?? 'a'.repeat(40) });
  });
}

/** One of GitHub's example deliveries of `event` (with `action`), edited to name our repository and installation. */
export function examplePayload(event: string, action: string | undefined, edit: (p: Record<string, any>) => void): Record<string, unknown> {
  const require = createRequire(__filename);
  const examples = require('@octokit/webhooks-examples') as Array<{ name: string; examples: Array<Record<string, unknown>> }>;
  const ex = structuredClone(examples.find((e) => e.name === event)!.examples.find((x) => action === undefined || x.action === action)!);
  (ex.repository as Record<string, unknown>).full_name = 'octo-org/hello';
  (ex.repository as Record<string, unknown>).name = 'hello';
  ex.installation = { id: 42, node_id: 'x' };
  edit(ex);
  return ex;
}

export function sign(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function post(url: string, headers: Record<string, string>, body: Buffer | string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    let status = 0;
    let text = '';
    const done = () => resolve({ status, text });
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    // The server may answer (413) and close before the whole body is written.
    req.on('error', (e: NodeJS.ErrnoException) => (status ? done() : reject(e)));
    req.end(body);
  });
}

export function deliver(w: World, url: string, event: string, payload: unknown, guid = randomUUID(), secret = w.secret) {
  const body = JSON.stringify(payload);
  return post(`${url}/webhook`, { 'x-github-event': event, 'x-github-delivery': guid, 'x-hub-signature-256': sign(secret, body) }, body);
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** The admin listener, when --admin-port was given. */
  adminUrl?: string;
  stderr: () => string;
}

export async function startServer(w: World, stateDir: string, extra: string[] = []): Promise<ServerProcess> {
  // STOCKADE_SERVER_NODE_ARGS: node flags for the server (benchmarks: --cpu-prof --cpu-prof-dir=DIR).
  const nodeArgs = (process.env.STOCKADE_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(
    'node',
    [...nodeArgs, cli, 'serve', '--app-id', '1', '--private-key-file', w.keyFile, '--webhook-secret-file', w.secretFile, '--api-url', w.fake.url, '--port', '0', '--state-dir', stateDir, '--labels', 'self-hosted,linux,x64,stockade', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STOCKADE_LOG_LEVEL: process.env.STOCKADE_SERVER_LOG_LEVEL ?? 'warn' } },
  );
  let err = '';
  // STOCKADE_SERVER_STDERR_FILE: the server's log is also appended there (to read a benchmark's server while it runs).
  const tee = process.env.STOCKADE_SERVER_STDERR_FILE;
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (tee) appendFileSync(tee, d);
  });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const m = /listening on ([\d.]+):(\d+)/.exec(err);
    const a = /admin API on ([\d.]+):(\d+)/.exec(err);
    if (m) return { child, url: `http://${m[1]}:${m[2]}`, adminUrl: a ? `http://${a[1]}:${a[2]}` : undefined, stderr: () => err };
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`server did not start: ${err}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export let describeWorld: () => string = () => '';
export function setDiagnostics(f: () => string): void {
  describeWorld = f;
}

export async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await f();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${describeWorld()}`);
}

/**
 * Ends a test file's world: stops the server and the fake, removes their directories, and
 * checks that every request the fake received matched GitHub's OpenAPI description.
 */
export async function endWorld(w: World | undefined, server: ServerProcess | undefined, state: string): Promise<void> {
  server?.child.kill('SIGTERM');
  await sleep(500);
  await w?.fake.stop();
  rmSync(state, { recursive: true, force: true });
  if (w) rmSync(w.dir, { recursive: true, force: true });
  assert.deepEqual(w?.fake.violations ?? [], [], "every request matched GitHub's OpenAPI description");
}
