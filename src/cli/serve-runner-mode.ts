import { join } from 'node:path';
import { parseDuration, StockadeError, type Logger } from '../common';
import type { GitHubApi } from '../github';
import { startHookBroker } from '../hook';
import type { HostConfig } from '../host';
import type { ImagePolicy } from '../runner';
import { DEFAULT_LIMITS, type DiskLimits, type Sandbox } from '../sandbox';
import { JitRunners } from '../server';
import { groupId, newHookJobs, RUNNER_EGRESS_OPTIONS, runnerEgress, runnerIds } from './runner-mode-parts';
import { ACTIONS_USER, HOOK_GROUP, INSTALLED_HOOK } from './setup-runner-mode';

export const RUNNER_MODE_OPTIONS = {
  mode: { type: 'string' },
  'runner-install': { type: 'string' },
  'runner-idle-timeout': { type: 'string' },
  'runner-poll': { type: 'string' },
  ...RUNNER_EGRESS_OPTIONS,
} as const;

export const RUNNER_MODE_USAGE = `                      [--mode sandbox|runner] [--runner-install /home/${ACTIONS_USER}/actions-runner]
                      [--runner-idle-timeout 10m] [--runner-poll 5s] [--github-url URL]... [--no-github-egress]
                      [--allow-domain NAME]... [--upstream-dns ADDRESS] [--permit-range CIDR]...`;

type Values = { [K in keyof typeof RUNNER_MODE_OPTIONS]?: (typeof RUNNER_MODE_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof RUNNER_MODE_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/**
 * `stockade serve --mode runner`: workflow_job jobs run on just-in-time official runners; this server
 * runs the hook broker they reach (its own socket) and the JIT runner manager.
 */
export async function runnerMode(values: Values, o: { host: HostConfig; sandbox: Sandbox; github: GitHubApi; labels: string[]; imagePolicy?: ImagePolicy; disk?: DiskLimits; logger: Logger }): Promise<{ jit: JitRunners; close(): void } | undefined> {
  const mode = values.mode ?? 'sandbox';
  if (mode !== 'sandbox' && mode !== 'runner') throw new StockadeError('USAGE', `--mode '${mode}' is not sandbox or runner`);
  if (mode === 'sandbox') return undefined;
  const duration = (flag: 'runner-idle-timeout' | 'runner-poll', fallback: number) => {
    const v = values[flag];
    if (v === undefined) return fallback;
    const ms = parseDuration(v);
    if (ms === undefined) throw new StockadeError('USAGE', `--${flag} '${v}' is not a duration such as 90s or 10m`);
    return ms;
  };
  const { uid: runnerUid, gid: runnerGid } = runnerIds(o.host);
  const gid = (await groupId(HOOK_GROUP)) ?? runnerGid;
  const { allow, egress } = runnerEgress(values, o.host, o.logger, 'stockade serve');
  const jobs = newHookJobs({ host: o.host, sandbox: o.sandbox, policy: o.imagePolicy, limits: DEFAULT_LIMITS, runnerUid, logger: o.logger.child({ component: 'hook' }), allow, egress });
  const socketPath = `/run/stockade/serve-${process.pid}.sock`;
  const broker = await startHookBroker({ socketPath, gid, jobs, logger: o.logger.child({ component: 'hook-broker' }) });
  const jit = new JitRunners({
    github: o.github,
    installDir: values['runner-install'] ?? `/home/${ACTIONS_USER}/actions-runner`,
    runnersDir: join(o.host.stateDir, 'runners'),
    uid: runnerUid,
    gid: runnerGid,
    hookPath: INSTALLED_HOOK,
    hookSocket: socketPath,
    host: jobs,
    labels: o.labels,
    sandbox: o.sandbox,
    disk: o.disk,
    idleTimeoutMs: duration('runner-idle-timeout', 600_000),
    pollMs: duration('runner-poll', 5000),
    logger: o.logger.child({ component: 'jit' }),
  });
  return { jit, close: () => broker.close() };
}
