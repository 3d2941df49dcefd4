import { readFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { parseArgs } from 'node:util';
import { StockadeError, type Logger } from '../common';
import { checkRunnable, runWorkflow, selectJobs, type JobResult, type RunObserver } from '../runner';
import { DEFAULT_LIMITS, openSandbox, type ResourceLimits } from '../sandbox';
import { formatDiagnostic } from '../workflow';
import { baseImageRef } from './base-image';
import { formatResults } from './format-results';
import { gitFacts } from './git-context';
import { resolveHostConfig } from './host-config';
import { loadWorkflows } from './load-workflows';
import { parseDuration, parseSize } from './parse-size';

export const RUN_USAGE = `usage: stockade run [--workflow FILE] [--job ID] [--event NAME] [--eventpath FILE] [--json]
                    [--dir DIR] [--image REF] [--memory SIZE] [--pids N] [--cpus N] [--timeout DURATION]
                    [--output-limit SIZE] [--writable-root]`;

function limitsFrom(v: Record<string, string | boolean | undefined>): ResourceLimits {
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

/** `stockade run`: runs a repository's workflow jobs locally, one sandboxed container per step. Returns the exit code. */
export async function runCommand(argv: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream, logger: Logger, signal: AbortSignal): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      workflow: { type: 'string', short: 'W' },
      job: { type: 'string', short: 'j' },
      event: { type: 'string', short: 'e' },
      eventpath: { type: 'string' },
      json: { type: 'boolean' },
      dir: { type: 'string', short: 'C' },
      image: { type: 'string' },
      memory: { type: 'string' },
      pids: { type: 'string' },
      cpus: { type: 'string' },
      timeout: { type: 'string' },
      'output-limit': { type: 'string' },
      'writable-root': { type: 'boolean' },
    },
  });
  const limits = limitsFrom(values);
  const dir = resolve(values.dir ?? process.cwd());
  const eventName = values.event ?? 'push';
  let event: Record<string, unknown> = {};
  if (values.eventpath) {
    try {
      event = JSON.parse(readFileSync(values.eventpath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new StockadeError('USAGE', `--eventpath ${values.eventpath}: ${(e as Error).message}`);
    }
  }
  const loaded = loadWorkflows(dir, values.workflow ? resolve(dir, values.workflow) : undefined, eventName);
  const plan = loaded.workflows.map((wf) => ({ wf, jobs: selectJobs(wf, values.job) }));
  const diagnostics = [...loaded.diagnostics];
  for (const p of plan) {
    if ('error' in p.jobs) diagnostics.push({ file: p.wf.file, line: 1, column: 1, severity: 'error', message: p.jobs.error });
    else diagnostics.push(...checkRunnable(p.wf, p.jobs));
  }
  if (diagnostics.length) {
    for (const d of diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    return 2;
  }
  if (!plan.length) throw new StockadeError('USAGE', `no workflow in ${join(dir, '.github/workflows')} runs on '${eventName}'`, { hint: 'pass --workflow FILE or --event NAME' });

  const host = resolveHostConfig(env);
  const sandbox = await openSandbox({
    socketPath: host.socketPath,
    stateDir: host.stateDir,
    seccompProfileJson: readFileSync(join(host.packageRoot, 'seccomp/stockade.json'), 'utf8'),
    logger,
  });
  await sandbox.reap();
  const image = values.image ?? baseImageRef(host);
  if (!(await sandbox.deps.engine.imageExists(image))) {
    throw new StockadeError('HOST_NOT_READY', `image ${image} is not present`, { hint: 'run `stockade setup` (builds the base image) or pass --image' });
  }
  const git = await gitFacts(dir);
  const observer: RunObserver | undefined = values.json
    ? undefined
    : {
        line: (job, step, _s, text) => out.write(`[${job}] ${step} | ${text}\n`),
        stepStarted: (job, s) => out.write(`[${job}] ⏵ ${s.name}\n`),
        stepFinished: (job, r) => out.write(`[${job}] ${r.conclusion === 'success' ? '✓' : r.conclusion === 'skipped' ? '-' : '✗'} ${r.name} (${r.conclusion}${r.error ? `: ${r.error}` : ''})\n`),
      };
  const results: JobResult[] = [];
  for (const p of plan) {
    if ('error' in p.jobs) continue;
    const ctx = {
      ...git,
      eventName,
      event,
      runId: String(Date.now()),
      runNumber: 1,
      runAttempt: 1,
      workflowName: p.wf.name ?? p.wf.file,
      serverUrl: 'https://github.com',
    };
    results.push(...(await runWorkflow({ sandbox, logger, observer, signal }, p.wf, p.jobs, ctx, { image, limits, readOnlyRoot: !values['writable-root'], sourceDir: dir })));
  }
  out.write(formatResults(results, !!values.json));
  if (signal.aborted) return 130;
  return results.every((j) => j.conclusion === 'success' || j.conclusion === 'skipped') ? 0 : 1;
}
