import { parseOptions } from './parse-options';
import { readFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { StockadeError, type Logger } from '../common';
import { checkRunnable, maskerFor, runWorkflow, selectJobs, type ImagePolicy, type JobResult, type RunContext, type RunObserver } from '../runner';
import { openSandbox } from '../sandbox';
import { formatDiagnostic, type JobModel } from '../workflow';
import { REMOTE_ACTION_OPTIONS, REMOTE_ACTION_USAGE, localActionSettings } from './remote-actions';
import { containerMap, githubInstanceUrl, limitsFrom, matrixFilter, pairs, platformMap, readDotenv, toolCacheDirFrom } from './run-options';
import { defaultEvent, dispatchInputs, withEventRef } from './run-event';
export { dispatchInputs, limitsFrom };
import { baseImageRef } from './base-image';
import { asRunner } from './exec';
import { formatResults } from './format-results';
import { gitFacts } from './git-context';
import { since, StatusLine } from './progress';
import { resolveHostConfig } from '../host';
import { loadWorkflows } from './load-workflows';
import { graphJobs, listJobs } from './list-jobs';
import { diskLimitsFrom, egressSettings, upstreamDnsFrom, labelImages, runnerImages, resultsSettings, githubApiOf } from '../host';

export const RUN_USAGE = `usage: stockade run [EVENT] [-l|--list] [-g|--graph] [-n|--dryrun] [-W|--workflows FILE|DIR] [-j|--job ID] [-e|--eventpath FILE] [--json]
                    [-s|--secret NAME=VALUE]... [--secret-file FILE] [--var NAME=VALUE]... [--var-file FILE]
                    [--env NAME=VALUE]... [--env-file FILE] [-i|--input NAME=VALUE]... [--input-file FILE] [--matrix KEY:VALUE]...
                    [-P|--platform LABEL=IMAGE]...
                    [--action-cache DIR] ${REMOTE_ACTION_USAGE}
                    [--parallel N] [--debug]
                    [--dir DIR] [--image REF] [--memory SIZE] [--pids N] [--cpus N] [--timeout DURATION]
                    [--output-limit SIZE] [--writable-root] [--disk 10g|off] [--inodes 1000000]
                    [--allow-domain NAME]... [--egress-audit] [--upstream-dns ADDRESS] [--permit-range CIDR]...
                    [--allow-image PATTERN]... [--allow-digest-pinned] [--container-map REF=LOCAL]...
                    [--results-dir DIR|off] [--cache-quota 10g] [--artifact-quota 10g] [--tool-cache DIR] [--github-instance HOST]
  EVENT is the event to run (default push), as in act; -e is the event's payload file, as in act.
  -l lists the jobs that run on EVENT by stage, -g draws them as a graph; -n validates and plans them and starts nothing.
  -P maps a runs-on label to a runner image (full, node, …) or a local image: -P ubuntu-latest=full, as in act.
  Where Stockade differs from act on purpose: --env-file is read only when given (act reads ./.env by
  default; a developer's .env often holds credentials no workflow should see), and -P names local images
  only (nothing is pulled); --env values are literal and sit below the workflow's env (a runner's machine env).
  --egress-audit: every name is reached and recorded (private ranges stay refused); the summary
  proposes the --allow-domain list that enforces the same. Enforce (the allowlist) stays the default.
  Caches (actions/cache) and artifacts persist per repository in --results-dir (default <state>/results).`;


/** The options of this command: what the parser (commander) accepts and what `stockade completion` offers. */
export const RUN_OPTIONS = {
  workflow: { type: 'string', short: 'W' },
  // act spells it --workflows; a file or a directory of workflows.
  workflows: { type: 'string' },
  job: { type: 'string', short: 'j' },
  event: { type: 'string' },
  // As in act: -e is the event payload file, the event name is the first argument.
  eventpath: { type: 'string', short: 'e' },
  list: { type: 'boolean', short: 'l' },
  graph: { type: 'boolean', short: 'g' },
  env: { type: 'string', multiple: true },
  'env-file': { type: 'string' },
  platform: { type: 'string', short: 'P', multiple: true },
  dryrun: { type: 'boolean', short: 'n' },
  json: { type: 'boolean' },
  dir: { type: 'string', short: 'C' },
  image: { type: 'string' },
  memory: { type: 'string' },
  pids: { type: 'string' },
  cpus: { type: 'string' },
  timeout: { type: 'string' },
  'output-limit': { type: 'string' },
  'writable-root': { type: 'boolean' },
  disk: { type: 'string' },
  inodes: { type: 'string' },
  secret: { type: 'string', short: 's', multiple: true },
  'secret-file': { type: 'string' },
  var: { type: 'string', multiple: true },
  'var-file': { type: 'string' },
  'input-file': { type: 'string' },
  matrix: { type: 'string', multiple: true },
  input: { type: 'string', short: 'i', multiple: true },
  'action-cache': { type: 'string' },
  ...REMOTE_ACTION_OPTIONS,
  parallel: { type: 'string' },
  debug: { type: 'boolean' },
  'allow-domain': { type: 'string', multiple: true },
  'egress-audit': { type: 'boolean' },
  'allow-image': { type: 'string', multiple: true },
  'allow-digest-pinned': { type: 'boolean' },
  'container-map': { type: 'string', multiple: true },
  'upstream-dns': { type: 'string' },
  'permit-range': { type: 'string', multiple: true },
  'results-dir': { type: 'string' },
  'tool-cache': { type: 'string' },
  'github-instance': { type: 'string' },
  'cache-quota': { type: 'string' },
  'artifact-quota': { type: 'string' },
} as const;

/** `stockade run`: runs a repository's workflow jobs locally, one sandboxed container per step. Returns the exit code. */
export async function runCommand(argv: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream, logger: Logger, signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseOptions('run', RUN_OPTIONS, argv, { positionals: true });
  const limits = limitsFrom(values);
  const dir = resolve(values.dir ?? process.cwd());
  if (positionals.length > 1) throw new StockadeError('USAGE', `one event name at most, not '${positionals.join(' ')}'`, { hint: RUN_USAGE });
  if (positionals[0] && values.event && positionals[0] !== values.event) throw new StockadeError('USAGE', `the event is '${positionals[0]}' and --event '${values.event}': name it once`);
  const eventName = positionals[0] ?? values.event ?? 'push';
  let event: Record<string, unknown> = {};
  if (values.eventpath) {
    try {
      event = JSON.parse(readFileSync(values.eventpath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new StockadeError('USAGE', `--eventpath ${values.eventpath}: ${(e as Error).message}`);
    }
  }
  const secrets = { ...(values['secret-file'] ? readDotenv(values['secret-file']) : {}), ...pairs('secret', values.secret) };
  const vars = { ...(values['var-file'] ? readDotenv(values['var-file'], 'var-file') : {}), ...pairs('var', values.var) };
  const machineEnv = { ...(values['env-file'] ? readDotenv(values['env-file'], 'env-file') : {}), ...pairs('env', values.env) };
  const inputValues = { ...(values['input-file'] ? readDotenv(values['input-file'], 'input-file') : {}), ...pairs('input', values.input) };
  const parallel = values.parallel === undefined ? 1 : Number(values.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) throw new StockadeError('USAGE', `--parallel '${values.parallel}' is not a whole number from 1 to 64`);
  const actionCacheDir = values['action-cache'] ? resolve(values['action-cache']) : env.STOCKADE_ACTION_CACHE;
  const serverUrl = githubInstanceUrl(values['github-instance']);
  const remote = localActionSettings(values, env, serverUrl, secrets, () => resolveHostConfig(env).stateDir);
  // Images a job may name besides Stockade's own: --allow-image PATTERN (repeatable, `*` at the end), --allow-digest-pinned.
  const imagePolicy: ImagePolicy = { allow: values['allow-image'] ?? [], allowDigestPinned: !!values['allow-digest-pinned'], map: containerMap(values['container-map']) };
  // Listing and planning need no sandbox: on a host without `stockade setup` only the runner images are unknown.
  const images = (() => {
    try {
      return labelImages(resolveHostConfig(env));
    } catch (e) {
      if (values.list || values.graph || values.dryrun) return {};
      throw e;
    }
  })();
  const platforms = platformMap(values.platform, images, () => runnerImages(resolveHostConfig(env)));
  Object.assign(images, platforms);
  const git = withEventRef(await gitFacts(dir), eventName, event);
  if (!values.eventpath) event = defaultEvent(eventName, git);
  if (values.workflow && values.workflows) throw new StockadeError('USAGE', '-W/--workflow and --workflows name the same thing: give one');
  const workflowPath = values.workflow ?? values.workflows;
  const loaded = await loadWorkflows(dir, workflowPath ? resolve(dir, workflowPath) : undefined, eventName, event);
  const plan = loaded.workflows.map((wf) => ({ wf, jobs: selectJobs(wf, values.job) }));
  const diagnostics = [...loaded.diagnostics];
  for (const p of plan) {
    if ('error' in p.jobs) diagnostics.push({ file: p.wf.file, line: 1, column: 1, severity: 'error', message: p.jobs.error });
    else diagnostics.push(...checkRunnable(p.wf, p.jobs, { actionCacheDir, imagePolicy, images, ...remote }));
  }
  if (values.graph) {
    out.write(graphJobs(plan.map((p) => ({ wf: p.wf, jobs: 'error' in p.jobs ? p.wf.jobs : p.jobs })), eventName));
    return 0;
  }
  if (values.list) {
    out.write(listJobs(plan.map((p) => ({ wf: p.wf, jobs: 'error' in p.jobs ? p.wf.jobs : p.jobs })), eventName));
    return 0;
  }
  if (diagnostics.length) {
    for (const d of diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    return 2;
  }
  if (!plan.length) throw new StockadeError('USAGE', `no workflow in ${join(dir, '.github/workflows')} runs on '${eventName}'`, { hint: 'name another event (stockade run pull_request) or pass --workflow FILE' });
  if (values.dryrun) {
    out.write(`${listJobs(plan.map((p) => ({ wf: p.wf, jobs: p.jobs as JobModel[] })), eventName, true)}dry run: the workflows are valid and runnable here; nothing was started\n`);
    return 0;
  }

  const host = resolveHostConfig(env);
  const allowDomains = values['allow-domain'] ?? [];
  const audit = !!values['egress-audit'];
  const egress = egressSettings(host.packageRoot, { allow: allowDomains, permittedRanges: values['permit-range'] ?? [], audit }, allowDomains.length || audit ? upstreamDnsFrom(values['upstream-dns']) : '');
  const sandbox = await openSandbox({
    socketPath: host.socketPath,
    stateDir: host.stateDir,
    seccompProfileJson: readFileSync(join(host.packageRoot, 'seccomp/stockade.json'), 'utf8'),
    logger,
  });
  await sandbox.reap();
  const resultsService = resultsSettings(host, { dir: values['results-dir'], cacheQuota: values['cache-quota'], artifactQuota: values['artifact-quota'] });
  const image = values.image ?? baseImageRef(host);
  if (!(await sandbox.deps.engine.imageExists(image))) {
    throw new StockadeError('HOST_NOT_READY', `image ${image} is not present`, { hint: 'run `stockade setup` (builds the base image) or pass --image' });
  }
  // On a terminal, a status line under the log says which step of which job runs and for how long.
  const runningSteps = new Map<string, { name: string; t0: number }>();
  const bar = values.json ? undefined : new StatusLine(out, () => [...runningSteps].map(([job, s]) => `⏵ [${job}] ${s.name} (${since(s.t0)})`).join(' · '));
  const observer: RunObserver | undefined = !bar
    ? undefined
    : {
        line: (job, step, _s, text) => bar.line(`[${job}] ${step} | ${text}`),
        stepStarted: (job, s) => {
          runningSteps.set(job, { name: s.name, t0: Date.now() });
          bar.line(`[${job}] ⏵ ${s.name}`);
        },
        stepFinished: (job, r) => {
          runningSteps.delete(job);
          bar.line(`[${job}] ${r.conclusion === 'success' ? '✓' : r.conclusion === 'skipped' ? '-' : '✗'} ${r.name} (${r.conclusion}${r.error ? `: ${r.error}` : ''})`);
        },
      };
  const results: JobResult[] = [];
  const debug = !!values.debug || secrets.ACTIONS_STEP_DEBUG === 'true' || vars.ACTIONS_STEP_DEBUG === 'true';
  const masker = maskerFor(secrets);
  for (const p of plan) {
    if ('error' in p.jobs) continue;
    const inputs = eventName === 'workflow_dispatch' ? dispatchInputs(p.wf.on, inputValues) : {};
    const wfEvent = eventName === 'workflow_dispatch' && !values.eventpath ? { ...event, inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, String(v)])) } : event;
    const ctx: RunContext = {
      ...git,
      eventName,
      event: wfEvent,
      runId: String(Date.now()),
      runNumber: 1,
      runAttempt: 1,
      workflowName: p.wf.name ?? p.wf.file,
      serverUrl,
      secrets,
      vars,
      inputs,
      debug,
    };
    const settings = { image, limits, machineEnv, readOnlyRoot: !values['writable-root'], sourceDir: dir, actionCacheDir, nodeBinary: process.execPath, parallelJobs: parallel, egress, images, imagePolicy, disk: diskLimitsFrom(values.disk, values.inodes), matrixFilter: matrixFilter(values.matrix), results: resultsService, githubApi: githubApiOf(serverUrl), ...remote, toolCacheDir: toolCacheDirFrom(values['tool-cache']), podmanUser: (args: string[]) => asRunner(host, args) };
    results.push(...(await runWorkflow({ sandbox, logger, observer, signal }, p.wf, p.jobs, ctx, settings)));
  }
  bar?.done();
  // Results are masked as they are made; this is the last guard before anything leaves the process.
  out.write(masker.mask(formatResults(results, !!values.json)));
  if (signal.aborted) return 130;
  return results.every((j) => j.conclusion === 'success' || j.conclusion === 'skipped') ? 0 : 1;
}
