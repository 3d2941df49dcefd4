import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import * as core from '@actions/core';
import YAML from 'yaml';
import Docker from 'dockerode';
import { createLogger, isStockadeError } from '../common';
import { egressSettings, findPackageRoot, imageRef, runnerImageNames, upstreamDnsFrom } from '../host';
import { findJobInstance, runJob, type JobResult, type RunContext, type StepResult } from '../runner';
import { openSandbox } from '../sandbox';
import { parseWorkflowText } from '../workflow';
import { actionHost } from './host';
import { readInputs, type ActionInputs } from './inputs';
import { collectResults, resultsDestination, type ResultsReport } from './results';

const STEP_NAME = 'Run in the sandbox';
const MAX_OUTPUTS = 100;
const MAX_OUTPUT_BYTES = 64 * 1024;
const MAX_ALL_OUTPUT_BYTES = 1024 * 1024;
const RESERVED = new Set(['exit-code', 'conclusion', 'duration-ms', 'peak-memory-bytes', 'blocked-network-attempts']);

/** `${{` in a value the Actions runner already evaluated must stay literal. */
const literal = (s: string) => s.replace(/\$\{\{/g, "${{ '${{' }}");

/**
 * The action: runs `inputs.run` in one Stockade sandbox job (fresh rootless
 * container, our seccomp profile, limits, no network unless allow-domains) over a
 * copy of the workspace, and reports outputs, a summary and the exit.
 */
export async function run(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  try {
    const inputs = readInputs((n) => core.getInput(n));
    const { result, collected } = await runInSandbox(inputs, env);
    await report(inputs, result, collected);
  } catch (e) {
    core.setFailed(`stockade: ${isStockadeError(e) ? e.describe() : (e as Error).message}`);
  }
}

async function runInSandbox(inputs: ActionInputs, env: NodeJS.ProcessEnv): Promise<{ result: JobResult; collected?: ResultsReport & { dest: string } }> {
  const workspace = env.GITHUB_WORKSPACE ?? process.cwd();
  if (!existsSync(workspace)) throw new Error(`GITHUB_WORKSPACE ${workspace} does not exist`);
  // Checked before anything runs: a bad destination must not cost the run.
  const dest = inputs.results ? await resultsDestination(inputs.results.path, workspace) : undefined;
  let collected: (ResultsReport & { dest: string }) | undefined;
  const collectWorkspace = inputs.results && dest
    ? async (dir: string) => {
        collected = { dest, ...(await collectResults(dir, { patterns: inputs.results!.patterns, dest, maxFiles: inputs.results!.maxFiles, maxBytes: inputs.results!.maxBytes })) };
      }
    : undefined;
  const packageRoot = findPackageRoot(__dirname);
  const host = await actionHost(env);
  const passed: Record<string, string> = {};
  for (const name of inputs.env) {
    const v = env[name];
    if (v === undefined) core.warning(`env: ${name} is not set on the runner; not passed`);
    else passed[name] = v;
  }
  // Every value passed in is masked on the way out, here and by the Actions runner.
  for (const v of Object.values(passed)) if (v.trim()) core.setSecret(v);
  const sandbox = await openSandbox({
    socketPath: host.socketPath,
    stateDir: host.stateDir,
    seccompProfileJson: seccompProfile(inputs.seccomp, workspace, packageRoot),
    logger: createLogger({ level: env.STOCKADE_LOG_LEVEL ?? 'warn' }),
  });
  await sandbox.reap();
  const image = resolveImage(inputs.image, packageRoot);
  if (!(await sandbox.deps.engine.imageExists(image))) {
    // A toolchain image is built FROM the base: the base first, where it is missing too.
    const base = imageRef({ packageRoot }, 'base');
    if (inputs.image !== 'base' && /^[a-z0-9-]+$/.test(inputs.image) && !(await sandbox.deps.engine.imageExists(base))) await buildImage(host.socketPath, packageRoot, 'base', base);
    await buildImage(host.socketPath, packageRoot, inputs.image, image, base);
  }
  const doc = {
    name: 'stockade',
    on: 'workflow_dispatch',
    jobs: {
      sandbox: {
        'runs-on': 'stockade',
        'timeout-minutes': Math.ceil(inputs.limits.timeoutMs / 60_000) + 1,
        steps: [{ name: STEP_NAME, shell: inputs.shell, 'working-directory': inputs.workingDirectory, env: Object.fromEntries(Object.entries(passed).map(([k, v]) => [k, literal(v)])), run: literal(inputs.run) }],
      },
    },
  };
  const parsed = parseWorkflowText('stockade-action.yml', YAML.stringify(doc));
  if (!parsed.value) throw new Error(parsed.diagnostics.map((d) => d.message).join('; '));
  const ctx: RunContext = {
    repository: env.GITHUB_REPOSITORY ?? 'local/workspace',
    sha: env.GITHUB_SHA ?? '',
    ref: env.GITHUB_REF ?? '',
    eventName: 'workflow_dispatch',
    event: {},
    actor: env.GITHUB_ACTOR ?? '',
    runId: env.GITHUB_RUN_ID ?? '0',
    runNumber: Number(env.GITHUB_RUN_NUMBER ?? 1),
    runAttempt: Number(env.GITHUB_RUN_ATTEMPT ?? 1),
    workflowName: env.GITHUB_WORKFLOW ?? 'stockade',
    serverUrl: env.GITHUB_SERVER_URL ?? 'https://github.com',
    secrets: passed,
    vars: {},
    inputs: {},
    debug: env.RUNNER_DEBUG === '1',
  };
  const instance = findJobInstance(parsed.value, 'sandbox', ctx);
  if ('error' in instance) throw new Error(instance.error);
  const allow = inputs.allowDomains;
  const egress = allow.length
    ? egressSettings(packageRoot, { allow, permittedRanges: (env.STOCKADE_PERMIT_RANGES ?? '').split(/[\s,]+/).filter(Boolean) }, upstreamDnsFrom(env.STOCKADE_UPSTREAM_DNS))
    : undefined;
  // Output of untrusted code must not drive the Actions runner: workflow commands are
  // stopped while it is printed (GitHub's ::stop-commands::), and its annotations and
  // outputs are re-emitted by this action only after checks.
  const token = randomBytes(16).toString('hex');
  process.stdout.write(`::stop-commands::${token}\n`);
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  let result: JobResult;
  try {
    result = await runJob(
      {
        sandbox,
        logger: createLogger({ level: env.STOCKADE_LOG_LEVEL ?? 'warn' }),
        signal: controller.signal,
        observer: { line: (_job, step, _stream, text) => process.stdout.write(`${step === STEP_NAME ? '' : `[${step}] `}${text}\n`) },
      },
      parsed.value,
      instance,
      ctx,
      { image, limits: inputs.limits, readOnlyRoot: true, sourceDir: workspace, nodeBinary: process.execPath, parallelJobs: 1, egress, collectWorkspace },
      {},
    );
  } finally {
    process.stdout.write(`::${token}::\n`);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  if (inputs.results && !collected) collected = { dest: dest!, files: [], skipped: [], error: 'the sandbox job ended before its workspace could be read' };
  return { result, collected };
}

/** Builds a runner image from its Containerfile through the API (a registry must be reachable for its FROM). */
async function buildImage(socketPath: string, packageRoot: string, name: string, ref: string, base?: string): Promise<void> {
  const dir = join(packageRoot, 'runner-images', name);
  if (!/^[a-z0-9-]+$/.test(name) || !existsSync(join(dir, 'Containerfile'))) throw new Error(`image ${ref} is not present on this machine`);
  core.info(`building ${ref} from runner-images/${name} (not present on this machine)`);
  const docker = new Docker({ socketPath });
  const stream = await docker.buildImage({ context: dir, src: readdirSync(dir) }, { t: ref, dockerfile: 'Containerfile', ...(name !== 'base' && base ? { buildargs: { BASE: base } } : {}) });
  const failure = await new Promise<string | undefined>((done) =>
    docker.modem.followProgress(
      stream,
      (err: Error | null, out: Array<{ error?: string }>) => done(err?.message ?? out.find((o) => o.error)?.error),
      (e: { stream?: string }) => e.stream && process.stdout.write(e.stream),
    ),
  );
  if (failure) throw new Error(`building ${ref} failed: ${failure.trim()} (where no registry is reachable, build it with \`stockade images build ${name}\`)`);
}

function resolveImage(name: string, packageRoot: string): string {
  if (/^[a-z0-9-]+$/.test(name)) {
    const known = runnerImageNames({ packageRoot });
    if (!known.includes(name)) throw new Error(`image '${name}' is not one of runner-images/ (${known.join(', ')}); give a full reference for another image`);
    return imageRef({ packageRoot }, name);
  }
  return name;
}

/** The default profile, or a JSON profile inside the workspace (never outside it). */
function seccompProfile(input: string, workspace: string, packageRoot: string): string {
  if (input === 'default') return readFileSync(join(packageRoot, 'seccomp/stockade.json'), 'utf8');
  const path = resolve(workspace, input);
  const real = existsSync(path) ? realpathSync(path) : path;
  const rel = relative(realpathSync(workspace), real);
  if (rel.startsWith('..') || isAbsolute(rel)) throw new Error(`input 'seccomp' '${input}' is outside the workspace`);
  if (!existsSync(real)) throw new Error(`input 'seccomp': ${input} does not exist in the workspace`);
  const text = readFileSync(real, 'utf8');
  const profile = JSON.parse(text) as { defaultAction?: string };
  if (typeof profile.defaultAction !== 'string') throw new Error(`input 'seccomp': ${input} is not a seccomp profile (no defaultAction)`);
  return text;
}

function conclusionOf(step: StepResult | undefined, job: JobResult): string {
  if (!step) return job.conclusion === 'cancelled' ? 'cancelled' : 'failure';
  if (step.reason === 'timeout') return 'timed_out';
  return step.conclusion;
}

/** Text from the sandbox in the step summary (HTML): markup characters as entities. */
const escapeSummary = (t: string) => t.replace(/[<>&]/g, (c) => `&#${c.charCodeAt(0)};`);

async function report(inputs: ActionInputs, job: JobResult, collected?: ResultsReport & { dest: string }): Promise<void> {
  const step = job.steps.find((s) => s.name === STEP_NAME);
  const conclusion = conclusionOf(step, job);
  const blocked = job.egress ? job.egress.dnsRefused + job.egress.connectionsRefused : 0;
  core.setOutput('exit-code', step?.exitCode ?? '');
  core.setOutput('conclusion', conclusion);
  core.setOutput('duration-ms', step?.durationMs ?? job.durationMs);
  core.setOutput('peak-memory-bytes', step?.peakMemoryBytes ?? 0);
  core.setOutput('blocked-network-attempts', blocked);
  let total = 0;
  let count = 0;
  for (const [name, value] of Object.entries(step?.outputs ?? {})) {
    const bytes = Buffer.byteLength(value);
    if (RESERVED.has(name) || !/^[A-Za-z_][A-Za-z0-9_-]{0,99}$/.test(name)) core.warning(`output '${name.slice(0, 100)}' from the sandbox is not a valid or free name; dropped`);
    else if (bytes > MAX_OUTPUT_BYTES || total + bytes > MAX_ALL_OUTPUT_BYTES || count >= MAX_OUTPUTS) core.warning(`output '${name}' from the sandbox is over the size or count cap (${MAX_OUTPUT_BYTES} bytes each, ${MAX_ALL_OUTPUT_BYTES} in all, ${MAX_OUTPUTS} outputs); dropped`);
    else {
      core.setOutput(name, value);
      total += bytes;
      count++;
    }
  }
  // The runner's own "Process completed with exit code N" is said once, by setFailed below.
  for (const a of (step?.annotations ?? []).filter((x) => !/^Process completed with exit code \d+\.$/.test(x.message))) {
    const props = { title: a.title, file: a.file, startLine: a.line, endLine: a.endLine, startColumn: a.column, endColumn: a.endColumn };
    if (a.level === 'error') core.error(a.message, props);
    else if (a.level === 'warning') core.warning(a.message, props);
    else core.notice(a.message, props);
  }
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;
  const reason = step ? (step.reason === 'exit' ? `exit ${step.exitCode}` : step.reason) : (job.error ?? 'error');
  core.summary
    .addHeading('Stockade sandbox', 3)
    .addTable([
      [
        { data: 'conclusion', header: true },
        { data: 'duration', header: true },
        { data: 'peak memory', header: true },
        { data: 'exit reason', header: true },
        { data: 'image', header: true },
        { data: 'blocked network attempts', header: true },
      ],
      [conclusion, `${((step?.durationMs ?? job.durationMs) / 1000).toFixed(2)} s`, mib(step?.peakMemoryBytes ?? 0), reason, inputs.image, String(blocked)],
    ]);
  if (job.egress && blocked) core.summary.addList(job.egress.refusals.slice(0, 20).map(escapeSummary));
  if (collected) {
    core.setOutput('results-path', collected.dest);
    core.setOutput('results-count', collected.files.length);
    core.summary.addHeading(`Results handed back: ${collected.files.length} files, ${mib(collected.files.reduce((a, f) => a + f.bytes, 0))}`, 4);
    if (collected.files.length) core.summary.addList(collected.files.slice(0, 100).map((f) => `${escapeSummary(f.path)} (${f.bytes} bytes)`).concat(collected.files.length > 100 ? [`and ${collected.files.length - 100} more`] : []));
    if (collected.skipped.length) {
      core.summary.addRaw('Not copied:', true).addList(collected.skipped.slice(0, 100).map((f) => `${escapeSummary(f.path)}: ${escapeSummary(f.why)}`));
      for (const f of collected.skipped.slice(0, 20)) core.warning(`results: ${f.path} was not copied: ${f.why}`);
    }
    if (collected.error) core.summary.addRaw(`Nothing was copied: ${escapeSummary(collected.error)}`, true);
  }
  if (job.summary.trim()) core.summary.addHeading('Summary written in the sandbox', 4).addRaw(job.summary.slice(0, 64 * 1024), true);
  if (process.env.GITHUB_STEP_SUMMARY) await core.summary.write();
  if (collected?.error) {
    core.setFailed(`results: ${collected.error}`);
    return;
  }
  if (conclusion === 'success') return;
  if (conclusion === 'timed_out') core.setFailed(`the script timed out after ${inputs.limits.timeoutMs / 1000} s and was killed`);
  else if (step?.reason === 'exit') core.setFailed(`the script exited with code ${step.exitCode}`);
  else if (step) core.setFailed(`the script ended by ${step.reason}${step.error ? `: ${step.error}` : ''}`);
  else core.setFailed(job.error ?? 'the sandbox job failed before the script ran');
}
