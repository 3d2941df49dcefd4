/**
 * dist/hook.js: the container hook GitHub's runner runs (ACTIONS_RUNNER_CONTAINER_HOOKS), as the
 * runner's own user, with the hook input on stdin (actions/runner ContainerHookManager.cs). It holds
 * no privilege and decides nothing: it hands the input to Stockade's broker over its Unix socket,
 * prints the lines the broker sends (the runner records and masks them), writes the response where
 * the runner asked (a file the runner created empty; never through a link), and exits with the step's
 * code. Only Node's own modules: the runner's Node runs it from the install directory.
 */
import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';
import { connect } from 'node:net';

const MAX_INPUT = 8 * 1024 * 1024 + 4096;
const socketPath = process.env.STOCKADE_HOOK_SOCKET || '/run/stockade/hook.sock';

function fail(message: string): never {
  process.stdout.write(`##[error]Stockade hook: ${message}\n`);
  process.exit(1);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    size += (c as Buffer).length;
    if (size > MAX_INPUT) fail(`the hook input is larger than ${MAX_INPUT} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function writeResponse(path: string, response: unknown): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    fail(`cannot open the response file ${path}: ${(e as Error).message}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1) fail(`the response file ${path} is not a regular file with one name`);
  writeSync(fd, `${JSON.stringify(response)}\n`);
  closeSync(fd);
}

async function main(): Promise<void> {
  const input = await readStdin();
  let responseFile: string | undefined;
  try {
    const r = (JSON.parse(input) as { responseFile?: unknown }).responseFile;
    if (typeof r === 'string' && r) responseFile = r;
  } catch {
    // the broker names what is wrong with it
  }
  const sock = connect(socketPath);
  let exit: number | undefined;
  let pending = '';
  sock.on('error', (e) => fail(`cannot reach Stockade's hook broker at ${socketPath}: ${e.message} (is \`stockade hook-broker\` running, and is this user in its group?)`));
  sock.on('connect', () => sock.write(`${JSON.stringify({ input })}\n`));
  sock.on('data', (b: Buffer) => {
    pending += b.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const frame = JSON.parse(pending.slice(0, nl)) as { line?: string; exit?: number; response?: unknown };
      pending = pending.slice(nl + 1);
      if (typeof frame.line === 'string') process.stdout.write(`${frame.line}\n`);
      if (typeof frame.exit === 'number') {
        exit = frame.exit;
        if (frame.response !== undefined && responseFile) writeResponse(responseFile, frame.response);
      }
    }
  });
  sock.on('close', () => {
    if (exit === undefined) fail('the hook broker closed the connection before the step ended');
    process.exitCode = exit;
  });
  // The runner cancels a step by signalling the hook: closing the connection stops the step's container.
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => {
    sock.destroy();
    process.exit(130);
  });
}

void main();
