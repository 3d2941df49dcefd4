/**
 * The conformance corpus: each `cases/<name>.yml` is a workflow run unchanged
 * through `stockade run` (real sandbox, real Podman), and `<name>.expect.yml`
 * says what GitHub Actions gives for it: job and step conclusions, outputs,
 * log lines, annotations, summaries, or the validation error.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stockade } from './cli';
import YAML from 'yaml';
import { resolveHostConfig } from '../../src/host';
import { baseImageRef } from '../../src/cli/base-image';
import { asRunner, exec } from '../../src/cli/exec';

const root = process.cwd();
const casesDir = join(root, 'test/conformance/cases');
const actionCache = join(root, 'test/conformance/action-cache');
const host = resolveHostConfig(process.env);
const image = baseImageRef(host);
/** A service image made from the base image: its command serves HTTP on 8080 (python3's http.server). */
const httpImage = image.replace('/base:', '/test-http:');

before(async () => {
  const [cmd, args] = asRunner(host, ['podman', 'image', 'exists', httpImage]);
  if ((await exec(cmd, args)).code === 0) return;
  const dir = mkdtempSync(join(tmpdir(), 'stockade-http-image-'));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'Containerfile'), `FROM ${image}\nWORKDIR /srv\nCMD ["python3", "-m", "http.server", "8080"]\n`, { mode: 0o644 });
  const [c2, a2] = asRunner(host, ['podman', 'build', '--pull=never', '-t', httpImage, dir]);
  const r = await exec(c2, a2, { cwd: '/' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.code, 0, r.stderr);
});

interface StepExpect {
  name?: string;
  conclusion?: string;
  outcome?: string;
  outputs?: Record<string, string>;
  error?: string;
}
interface JobExpect {
  conclusion?: string;
  outcome?: string;
  outputs?: Record<string, string>;
  error?: string;
  steps?: StepExpect[];
  matrix?: Record<string, unknown>;
}
interface Expect {
  about: string;
  event?: string;
  eventPayload?: Record<string, unknown>;
  args?: string[];
  files?: Record<string, string>;
  actionCache?: boolean;
  /** Run without --workflow: the trigger filters pick the workflows. */
  discover?: boolean;
  exit?: number;
  jobs?: Record<string, JobExpect>;
  jobCount?: number;
  jobOrder?: string[];
  log?: string[];
  /** Must appear in no step log and not on stderr. */
  notLog?: string[];
  /** Must appear nowhere in the output (the whole JSON result and stderr). */
  notOutput?: string[];
  annotations?: Array<Record<string, unknown>>;
  summary?: string[];
  stderr?: string[];
}

interface JsonStep {
  name: string;
  conclusion: string;
  outcome: string;
  outputs: Record<string, string>;
  error?: string;
  log: string[];
  annotations: Array<Record<string, unknown>>;
}
interface JsonJob {
  id: string;
  name: string;
  conclusion: string;
  outcome: string;
  outputs: Record<string, string>;
  error?: string;
  summary: string;
  matrix: Record<string, unknown>;
  steps: JsonStep[];
}

const run = (args: string[]) => stockade(['run', ...args]);

/** `re:(?flags)pattern` is a regular expression; anything else a plain substring. */
function matches(pattern: string, text: string): boolean {
  if (!pattern.startsWith('re:')) return text.includes(pattern);
  const m = /^re:(?:\(\?([a-z]+)\))?(.*)$/s.exec(pattern)!;
  return new RegExp(m[2]!, m[1] ?? '').test(text);
}

function checkSubset(actual: Record<string, unknown>, expected: Record<string, unknown>, where: string): void {
  for (const [k, v] of Object.entries(expected)) {
    if (typeof v === 'string' && typeof actual[k] === 'string' && v.startsWith('re:')) {
      assert.ok(matches(v, actual[k] as string), `${where}.${k}: ${JSON.stringify(actual[k])} does not match ${v}`);
    } else assert.deepEqual(actual[k], v, `${where}.${k}`);
  }
}

const names = readdirSync(casesDir)
  .filter((f) => f.endsWith('.yml') && !f.endsWith('.expect.yml'))
  .map((f) => f.slice(0, -4))
  .sort();

test('the corpus has at least 60 workflows, each with its expectation', () => {
  assert.ok(names.length >= 60, `${names.length} cases`);
  for (const n of names) assert.ok(readdirSync(casesDir).includes(`${n}.expect.yml`), `${n}.expect.yml is missing`);
});

describe('conformance', { concurrency: 2 }, () => {
  for (const name of names) {
    test(name, async () => {
      const expect = YAML.parse(readFileSync(join(casesDir, `${name}.expect.yml`), 'utf8')) as Expect;
      const dir = mkdtempSync(join(tmpdir(), `stockade-conf-${name}-`));
      try {
        mkdirSync(join(dir, '.github/workflows'), { recursive: true });
        const wfFile = `.github/workflows/${name}.yml`;
        writeFileSync(join(dir, wfFile), readFileSync(join(casesDir, `${name}.yml`)));
        // {dir}, {image} and {http-image} stand for this run's directory and images, in args and files alike.
        const subst = (a: string) => a.replaceAll('{dir}', dir).replaceAll('{image}', image).replaceAll('{http-image}', httpImage);
        for (const [path, content] of Object.entries(expect.files ?? {})) {
          mkdirSync(dirname(join(dir, path)), { recursive: true });
          writeFileSync(join(dir, path), subst(content), { mode: path.endsWith('.sh') ? 0o755 : 0o644 });
        }
        const args = ['-C', dir, ...(expect.discover ? [] : ['--workflow', wfFile]), '--json', '--event', expect.event ?? 'push', ...(expect.args ?? []).map(subst)];
        if (expect.eventPayload) {
          writeFileSync(join(dir, 'event.json'), JSON.stringify(expect.eventPayload));
          args.push('--eventpath', join(dir, 'event.json'));
        }
        if (expect.actionCache) args.push('--action-cache', actionCache);
        const r = await run(args);
        const context = `exit ${r.code}\nstderr: ${r.stderr.slice(0, 3000)}\nstdout: ${r.stdout.slice(0, 6000)}`;
        assert.equal(r.code, expect.exit ?? 0, context);
        for (const p of expect.stderr ?? []) assert.ok(matches(p, r.stderr), `stderr lacks ${p}\n${context}`);
        for (const p of expect.notOutput ?? []) assert.ok(!matches(p, r.stdout + r.stderr), `output contains ${p}\n${context}`);
        if (r.code === 2) return;
        const result = JSON.parse(r.stdout) as { jobs: JsonJob[] };
        const jobs = result.jobs;
        if (expect.jobCount !== undefined) assert.equal(jobs.length, expect.jobCount, context);
        if (expect.jobOrder) assert.deepEqual(jobs.map((j) => j.name), expect.jobOrder);
        for (const [jobName, je] of Object.entries(expect.jobs ?? {})) {
          const job = jobs.find((j) => j.name === jobName) ?? jobs.find((j) => j.id === jobName);
          assert.ok(job, `no job named ${jobName}; jobs: ${jobs.map((j) => j.name).join(' | ')}\n${context}`);
          const { steps, ...rest } = je;
          checkSubset(job as unknown as Record<string, unknown>, rest, `job ${jobName}`);
          if (steps) {
            assert.equal(job.steps.length, steps.length, `job ${jobName}: ${job.steps.map((s) => `${s.name}=${s.conclusion}`).join(', ')}\n${context}`);
            steps.forEach((se, i) => checkSubset(job.steps[i] as unknown as Record<string, unknown>, se as Record<string, unknown>, `job ${jobName} step ${i}`));
          }
        }
        const allLog = jobs.flatMap((j) => j.steps.flatMap((s) => s.log)).join('\n');
        for (const p of expect.notLog ?? []) assert.ok(!matches(p, `${allLog}\n${r.stderr}`), `log contains ${p}\n${allLog.slice(0, 4000)}`);
        for (const p of expect.log ?? []) assert.ok(matches(p, allLog), `log lacks ${p}\n${allLog.slice(0, 4000)}`);
        const annotations = jobs.flatMap((j) => j.steps.flatMap((s) => s.annotations));
        for (const a of expect.annotations ?? []) {
          assert.ok(
            annotations.some((x) => Object.entries(a).every(([k, v]) => (typeof v === 'string' && typeof x[k] === 'string' ? matches(v, x[k] as string) : JSON.stringify(x[k]) === JSON.stringify(v)))),
            `no annotation like ${JSON.stringify(a)} in ${JSON.stringify(annotations)}`,
          );
        }
        const summary = jobs.map((j) => j.summary).join('\n');
        for (const p of expect.summary ?? []) assert.ok(matches(p, summary), `summary lacks ${p}: ${summary}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
