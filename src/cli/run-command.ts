import { parseOptions } from './parse-options';
import { readFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { StockadeError, type Logger } from '../common';
import { checkRunnable, maskerFor, runWorkflow, selectJobs, type ImagePolicy, type JobResult, type RunContext, type RunObserver } from '../runner';
import { DEFAULT_LIMITS, openSandbox, type ResourceLimits } from '../sandbox';
import { formatDiagnostic, normalizeOn, type JobModel } from '../workflow';
import { parse as parseDotenv } from 'dotenv';
import { REMOTE_ACTION_OPTIONS, REMOTE_ACTION_USAGE, localActionSettings } from './remote-actions';
import { containerMap, githubInstanceUrl, toolCacheDirFrom } from './run-options';
import { baseImageRef } from './base-image';
import { asRunner } from './exec';
import { formatResults } from './format-results';
import { gitFacts } from './git-context';
import { since, StatusLine } from './progress';
import { resolveHostConfig } from '../host';
import { loadWorkflows } from './load-workflows';
import { graphJobs, listJobs } from './list-jobs';
import { parseDuration, parseSize } from '../common';
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

export function limitsFrom(v: Record<string, string | string[] | boolean | undefined>): ResourceLimits {
  const limits = { ...DEFAULT_LIMITS };
  const bad = (flag: string, value: string, form: string) => new StockadeError('USAGE', `--${flag} '${value}' is not ${form}`);
  const size = (flag: string) => {
    const t = v[flag] as string | undefined;
    if (t === undefined) return undefined;
    const n = parseSize(t);
    if (n === undefined) throw bad(flag, t, 'a size such as 512m or 2g');
    return n;
  };
  const num = (flag: string) => {
    const t = v[flag] as string | undefined;
    if (t === undefined) return undefined;
    const n = Number(t);
    if (!Number.isFinite(n) || n <= 0) throw bad(flag, t, 'a positive number');
    return n;
  };
  limits.memoryBytes = size('memory') ?? limits.memoryBytes;
  limits.outputBytes = size('output-limit') ?? limits.outputBytes;
  limits.pids = num('pids') ?? limits.pids;
  limits.cpus = num('cpus') ?? limits.cpus;
  if (typeof v.timeout === 'string') {
    const ms = parseDuration(v.timeout);
    if (ms === undefined) throw bad('timeout', v.timeout, 'a duration such as 90s or 10m');
    limits.timeoutMs = ms;
  }
  return limits;
}

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

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `NAME=VALUE` flags → a map; names as GitHub allows them for secrets and variables. */
function pairs(flag: string, list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    const name = eq > 0 ? item.slice(0, eq) : '';
    if (!NAME.test(name)) throw new StockadeError('USAGE', `--${flag} needs NAME=VALUE with a name of letters, digits and _ (got '${name || item.slice(0, 40)}')`);
    out[name] = item.slice(eq + 1);
  }
  return out;
}

/** A dotenv file of --secret-file, --var-file or --input-file (act's format), names checked. */
function readDotenv(file: string, flag = 'secret-file'): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new StockadeError('USAGE', `--${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const parsed = parseDotenv(text);
  for (const k of Object.keys(parsed)) if (!NAME.test(k)) throw new StockadeError('USAGE', `--${flag} ${file}: '${k}' is not a valid ${flag.replace('-file', '')} name`);
  return parsed;
}

/**
 * `-P LABEL=IMAGE` (act's --platform): a runs-on label → a runner image by name (full, node, …) or a
 * local image reference. The label is matched as GitHub matches labels, case-insensitively.
 */
function platformMap(list: string[] | undefined, labels: Record<string, string>, own: () => Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    const label = eq > 0 ? item.slice(0, eq).trim().toLowerCase() : '';
    const target = item.slice(eq + 1).trim();
    if (!label || !target || /\s/.test(target)) throw new StockadeError('USAGE', `-P needs LABEL=IMAGE, as in act (-P ubuntu-latest=full); got '${item.slice(0, 80)}'`);
    if (!/^[a-z0-9][a-z0-9._/:@-]{0,254}$/.test(target)) throw new StockadeError('USAGE', `-P ${label}: '${target.slice(0, 80)}' is not an image name`);
    out[label] = labels[target] ?? (target.includes('/') || target.includes(':') ? target : own()[target]) ?? (() => {
      throw new StockadeError('USAGE', `-P ${label}=${target}: no runner image '${target}' (${Object.keys(own()).join(', ')}) and not an image reference`);
    })();
  }
  return out;
}

/** `--matrix key:value` (repeatable, as in act): only combinations whose `key` is one of its values run. */
function matrixFilter(list: string[] | undefined): Record<string, string[]> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string[]> = {};
  for (const item of list) {
    const i = item.indexOf(':');
    if (i <= 0) throw new StockadeError('USAGE', `--matrix needs KEY:VALUE (got '${item.slice(0, 40)}')`);
    (out[item.slice(0, i)] ??= []).push(item.slice(i + 1));
  }
  return out;
}

/** `inputs` of a workflow_dispatch run: the workflow's defaults, typed, overridden by --input. */
export function dispatchInputs(on: unknown, given: Record<string, string>): Record<string, unknown> {
  const cfg = normalizeOn(on).get('workflow_dispatch');
  const declared = ((cfg?.inputs ?? {}) as Record<string, Record<string, unknown> | null>) ?? {};
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const type = String(spec?.type ?? 'string');
    const raw = name in given ? given[name]! : spec?.default === undefined || spec?.default === null ? undefined : String(spec.default);
    if (raw === undefined) {
      if (spec?.required === true) throw new StockadeError('USAGE', `workflow_dispatch input '${name}' is required; pass --input ${name}=VALUE`);
      out[name] = type === 'boolean' ? false : '';
      continue;
    }
    if (type === 'boolean') {
      if (raw !== 'true' && raw !== 'false') throw new StockadeError('USAGE', `input '${name}' is a boolean; '${raw}' is not true or false`);
      out[name] = raw === 'true';
    } else if (type === 'number') {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new StockadeError('USAGE', `input '${name}' is a number; '${raw}' is not`);
      out[name] = n;
    } else if (type === 'choice') {
      const options = Array.isArray(spec?.options) ? spec.options.map(String) : [];
      if (!options.includes(raw)) throw new StockadeError('USAGE', `input '${name}' must be one of ${options.join(', ')}; got '${raw}'`);
      out[name] = raw;
    } else out[name] = raw;
  }
  for (const k of Object.keys(given)) if (!(k in declared)) throw new StockadeError('USAGE', `--input ${k}: the workflow declares no such workflow_dispatch input`);
  return out;
}

/** A payload like GitHub's for a local run without --eventpath. */
function defaultEvent(eventName: string, git: { sha: string; ref: string; repository: string; actor: string }): Record<string, unknown> {
  const [owner = '', name = ''] = git.repository.split('/');
  const repository = { full_name: git.repository, name, owner: { login: owner }, default_branch: 'main' };
  const base = { repository, sender: { login: git.actor } };
  if (eventName === 'push') return { ...base, ref: git.ref, after: git.sha, before: '0'.repeat(40), head_commit: { id: git.sha } };
  if (eventName === 'workflow_dispatch') return { ...base, ref: git.ref, inputs: {} };
  return base;
}

/** github.ref and github.sha as GitHub sets them from the event payload, when one is given. */
function withEventRef<T extends { sha: string; ref: string }>(git: T, eventName: string, event: Record<string, unknown>): T {
  const pr = event.pull_request as { head?: { sha?: unknown } } | undefined;
  if ((eventName === 'pull_request' || eventName === 'pull_request_target') && typeof event.number === 'number') {
    return { ...git, ref: eventName === 'pull_request' ? `refs/pull/${event.number}/merge` : git.ref, sha: typeof pr?.head?.sha === 'string' ? pr.head.sha : git.sha };
  }
  const out = { ...git };
  if (typeof event.ref === 'string' && event.ref.startsWith('refs/')) out.ref = event.ref;
  if (typeof event.after === 'string' && /^[0-9a-f]{40}$/.test(event.after)) out.sha = event.after;
  return out;
}
