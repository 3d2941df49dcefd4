import { enableHelperPool } from '../runner';
import { parseOptions } from './parse-options';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StockadeError, type Logger } from '../common';
import { DEFAULT_HOOK_SOCKET, startHookBroker } from '../hook';
import { resolveHostConfig } from '../host';
import { openSandbox } from '../sandbox';
import { groupId, newHookJobs, RUNNER_EGRESS_OPTIONS, runnerEgress, runnerIds } from './runner-mode-parts';
import { limitsFrom } from './run-options';

export const HOOK_BROKER_USAGE = `usage: stockade hook-broker [--socket PATH] [--group NAME]
                    [--memory SIZE] [--pids N] [--cpus N] [--timeout DURATION] [--output-limit SIZE]
                    [--allow-image PATTERN]... [--allow-digest-pinned]
                    [--github-url URL]... [--no-github-egress] [--allow-domain NAME]...
                    [--upstream-dns ADDRESS] [--permit-range CIDR]...`;

/** The options of this command: what the parser (commander) accepts and what `stockade completion` offers. */
export const HOOK_BROKER_OPTIONS = {
  socket: { type: 'string' },
  group: { type: 'string' },
  memory: { type: 'string' },
  pids: { type: 'string' },
  cpus: { type: 'string' },
  timeout: { type: 'string' },
  'output-limit': { type: 'string' },
  'allow-image': { type: 'string', multiple: true },
  'allow-digest-pinned': { type: 'boolean' },
  ...RUNNER_EGRESS_OPTIONS,
} as const;

/**
 * `stockade hook-broker`: serves the container hook of GitHub's runner (runner mode) until stopped.
 * Root: it holds the rootless Podman API of the Podman user and applies every step's limits.
 */
export async function hookBrokerCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger, signal: AbortSignal): Promise<number> {
  if (process.getuid?.() !== 0) throw new StockadeError('USAGE', 'stockade hook-broker must run as root', { hint: 'sudo stockade hook-broker' });
  const { values } = parseOptions('hook-broker', HOOK_BROKER_OPTIONS, argv);
  const host = resolveHostConfig(env);
  const { uid: runnerUid } = runnerIds(host);
  const group = values.group ?? 'stockade-hook';
  const gid = await groupId(group);
  if (values.group && gid === undefined) throw new StockadeError('USAGE', `--group ${values.group}: no such group`);
  const { allow, egress } = runnerEgress(values, host, logger, 'hook-broker');
  const sandbox = await openSandbox({ socketPath: host.socketPath, stateDir: host.stateDir, seccompProfileJson: readFileSync(join(host.packageRoot, 'seccomp/stockade.json'), 'utf8'), logger });
  const reaped = await sandbox.reap();
  logger.info({ reaped }, 'leftovers of earlier brokers and runs removed');
  const policy = { allow: values['allow-image'] ?? [], allowDigestPinned: !!values['allow-digest-pinned'] };
  // A long-running host: each job with egress finds its network and sidecar made ahead (after the first).
  const pool = egress ? enableHelperPool(sandbox) : undefined;
  const jobs = newHookJobs({ host, sandbox, policy, limits: limitsFrom(values), runnerUid, logger, allow, egress });
  const socketPath = values.socket ?? DEFAULT_HOOK_SOCKET;
  const server = await startHookBroker({ socketPath, gid, jobs, logger });
  process.stderr.write(`hook-broker: listening on ${socketPath} (group ${gid === undefined ? 'root only' : group}); steps run as uid ${runnerUid}; network only to ${allow.join(', ') || 'nothing'}\n`);
  await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
  server.close();
  await pool?.close();
  await sandbox.reap();
  return 0;
}
