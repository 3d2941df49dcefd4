import { spawn, type SpawnOptions } from 'node:child_process';
import type { HostConfig } from '../host';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command, collecting output (bounded), optionally piping a stream to stdin. */
export function exec(cmd: string, args: string[], opts: SpawnOptions & { input?: NodeJS.ReadableStream } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const cap = (s: string, b: Buffer) => (s.length > 1_000_000 ? s : s + b.toString());
    child.stdout!.on('data', (b: Buffer) => (stdout = cap(stdout, b)));
    child.stderr!.on('data', (b: Buffer) => (stderr = cap(stderr, b)));
    if (opts.input) opts.input.pipe(child.stdin!);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** Like exec, but a command that cannot be started (not installed) is a failed result, not a rejection. */
export function tryExec(cmd: string, args: string[]): Promise<ExecResult> {
  return exec(cmd, args).catch((e: unknown) => ({ code: 127, stdout: '', stderr: (e as Error).message }));
}

/** argv that runs a command as the runner user with its rootless Podman environment. */
export function asRunner(h: HostConfig, args: string[]): [string, string[]] {
  return ['runuser', ['-u', h.runnerUser, '--', 'env', `XDG_RUNTIME_DIR=${h.runtimeDir}`, `HOME=${h.runnerHome}`, ...args]];
}
