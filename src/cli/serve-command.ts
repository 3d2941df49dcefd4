import { enableHelperPool, primeHelperPool, type JobSettings } from '../runner';
import { parseOptions } from './parse-options';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, totalmem } from 'node:os';
import { DEFAULT_BACKOFF, hostCapacity, type BackoffPolicy } from '../queue';
import { StockadeError, type Logger } from '../common';
import { DEFAULT_RUNNER_LABELS, GitHubApi } from '../github';
import { DEFAULT_LIMITS, openSandbox } from '../sandbox';
import { StockadeServer, type ServerStore } from '../server';
import { openServerStore } from './server-store';
import { startPodmanService } from './setup';
import { toolCacheDirFrom } from './run-options';
import { SERVE_REMOTE_ACTION_OPTIONS, actionFetcher, actionPolicyFrom } from './remote-actions';
import { baseImageRef } from './base-image';
import { asRunner } from './exec';
import { resolveHostConfig } from '../host';
import { diskLimitsFrom, labelImages, resultsSettings, githubApiUrls, mergeServeValues } from '../host';
import { runnerMode, RUNNER_MODE_OPTIONS, RUNNER_MODE_USAGE } from './serve-runner-mode';
import { loadServerConfig } from './server-config';
export { loadServerConfig };
import { describePrune, retentionFrom } from './prune-command';

export const SERVE_USAGE = `usage: stockade serve --app-id ID [--private-key-file FILE] [--webhook-secret-file FILE]
                      [--port 8080] [--host 127.0.0.1] [--tls-cert FILE --tls-key FILE] [--public-url URL] [--labels a,b,c] [--concurrency 2]
                      [--api-url https://api.github.com] [--secrets-file FILE] [--action-cache DIR]
                      [--reconcile-seconds 60] [--cancel-github-run] [--state-dir DIR] [--no-request-pacing]
                      [--modes workflow_job,app] [--admin-port 8081] [--admin-host 127.0.0.1]
                      [--config quotas.yml] [--burst-per-minute 120]
                      [--github-retry-seconds 5] [--github-give-up-seconds 21600] [--disk 10g|off] [--inodes 1000000]
                      [--results-dir DIR|off] [--cache-quota 10g] [--artifact-quota 10g] [--tool-cache DIR]
                      [--job-retention 90d] [--log-retention 30d] [--max-database-size 1g|off]
                      [--action-offline-mode] [--require-sha-pins] [--allow-action-owner OWNER]...
                      [--database postgres://…] [--host-id NAME] [--lease-seconds 30] [--host-loss fail|requeue] [--drain-seconds 30]
${RUNNER_MODE_USAGE}
  environment: STOCKADE_APP_PRIVATE_KEY (PEM, instead of --private-key-file), STOCKADE_WEBHOOK_SECRET,
               STOCKADE_DATABASE (the --database URL, so its password stays off the command line)`;

function readSecret(file: string | undefined, envValue: string | undefined, what: string): string {
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new StockadeError('CONFIG_INVALID', `${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (envValue) return envValue.trim();
  throw new StockadeError('CONFIG_INVALID', `${what} is required`, { hint: SERVE_USAGE });
}

/** Per-repository secrets: a JSON file `{ "owner/repo": { "NAME": "value" } }`, re-read on change of mtime. */
function secretsFrom(file: string | undefined): (repository: string) => Record<string, string> {
  if (!file) return () => ({});
  let cache: { mtime: number; data: Record<string, Record<string, string>> } | undefined;
  return (repository) => {
    const mtime = statSync(file).mtimeMs;
    if (!cache || cache.mtime !== mtime) cache = { mtime, data: JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, string>> };
    return { ...(cache.data[repository] ?? {}) };
  };
}

/** The options of this command: what the parser (commander) accepts and what `stockade completion` offers. */
export const SERVE_OPTIONS = {
  'app-id': { type: 'string' },
  'private-key-file': { type: 'string' },
  'webhook-secret-file': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'public-url': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  labels: { type: 'string' },
  concurrency: { type: 'string' },
  'api-url': { type: 'string' },
  'secrets-file': { type: 'string' },
  'action-cache': { type: 'string' },
  ...SERVE_REMOTE_ACTION_OPTIONS,
  'reconcile-seconds': { type: 'string' },
  'cancel-github-run': { type: 'boolean' },
  'state-dir': { type: 'string' },
  'no-request-pacing': { type: 'boolean' },
  modes: { type: 'string' },
  'admin-port': { type: 'string' },
  'admin-host': { type: 'string' },
  config: { type: 'string' },
  'burst-per-minute': { type: 'string' },
  'github-retry-seconds': { type: 'string' },
  disk: { type: 'string' },
  inodes: { type: 'string' },
  'github-give-up-seconds': { type: 'string' },
  'results-dir': { type: 'string' },
  'tool-cache': { type: 'string' },
  'cache-quota': { type: 'string' },
  'artifact-quota': { type: 'string' },
  'job-retention': { type: 'string' },
  'log-retention': { type: 'string' },
  'max-database-size': { type: 'string' },
  database: { type: 'string' },
  'host-id': { type: 'string' },
  'lease-seconds': { type: 'string' },
  'host-loss': { type: 'string' },
  'drain-seconds': { type: 'string' },
  ...RUNNER_MODE_OPTIONS,
} as const;

/** `stockade serve`: the GitHub App server. Resolves when the server stops (SIGINT/SIGTERM). */
export async function serveCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger, signal: AbortSignal): Promise<number> {
  const { values: flags } = parseOptions('serve', SERVE_OPTIONS, argv);
  // A flag wins, then its environment variable, then the config file's server: key, then the default (SERVER_SETTINGS).
  const configFile = flags.config ?? env.STOCKADE_CONFIG;
  const config = configFile ? loadServerConfig(configFile) : undefined;
  const multiple = new Set(Object.entries(SERVE_OPTIONS).filter(([, o]) => 'multiple' in o && o.multiple).map(([k]) => k));
  const values = mergeServeValues(flags, env, config?.server, multiple) as typeof flags;
  // What was set on purpose (no defaults): --inodes means nothing with --disk off, and says so only when given.
  const given = mergeServeValues(flags, env, config?.server, multiple, { defaults: false }) as typeof flags;
  const appId = values['app-id'];
  if (!appId) throw new StockadeError('USAGE', '--app-id is required', { hint: SERVE_USAGE });
  const privateKey = readSecret(values['private-key-file'], env.STOCKADE_APP_PRIVATE_KEY, 'the App private key');
  const webhookSecret = readSecret(values['webhook-secret-file'], env.STOCKADE_WEBHOOK_SECRET, 'the webhook secret');
  const modes = new Set(values.modes!.split(',').map((m) => m.trim()));
  for (const m of modes) if (m !== 'workflow_job' && m !== 'app') throw new StockadeError('USAGE', `--modes: '${m}' is not workflow_job or app`);
  const quotaDefaults = config?.quotas;
  const burst = Number(values['burst-per-minute']);
  if (!Number.isInteger(burst) || burst < 1 || burst > 100_000) throw new StockadeError('USAGE', `--burst-per-minute '${values['burst-per-minute']}' is not 1 to 100000`);
  const host = resolveHostConfig(env);
  const stateDir = values['state-dir'] ?? join(host.stateDir, 'server');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const keyFile = join(stateDir, 'log-link.key');
  if (!existsSync(keyFile)) writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  const port = Number(values.port);
  const concurrency = values.concurrency === undefined ? hostCapacity(cpus().length, totalmem(), DEFAULT_LIMITS.memoryBytes) : Number(values.concurrency);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new StockadeError('USAGE', `--port '${values.port}' is not a port number`);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new StockadeError('USAGE', `--concurrency '${values.concurrency}' is not 1 to 64`);
  if (!values['tls-cert'] !== !values['tls-key']) throw new StockadeError('USAGE', '--tls-cert and --tls-key go together');
  const tls = values['tls-cert'] && values['tls-key'] ? { cert: readSecret(values['tls-cert'], undefined, 'the TLS certificate'), key: readSecret(values['tls-key'], undefined, 'the TLS key') } : undefined;
  const images = labelImages(host);
  const sandbox = await openSandbox({ socketPath: host.socketPath, stateDir: host.stateDir, seccompProfileJson: readFileSync(join(host.packageRoot, 'seccomp/stockade.json'), 'utf8'), logger });
  // A long-running host: each job with egress finds its network and sidecar made ahead (after the first such job).
  const helperPool = enableHelperPool(sandbox);
  const lease = Number(values['lease-seconds']);
  if (!Number.isInteger(lease) || lease < 2 || lease > 3600) throw new StockadeError('USAGE', `--lease-seconds '${values['lease-seconds']}' is not 2 to 3600`);
  const drain = Number(values['drain-seconds']);
  if (!Number.isInteger(drain) || drain < 0 || drain > 86400) throw new StockadeError('USAGE', `--drain-seconds '${values['drain-seconds']}' is not 0 to 86400`);
  const hostLoss = values['host-loss'];
  if (hostLoss !== 'fail' && hostLoss !== 'requeue') throw new StockadeError('USAGE', `--host-loss '${String(hostLoss)}' is not fail or requeue`);
  const store: ServerStore = await openServerStore(values.database, stateDir, logger);
  const github = new GitHubApi({ appId, privateKey, baseUrl: values['api-url'], logger, requestPacing: !values['no-request-pacing'] });
  const labels = [...(values.labels ? values.labels.split(',').map((l) => l.trim()).filter(Boolean) : DEFAULT_RUNNER_LABELS), ...Object.keys(images)];
  const runner = await runnerMode(values, { host, sandbox, github, labels: values.labels ? values.labels.split(',').map((l) => l.trim()).filter(Boolean) : DEFAULT_RUNNER_LABELS, imagePolicy: config?.imagePolicy, disk: diskLimitsFrom(values.disk, given.inodes), logger });
  const settings: Omit<JobSettings, 'sourceDir'> = { image: baseImageRef(host), limits: DEFAULT_LIMITS, readOnlyRoot: true, actionCacheDir: values['action-cache'], nodeBinary: process.execPath, parallelJobs: 1, images, imagePolicy: config?.imagePolicy, actionPolicy: actionPolicyFrom(values), disk: diskLimitsFrom(values.disk, given.inodes), toolCacheDir: toolCacheDirFrom(values['tool-cache']), podmanUser: (args: string[]) => asRunner(host, args), githubApi: githubApiUrls(values['api-url']!), results: resultsSettings(host, { dir: values['results-dir'], cacheQuota: values['cache-quota'], artifactQuota: values['artifact-quota'] }) };
  const server = new StockadeServer({
    store,
    github,
    jit: runner?.jit,
    sandbox,
    logger,
    settings,
    webhookSecret,
    // Remote actions are fetched with the installation's token into the host's action cache.
    fetchAction: values['action-offline-mode'] ? undefined : ((fetcher) => (id: number, owner: string, repo: string, ref: string) => fetcher.fetch(github.actionArchives(id), owner, repo, ref))(actionFetcher(host.stateDir)),
    // A job may name a runner image among its runs-on labels: those labels are this runner's too.
    labels,
    publicUrl: values['public-url'] ?? `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    logKey: readFileSync(keyFile),
    workDir: join(stateDir, 'work'),
    secrets: secretsFrom(values['secrets-file']),
    concurrency,
    reconcileIntervalMs: Number(values['reconcile-seconds']) * 1000,
    cancelGitHubRun: !!values['cancel-github-run'],
    modes: modes as Set<'workflow_job' | 'app'>,
    adminPort: values['admin-port'] === undefined ? undefined : Number(values['admin-port']),
    adminHost: values['admin-host'],
    quotaDefaults,
    egressFor: config?.egress(host.packageRoot),
    priorities: config?.priorities,
    burstPerMinute: burst,
    githubBackoff: backoffFrom(values['github-retry-seconds'], values['github-give-up-seconds']),
    port,
    tls,
    host: values.host!,
    hostId: values['host-id'] ? `${values['host-id']}/${randomBytes(3).toString('hex')}` : undefined,
    leaseMs: lease * 1000,
    hostLoss,
    drainMs: drain * 1000,
    // Under systemd its own unit restarts the Podman API service (Restart=always); otherwise the server does.
    restartEngine: env.INVOCATION_ID ? undefined : () => startPodmanService(host, (m) => logger.warn(m)),
  });
  // Retention, so a server that runs for a year does not fill its disk: at start, then hourly.
  const retention = retentionFrom(values);
  const prune = async () => {
    try {
      const c = await store.prune(retention);
      if (c.jobs + c.logs + c.deliveries + c.usage) logger.info({ pruned: c }, `retention: ${describePrune(c)}`);
    } catch (e) {
      logger.error({ err: e }, 'retention pass failed');
    }
  };
  await prune();
  const pruneTimer = setInterval(() => void prune(), 3600_000);
  pruneTimer.unref();
  const addr = await server.start();
  // The first job's helpers (its results forwarder; with egress configured, its network and sidecar) are made now, not when it arrives.
  // In runner mode GitHub's runner runs the jobs through the hook, which has no results forwarder: nothing is primed.
  if (!runner) primeHelperPool(helperPool, sandbox, { logger, image: settings.image, limits: settings.limits, nodeBinary: settings.nodeBinary, results: settings.results, sidecarScript: config?.egressConfigured ? join(host.packageRoot, 'dist/sidecar.js') : undefined }).catch((e: unknown) => logger.warn({ err: e }, 'the first job helpers could not be made ahead'));
  const admin = server.adminAddress();
  process.stderr.write(`stockade serve: listening on ${addr.address}:${addr.port}${admin ? `; admin API on ${admin.address}:${admin.port}` : ''}\n`);
  await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })));
  clearInterval(pruneTimer);
  await server.stop();
  runner?.close();
  await helperPool.close();
  await store.close();
  return 0;
}

/** --github-retry-seconds (first delay, doubling to 10 min) and --github-give-up-seconds for GitHub writes that fail. */
function backoffFrom(retry: string | undefined, giveUp: string | undefined): BackoffPolicy {
  const num = (v: string | undefined, flag: string, def: number, max: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || n > max) throw new StockadeError('USAGE', `--${flag} '${v}' is not a number of seconds from 0 to ${max}`);
    return n * 1000;
  };
  return { ...DEFAULT_BACKOFF, initialMs: num(retry, 'github-retry-seconds', DEFAULT_BACKOFF.initialMs / 1000, 3600), giveUpMs: num(giveUp, 'github-give-up-seconds', DEFAULT_BACKOFF.giveUpMs / 1000, 30 * 86400) };
}
