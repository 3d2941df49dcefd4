import type { ServerJob } from './plan-delivery';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Phases, sha256Hex, type Logger } from '../common';
import type { CheckConclusion, JobReport } from '../github';
import { checkRunnable, findJobInstance, readWorkflowFiles, runJob, runWorkflow, selectJobs, type EgressSettings, type JobResult, type JobSettings, type JobTokenSource, type RunContext, type RunObserver } from '../runner';
import type { Sandbox } from '../sandbox';
import { formatDiagnostic, parseWorkflowText, workflowRunsFor, type Diagnostic, type WorkflowModel } from '../workflow';
import { extractTarball, type TarballLimits } from '../host';
import type { AppSpec, WorkflowJobSpec } from './plan-delivery';
import type { GitHubPort } from './ports';

/** Bytes of masked log kept per job for the log page. */
export const MAX_JOB_LOG_BYTES = 8 * 1024 * 1024;

export interface ExecuteDeps {
  github: GitHubPort;
  sandbox: Sandbox;
  logger: Logger;
  settings: Omit<JobSettings, 'sourceDir'>;
  workDir: string;
  /** The widest egress a repository's jobs may have (the server's config); undefined: no network. */
  egressFor?(repository: string): EgressSettings | undefined;
  /** Secrets of a repository (never used for jobs from forks). */
  secrets(repository: string): Record<string, string>;
  /** The stored payload of a delivery (app mode matches `on:` against it). */
  payloadOf(guid: string): Promise<Record<string, unknown>>;
  /** Called with a line of progress (throttled by the caller). */
  progress?(stepName: string): void;
  /** Called with every (masked) log line as it is made: the job page's live view. */
  line?(text: string): void;
  signal?: AbortSignal;
  /** What a repository archive may cost (download and extraction). */
  tarballLimits?: Partial<TarballLimits>;
  /** Fetches a remote action with the installation's token; undefined: the offline cache only. */
  fetchAction?(installationId: number, owner: string, repo: string, ref: string): Promise<{ dir: string; sha: string }>;
}

/** The job's settings with its installation's way to fetch remote actions. */
function jobSettings(d: ExecuteDeps, row: ServerJob): Omit<JobSettings, 'sourceDir'> {
  const fetch = d.fetchAction;
  return fetch ? { ...d.settings, actionSource: { fetch: (owner, repo, ref) => fetch(row.installationId, owner, repo, ref) } } : d.settings;
}

export interface Executed {
  report: JobReport;
  log: string;
}

function fail(name: string, error: string, log: string[] = []): Executed {
  return { report: { name, conclusion: 'failure', steps: [], stepSummary: '', log: [...log, `##[error]${error}`], error, annotations: [{ level: 'error', message: error }] }, log: [...log, error].join('\n') };
}

/** A job refused by validation: the error lists every diagnostic, and each is an annotation at its file, line and column. */
export function invalid(name: string, heading: string, diagnostics: Diagnostic[]): Executed {
  const r = fail(name, `${heading}:\n${diagnostics.map(formatDiagnostic).join('\n')}`);
  r.report.annotations = diagnostics.slice(0, 500).map((d) => ({ level: d.severity === 'warning' ? 'warning' : 'error', message: d.message, file: d.file, line: d.line, column: d.column }));
  return r;
}

function conclusionOf(r: JobResult): CheckConclusion {
  if (r.conclusion === 'failure' && r.steps.some((s) => s.reason === 'timeout' && s.conclusion === 'failure')) return 'timed_out';
  return r.conclusion;
}

/** Runs what a stored row describes and returns what to report. Never throws. */
export async function executeJob(d: ExecuteDeps, row: ServerJob): Promise<Executed> {
  const spec = row.spec;
  return spec.mode === 'app' ? executeApp(d, row, spec) : executeWorkflowJob(d, row, spec);
}

/** A job's own directory: named from a hash of the whole key, so two jobs never share one (a truncated prefix did). */
export function jobWorkDir(workDir: string, key: string): string {
  return join(workDir, sha256Hex(key).slice(0, 32));
}

function logCollector(d: ExecuteDeps): { lines: string[]; observer: RunObserver } {
  const lines: string[] = [];
  let bytes = 0;
  return {
    lines,
    observer: {
      stepStarted: (_j, s) => d.progress?.(s.name),
      line: (job, step, _s, t) => {
        if (bytes > MAX_JOB_LOG_BYTES) return;
        const l = `${job} | ${step} | ${t}`;
        d.line?.(l);
        bytes += l.length + 1;
        lines.push(bytes > MAX_JOB_LOG_BYTES ? '… (log cut here)' : l);
      },
    },
  };
}

/** App mode: every workflow under `.stockade/workflows/` whose `on:` matches the event runs; one report for all. */
async function executeApp(d: ExecuteDeps, row: ServerJob, spec: AppSpec): Promise<Executed> {
  const log = d.logger.child({ job: row.key });
  const dir = jobWorkDir(d.workDir, row.key);
  const name = `workflows (${spec.event})`;
  try {
    const payload = await d.payloadOf(row.deliveryGuid);
    await rm(dir, { recursive: true, force: true });
    await extractTarball(await d.github.downloadTarball(row.installationId, spec.owner, spec.repo, row.headSha), dir, d.tarballLimits);
    const { files, diagnostics: readErrors } = await readWorkflowFiles(dir, '.stockade/workflows');
    const diagnostics: Diagnostic[] = [...readErrors];
    const workflows: WorkflowModel[] = [];
    for (const f of files) {
      const parsed = parseWorkflowText(f.path, f.text);
      diagnostics.push(...parsed.diagnostics.filter((x) => x.severity === 'error'));
      if (parsed.value && workflowRunsFor(parsed.value.on, spec.event, payload).runs) workflows.push(parsed.value);
    }
    if (diagnostics.length) return invalid(name, 'invalid workflows', diagnostics);
    if (!workflows.length) {
      return { report: { name, conclusion: 'skipped', steps: [], stepSummary: `No workflow under .stockade/workflows/ runs for ${spec.event} (${files.length} found).`, log: [], annotations: [] }, log: '' };
    }
    const { lines, observer } = logCollector(d);
    const results: JobResult[] = [];
    for (const wf of workflows) {
      const jobs = selectJobs(wf);
      if ('error' in jobs) return fail(name, jobs.error);
      const problems = checkRunnable(wf, jobs, jobSettings(d, row));
      if (problems.length) return invalid(name, 'the workflow cannot run here', problems);
      const ctx: RunContext = {
        repository: row.repository,
        sha: row.headSha,
        ref: spec.ref,
        eventName: spec.event,
        event: payload,
        actor: String(((payload.sender ?? {}) as Record<string, unknown>).login ?? ''),
        runId: String(row.createdAt),
        runNumber: 1,
        runAttempt: 1,
        workflowName: wf.name ?? wf.file,
        serverUrl: 'https://github.com',
        // GitHub never gives secrets to workflows from forks; neither does Stockade.
        secrets: spec.fromFork ? {} : d.secrets(row.repository),
        // Nor variables (https://docs.github.com/actions/learn-github-actions/variables).
        vars: spec.fromFork ? {} : await d.github.listVariables(row.installationId, spec.owner, spec.repo),
        inputs: {},
        debug: false,
      };
      results.push(...(await runWorkflow({ sandbox: d.sandbox, logger: log, signal: d.signal, observer }, wf, jobs, ctx, { ...jobSettings(d, row), sourceDir: dir, disposableSource: true, egress: d.egressFor?.(row.repository), jobToken: jobTokens(d.github, row, spec.owner, spec.repo, spec.fromFork, log) })));
    }
    return { report: reportOf(name, results), log: lines.join('\n') };
  } catch (e) {
    log.error({ err: e }, 'workflows could not run');
    return fail(name, (e as Error).message);
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function reportOf(name: string, results: JobResult[]): JobReport {
  const c = results.map((r) => conclusionOf(r));
  const conclusion: CheckConclusion = c.includes('failure') ? 'failure' : c.includes('timed_out') ? 'timed_out' : c.includes('cancelled') ? 'cancelled' : c.every((x) => x === 'skipped') ? 'skipped' : 'success';
  const multi = results.length > 1;
  const prefix = (j: JobResult, s: string) => (multi ? `${j.name} / ${s}` : s);
  return {
    name,
    conclusion,
    steps: results.flatMap((j) => (j.steps.length ? j.steps : [{ name: '(job)', conclusion: j.conclusion, durationMs: j.durationMs, peakMemoryBytes: 0, reason: j.error ? 'error' : j.conclusion, exitCode: null }]).map((s) => ({ name: prefix(j, s.name), conclusion: s.conclusion, durationMs: s.durationMs, peakMemoryBytes: s.peakMemoryBytes, exitReason: s.reason === 'exit' ? `exit ${s.exitCode}` : String(s.reason) }))),
    stepSummary: results.map((j) => j.summary).filter(Boolean).join('\n\n'),
    log: results.flatMap((j) => j.steps.flatMap((s) => s.log.map((l) => `${prefix(j, s.name)} | ${l}`))),
    error: results.map((j) => (j.error ? `${j.name}: ${j.error}` : '')).filter(Boolean).join('; ') || undefined,
    annotations: results.flatMap((j) => j.steps.flatMap((s) => s.annotations)),
    ...networkOf(results),
    ...diskOf(results),
    ...actionsOf(results),
  };
}

/** The remote actions the run's jobs ran, each once, with its commit. */
function actionsOf(results: JobResult[]): Pick<JobReport, 'actions'> {
  const seen = new Map<string, { uses: string; sha?: string }>();
  for (const a of results.flatMap((j) => j.actions ?? [])) if (!seen.has(a.uses)) seen.set(a.uses, { uses: a.uses, sha: a.sha });
  return seen.size ? { actions: [...seen.values()] } : {};
}

/** The largest disk use of the run's jobs (each job has a disk of its own). */
function diskOf(results: JobResult[]): Pick<JobReport, 'disk'> {
  const withDisk = results.filter((j) => j.disk);
  if (!withDisk.length) return {};
  return { disk: withDisk.map((j) => j.disk!).reduce((a, b) => (b.bytesUsed / b.bytesLimit > a.bytesUsed / a.bytesLimit ? b : a)) };
}

/** The jobs' egress counts added up (jobs without egress have none). */
function networkOf(results: JobResult[]): Pick<JobReport, 'network'> {
  const withEgress = results.filter((j) => j.egress);
  if (!withEgress.length) return {};
  const sum = (f: (e: NonNullable<JobResult['egress']>) => number) => withEgress.reduce((a, j) => a + f(j.egress!), 0);
  return {
    network: {
      dnsAllowed: sum((e) => e.dnsAllowed),
      dnsRefused: sum((e) => e.dnsRefused),
      connectionsAllowed: sum((e) => e.connectionsAllowed),
      connectionsRefused: sum((e) => e.connectionsRefused),
      bytesOut: sum((e) => e.bytesOut),
      refusals: withEgress.flatMap((j) => j.egress!.refusals.map((r) => (withEgress.length > 1 ? `${j.name}: ${r}` : r))).slice(0, 50),
      ...(withEgress.some((j) => j.egress!.audited) ? { audited: [...new Set(withEgress.flatMap((j) => j.egress!.audited ?? []))].sort().slice(0, 500) } : {}),
    },
  };
}

/** The run context of a workflow_job as GitHub describes its run (secrets given by the caller: none for forks). */
export function workflowJobContext(row: ServerJob, spec: WorkflowJobSpec, run: Awaited<ReturnType<GitHubPort['getWorkflowRun']>>, workflowName: string, secrets: Record<string, string>): RunContext {
  return {
    repository: row.repository,
    sha: row.headSha,
    ref: '',
    eventName: run.event,
    event: {},
    actor: run.actor,
    runId: String(spec.runId),
    runNumber: run.runNumber,
    runAttempt: spec.runAttempt,
    workflowName,
    serverUrl: 'https://github.com',
    secrets,
    vars: {},
    inputs: {},
    debug: false,
  };
}

async function executeWorkflowJob(d: ExecuteDeps, row: ServerJob, spec: WorkflowJobSpec): Promise<Executed> {
  const log = d.logger.child({ job: row.key });
  const dir = jobWorkDir(d.workDir, row.key);
  const phases = new Phases();
  // The source is fetched while the workflow is read (both are GitHub round trips on the job's way to its first step).
  await rm(dir, { recursive: true, force: true });
  const source = (async () => extractTarball(await d.github.downloadTarball(row.installationId, spec.owner, spec.repo, row.headSha), dir, d.tarballLimits))();
  source.catch(() => undefined);
  try {
    const run = await d.github.getWorkflowRun(row.installationId, spec.owner, spec.repo, spec.runId);
    // GitHub never gives secrets to workflows from forks; neither does Stockade.
    const fork = run.fromFork || spec.untrusted === true;
    const [text, vars] = await Promise.all([d.github.getFileText(row.installationId, spec.owner, spec.repo, run.path, row.headSha), fork ? {} : d.github.listVariables(row.installationId, spec.owner, spec.repo)]);
    const parsed = parseWorkflowText(run.path, text);
    if (!parsed.value) return invalid(spec.jobName, 'the workflow is invalid', parsed.diagnostics);
    const wf = parsed.value;
    const ctx = { ...workflowJobContext(row, spec, run, wf.name ?? run.path, fork ? {} : d.secrets(row.repository)), vars };
    const instance = findJobInstance(wf, spec.jobName, ctx);
    if ('error' in instance) return fail(spec.jobName, instance.error);
    const problems = checkRunnable(wf, [instance.job], jobSettings(d, row));
    if (problems.length) return invalid(spec.jobName, 'the workflow cannot run here', problems);
    phases.mark('workflow + variables');
    await source;
    phases.mark('source (beyond the workflow)');
    log.debug({ phases: phases.ms }, 'job phases before the job runs');
    const { lines, observer } = logCollector(d);
    const needs = Object.fromEntries(instance.job.needs.map((n) => [n, { result: 'success' as const, outputs: {} }]));
    const result = await runJob({ sandbox: d.sandbox, logger: log, signal: d.signal, observer }, wf, instance, ctx, { ...jobSettings(d, row), sourceDir: dir, disposableSource: true, egress: d.egressFor?.(row.repository), jobToken: jobTokens(d.github, row, spec.owner, spec.repo, fork, log) }, needs);
    const report = reportOf(result.name, [result]);
    return { report, log: lines.join('\n') };
  } catch (e) {
    log.error({ err: e }, 'job could not run');
    return fail(spec.jobName, (e as Error).message);
  } finally {
    // Nothing is left writing into the directory when it goes.
    await source.catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Each job's GITHUB_TOKEN, minted by the App for the job's repository alone and revoked when the job ends. */
function jobTokens(github: GitHubPort, row: ServerJob, owner: string, repo: string, fromFork: boolean, log: Logger): JobTokenSource {
  return {
    readOnly: fromFork,
    async mint(permissions, jobId) {
      const { token, dropped } = await github.createJobToken(row.installationId, owner, repo, permissions).catch((e: unknown) => {
        throw new Error(`the job's GITHUB_TOKEN could not be made with ${Object.entries(permissions).map(([k, v]) => `${k}: ${v}`).join(', ')}: ${(e as Error).message}`);
      });
      if (dropped.length) log.warn({ job: jobId, dropped }, `the job's GITHUB_TOKEN lacks what the App was not granted: ${dropped.join(', ')}`);
      return { token, revoke: () => github.revokeToken(token) };
    },
  };
}
