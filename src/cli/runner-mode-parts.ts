import { readFileSync } from 'node:fs';
import { StockadeError, type Logger } from '../common';
import { githubEgressNames, HookJobs } from '../hook';
import { baseImageRef, egressSettings, runnerImages, upstreamDnsFrom, type HostConfig } from '../host';
import type { EgressSettings, ImagePolicy } from '../runner';
import type { ResourceLimits, Sandbox } from '../sandbox';
import { asRunner, exec } from './exec';

/** What the broker of `stockade hook-broker` and of `stockade serve --mode runner` share: flags, ids, egress, the hook jobs. */
export const RUNNER_EGRESS_OPTIONS = {
  'github-url': { type: 'string', multiple: true },
  'no-github-egress': { type: 'boolean' },
  'allow-domain': { type: 'string', multiple: true },
  'upstream-dns': { type: 'string' },
  'permit-range': { type: 'string', multiple: true },
} as const;

export interface RunnerEgressValues {
  'github-url'?: string[];
  'no-github-egress'?: boolean;
  'allow-domain'?: string[];
  'upstream-dns'?: string;
  'permit-range'?: string[];
}

/** The first subordinate id of the Podman user in /etc/subuid or /etc/subgid text: a keep-id container's root on the host. */
export function firstSubuid(user: string, subuidText: string): number | undefined {
  for (const line of subuidText.split('\n')) {
    const [name, start, count] = line.trim().split(':');
    if (name === user && Number(count) > 0 && Number.isInteger(Number(start))) return Number(start);
  }
  return undefined;
}

/** The uid and gid steps write as in runner mode (github-runner's). */
export function runnerIds(host: HostConfig): { uid: number; gid: number } {
  const uid = firstSubuid(host.runnerUser, readFileSync('/etc/subuid', 'utf8'));
  const gid = firstSubuid(host.runnerUser, readFileSync('/etc/subgid', 'utf8'));
  if (uid === undefined || gid === undefined) throw new StockadeError('HOST_NOT_READY', `${host.runnerUser} has no subordinate ids in /etc/subuid and /etc/subgid`, { hint: 'run `stockade setup --runner`' });
  return { uid, gid };
}

/** A group's gid, or undefined when there is no such group. */
export async function groupId(name: string): Promise<number | undefined> {
  const g = await exec('getent', ['group', name]);
  return g.code === 0 ? Number(g.stdout.split(':')[2]) : undefined;
}

/**
 * Steps reach GitHub's endpoints (checkout, caches, artifacts, OIDC) and what the operator allows;
 * nothing else. A host with no resolver a container can reach still runs jobs, without a network, said.
 */
export function runnerEgress(values: RunnerEgressValues, host: HostConfig, logger: Logger, who: string): { allow: string[]; egress?: EgressSettings } {
  let allow: string[];
  try {
    allow = [...new Set([...(values['no-github-egress'] ? [] : (values['github-url'] ?? ['https://github.com']).flatMap((u) => githubEgressNames(u))), ...(values['allow-domain'] ?? [])])];
  } catch (e) {
    throw new StockadeError('USAGE', `--github-url: ${(e as Error).message}`);
  }
  if (!allow.length) return { allow };
  try {
    return { allow, egress: egressSettings(host.packageRoot, { allow, permittedRanges: values['permit-range'] ?? [] }, upstreamDnsFrom(values['upstream-dns'])) };
  } catch (e) {
    logger.warn({ err: e }, 'runner-mode jobs get no network: the egress sidecar cannot be configured');
    process.stderr.write(`${who}: no egress (${(e as Error).message}); steps get no network\n`);
    return { allow: [] };
  }
}

export function newHookJobs(o: { host: HostConfig; sandbox: Sandbox; policy?: ImagePolicy; limits: ResourceLimits; runnerUid: number; logger: Logger; allow: string[]; egress?: EgressSettings }): HookJobs {
  return new HookJobs({
    sandbox: o.sandbox,
    images: runnerImages(o.host),
    policy: o.policy ?? { allow: [], allowDigestPinned: false },
    limits: o.limits,
    runnerUid: o.runnerUid,
    logger: o.logger,
    allow: o.allow,
    egress: o.egress,
    sidecarImage: baseImageRef(o.host),
    nodeBinary: process.execPath,
    asPodmanUser: (args) => asRunner(o.host, args),
  });
}
