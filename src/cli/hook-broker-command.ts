import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { StockadeError, type Logger } from '../common';
import { DEFAULT_HOOK_SOCKET, githubEgressNames, HookJobs, startHookBroker } from '../hook';
import { baseImageRef, egressSettings, runnerImages, resolveHostConfig, upstreamDnsFrom } from '../host';
import { openSandbox } from '../sandbox';
import { exec } from './exec';
import { limitsFrom } from './run-command';

export const HOOK_BROKER_USAGE = `usage: stockade hook-broker [--socket PATH] [--group NAME]
                    [--memory SIZE] [--pids N] [--cpus N] [--timeout DURATION] [--output-limit SIZE]
                    [--allow-image PATTERN]... [--allow-digest-pinned]
                    [--github-url URL]... [--no-github-egress] [--allow-domain NAME]...
                    [--upstream-dns ADDRESS] [--permit-range CIDR]...`;

/** The first subordinate uid of the Podman user: the host uid of a keep-id container's root. */
export function firstSubuid(user: string, subuidText: string): number | undefined {
  for (const line of subuidText.split('\n')) {
    const [name, start, count] = line.trim().split(':');
    if (name === user && Number(count) > 0 && Number.isInteger(Number(start))) return Number(start);
  }
  return undefined;
}

/**
 * `stockade hook-broker`: serves the container hook of GitHub's runner (runner mode) until stopped.
 * Root: it holds the rootless Podman API of the Podman user and applies every step's limits.
 */
export async function hookBrokerCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger, signal: AbortSignal): Promise<number> {
  if (process.getuid?.() !== 0) throw new StockadeError('USAGE', 'stockade hook-broker must run as root', { hint: 'sudo stockade hook-broker' });
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      socket: { type: 'string' },
      group: { type: 'string' },
      memory: { type: 'string' },
      pids: { type: 'string' },
      cpus: { type: 'string' },
      timeout: { type: 'string' },
      'output-limit': { type: 'string' },
      'allow-image': { type: 'string', multiple: true },
      'allow-digest-pinned': { type: 'boolean' },
      'github-url': { type: 'string', multiple: true },
      'no-github-egress': { type: 'boolean' },
      'allow-domain': { type: 'string', multiple: true },
      'upstream-dns': { type: 'string' },
      'permit-range': { type: 'string', multiple: true },
    },
  });
  const host = resolveHostConfig(env);
  const runnerUid = firstSubuid(host.runnerUser, readFileSync('/etc/subuid', 'utf8'));
  if (runnerUid === undefined) throw new StockadeError('HOST_NOT_READY', `${host.runnerUser} has no subordinate uids in /etc/subuid`, { hint: 'run `stockade setup --runner`' });
  const group = values.group ?? 'stockade-hook';
  const g = await exec('getent', ['group', group]);
  const gid = g.code === 0 ? Number(g.stdout.split(':')[2]) : undefined;
  if (values.group && gid === undefined) throw new StockadeError('USAGE', `--group ${values.group}: no such group`);
  // Steps reach GitHub's endpoints (checkout, caches, artifacts, OIDC) and what the operator allows; nothing else.
  let allow: string[] = [];
  try {
    allow = [...new Set([...(values['no-github-egress'] ? [] : (values['github-url'] ?? ['https://github.com']).flatMap((u) => githubEgressNames(u))), ...(values['allow-domain'] ?? [])])];
  } catch (e) {
    throw new StockadeError('USAGE', `--github-url: ${(e as Error).message}`);
  }
  let egress;
  if (allow.length) {
    try {
      egress = egressSettings(host.packageRoot, { allow, permittedRanges: values['permit-range'] ?? [] }, upstreamDnsFrom(values['upstream-dns']));
    } catch (e) {
      // A host with no resolver a container can reach still runs jobs: without a network, said at each job.
      logger.warn({ err: e }, 'runner-mode jobs get no network: the egress sidecar cannot be configured');
      process.stderr.write(`hook-broker: no egress (${(e as Error).message}); steps get no network\n`);
      allow = [];
    }
  }
  const sandbox = await openSandbox({ socketPath: host.socketPath, stateDir: host.stateDir, seccompProfileJson: readFileSync(join(host.packageRoot, 'seccomp/stockade.json'), 'utf8'), logger });
  const reaped = await sandbox.reap();
  logger.info({ reaped }, 'leftovers of earlier brokers and runs removed');
  const jobs = new HookJobs({
    sandbox,
    images: runnerImages(host),
    policy: { allow: values['allow-image'] ?? [], allowDigestPinned: !!values['allow-digest-pinned'] },
    limits: limitsFrom(values),
    runnerUid,
    logger,
    allow,
    egress,
    sidecarImage: baseImageRef(host),
    nodeBinary: process.execPath,
  });
  const socketPath = values.socket ?? DEFAULT_HOOK_SOCKET;
  const server = await startHookBroker({ socketPath, gid, jobs, logger });
  process.stderr.write(`hook-broker: listening on ${socketPath} (group ${gid === undefined ? 'root only' : group}); steps run as uid ${runnerUid}; network only to ${allow.join(', ') || 'nothing'}\n`);
  await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
  server.close();
  await sandbox.reap();
  return 0;
}
