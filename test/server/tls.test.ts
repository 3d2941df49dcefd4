// --tls-cert/--tls-key: the webhook listener speaks HTTPS itself (for a host without a TLS proxy in front).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endWorld, makeWorld, sign, startServer, workflowJobPayload, type ServerProcess, type World } from './helpers';

let w: World;
let server: ServerProcess;
let state: string;
let certFile: string;

before(async () => {
  w = await makeWorld({ '.github/workflows/ci.yml': 'on: push\njobs:\n  a:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: echo hi\n' });
  state = mkdtempSync(join(tmpdir(), 'stockade-state-'));
  certFile = join(w.dir, 'cert.pem');
  const keyFile = join(w.dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  server = await startServer(w, state, ['--tls-cert', certFile, '--tls-key', keyFile, '--reconcile-seconds', '0', '--modes', 'workflow_job']);
});

after(() => endWorld(w, server, state));

function send(secure: boolean, path: string, method = 'GET', headers: Record<string, string> = {}, body = ''): Promise<{ status: number; text: string }> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)({ host: u.hostname, port: u.port, path, method, headers: { 'content-length': String(Buffer.byteLength(body)), ...headers }, ...(secure ? { ca: readFileSync(certFile) } : {}) }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('with --tls-cert and --tls-key the listener answers HTTPS (certificate checked by the client), takes signed deliveries, and refuses plain HTTP', async () => {
  const health = await send(true, '/healthz');
  assert.equal(health.status, 200, health.text);
  const body = JSON.stringify(workflowJobPayload({ jobId: 5, name: 'a', labels: ['self-hosted', 'stockade'] }));
  const delivered = await send(true, '/webhook', 'POST', { 'content-type': 'application/json', 'x-github-event': 'workflow_job', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sign(w.secret, body) }, body);
  assert.equal(delivered.status, 202, delivered.text);
  const unsigned = await send(true, '/webhook', 'POST', { 'content-type': 'application/json', 'x-github-event': 'workflow_job', 'x-github-delivery': randomUUID() }, body);
  assert.equal(unsigned.status, 401);
  await assert.rejects(send(false, '/healthz'), 'plain HTTP gets no answer from a TLS listener');
  // The listener is still up after the plain-text client.
  assert.equal((await send(true, '/healthz')).status, 200);
});
