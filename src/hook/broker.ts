import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../common';
import { HOOK_INPUT_LIMITS, parseHookInput } from './hook-input';
import type { HookJobs } from './hook-jobs';

/**
 * The hook broker: GitHub's runner runs `dist/hook.js` as its own unprivileged user; that client
 * passes the runner's hook input over this Unix socket to the broker (root, holding the sandbox),
 * which runs the command and streams back the step's lines, the exit code and the response.
 *
 * Wire format, one JSON object per line. Client → broker: `{"input": "<the hook's stdin>"}`.
 * Broker → client: `{"line": "…"}` for every line of the log, then `{"exit": N, "response": {…}}`.
 * Who may connect is decided by the socket's directory and mode (root and the runner group only).
 */
export const DEFAULT_HOOK_SOCKET = '/run/stockade/hook.sock';
export const BROKER_LIMITS = { requestBytes: HOOK_INPUT_LIMITS.maxBytes + 4096, requestMs: 30_000, connections: 64 } as const;

export interface BrokerOptions {
  socketPath: string;
  /** Group allowed to connect (the runner's); without it only root can. */
  gid?: number;
  jobs: HookJobs;
  logger: Logger;
}

export async function startHookBroker(o: BrokerOptions): Promise<Server> {
  const dir = dirname(o.socketPath);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== 0) throw new Error(`${dir} must be a directory owned by root`);
  chmodSync(dir, o.gid === undefined ? 0o700 : 0o750);
  if (o.gid !== undefined) chownSync(dir, 0, o.gid);
  try {
    if (lstatSync(o.socketPath).isSocket()) unlinkSync(o.socketPath);
  } catch {
    // absent
  }
  let open = 0;
  const server = createServer((sock) => {
    if (open >= BROKER_LIMITS.connections) {
      sock.end(`${JSON.stringify({ line: '##[error]Stockade: the hook broker is busy', exit: 1 })}\n`);
      return;
    }
    open++;
    sock.once('close', () => open--);
    serve(sock, o).catch((e: unknown) => {
      o.logger.error({ err: e }, 'hook call failed');
      sock.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.socketPath, () => resolve());
  });
  chmodSync(o.socketPath, 0o660);
  if (o.gid !== undefined) chownSync(o.socketPath, 0, o.gid);
  server.on('error', (e) => o.logger.error({ err: e }, 'hook broker socket error'));
  return server;
}

function readRequest(sock: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => done(new Error(`no request within ${BROKER_LIMITS.requestMs} ms`)), BROKER_LIMITS.requestMs);
    const done = (e?: Error, text?: string) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      if (e) reject(e);
      else resolve(text!);
    };
    const onData = (b: Buffer) => {
      const nl = b.indexOf(10);
      const part = nl >= 0 ? b.subarray(0, nl) : b;
      size += part.length;
      if (size > BROKER_LIMITS.requestBytes) return done(new Error(`the request is larger than ${BROKER_LIMITS.requestBytes} bytes`));
      chunks.push(part);
      if (nl >= 0) done(undefined, Buffer.concat(chunks).toString('utf8'));
    };
    const onEnd = () => done(new Error('the client closed before its request was complete'));
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.on('error', () => undefined);
  });
}

async function serve(sock: Socket, o: BrokerOptions): Promise<void> {
  const send = (frame: Record<string, unknown>) => {
    if (!sock.destroyed) sock.write(`${JSON.stringify(frame)}\n`);
  };
  let text: string;
  try {
    text = await readRequest(sock);
  } catch (e) {
    send({ line: `##[error]Stockade: ${(e as Error).message}` });
    send({ exit: 1 });
    sock.end();
    return;
  }
  let input: unknown;
  try {
    input = (JSON.parse(text) as { input?: unknown }).input;
  } catch {
    input = undefined;
  }
  const parsed = typeof input === 'string' ? parseHookInput(input) : { error: 'the request is not {"input": "<hook input>"}' };
  if ('error' in parsed) {
    send({ line: `##[error]Stockade: ${parsed.error}` });
    send({ exit: 1 });
    sock.end();
    return;
  }
  // The runner cancels a step by ending the hook process: the client's connection closes, the step stops.
  const controller = new AbortController();
  sock.once('close', () => controller.abort());
  const log = o.logger.child({ hook: parsed.value.command });
  const started = Date.now();
  const result = await o.jobs.handle(parsed.value, (line) => send({ line }), controller.signal);
  log.info({ exitCode: result.exitCode, ms: Date.now() - started }, 'hook call');
  send({ exit: result.exitCode, ...(result.response ? { response: result.response } : {}) });
  sock.end();
}
