// Plays GitHub's official runner started as `run.sh` with a just-in-time configuration
// (ACTIONS_RUNNER_INPUT_JITCONFIG, as actions/runner's CommandSettings reads inputs from the
// environment): the Listener's session with GitHub is the fake GitHub's /_fake/ runner protocol;
// the Worker's job is what actions/runner does with a container hook (ContainerHookManager.cs,
// ScriptHandler.cs, FileCommandManager.cs, ContainerInfo.cs): lay out _work, call the hook with
// prepare_job, one run_script_step per step (script file in _temp, file-command files), cleanup_job.
// An ephemeral runner takes one job and exits.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const cfg = JSON.parse(Buffer.from(process.env.ACTIONS_RUNNER_INPUT_JITCONFIG ?? '', 'base64').toString('utf8'));
const root = process.cwd();
const work = join(root, '_work');
const temp = join(work, '_temp');
const hook = process.env.ACTIONS_RUNNER_CONTAINER_HOOKS;
if (!hook || process.env.ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER !== 'true') {
  console.error('this runner needs ACTIONS_RUNNER_CONTAINER_HOOKS and ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true');
  process.exit(2);
}
// The JIT config holds the runner's credentials; the real runner keeps them in its process, never in _work.
writeFileSync(join(root, '.credentials'), JSON.stringify({ data: cfg.credentials }), { mode: 0o600 });

const post = async (what, body) => {
  const r = await fetch(`${cfg.fake}/_fake/runners/${cfg.runnerId}/${what}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: r.status === 200 ? await r.json() : undefined };
};

function callHook(input) {
  const responseFile = join(temp, '_runner_hook_responses', `${randomUUID()}.json`);
  writeFileSync(responseFile, '');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [hook], { stdio: ['pipe', 'inherit', 'inherit'], env: process.env });
    child.stdin.end(JSON.stringify({ ...input, responseFile }));
    child.on('close', (code) => {
      const text = existsSync(responseFile) ? readFileSync(responseFile, 'utf8').trim() : '';
      rmSync(responseFile, { force: true });
      resolve({ code: code ?? 137, response: text ? JSON.parse(text) : undefined });
    });
  });
}

async function runJob(job) {
  for (const d of [work, temp, join(work, '_actions'), join(work, '_tool'), join(temp, '_github_home'), join(temp, '_github_workflow'), join(temp, '_runner_file_commands'), join(temp, '_runner_hook_responses'), join(work, 'hello'), join(work, 'hello/hello')]) mkdirSync(d, { recursive: true });
  writeFileSync(join(temp, '_github_workflow/event.json'), '{}');
  const mounts = [
    ['/var/run/docker.sock', '/var/run/docker.sock'],
    [work, '/__w'],
    [join(root, 'externals'), '/__e', true],
    [temp, '/__w/_temp'],
    [join(work, '_actions'), '/__w/_actions'],
    [join(work, '_tool'), '/__w/_tool'],
    [join(temp, '_github_home'), '/github/home'],
    [join(temp, '_github_workflow'), '/github/workflow'],
  ].map(([s, t, ro]) => ({ sourceVolumePath: s, targetVolumePath: t, readOnly: !!ro }));
  console.log(`fake runner: job ${job.id}: prepare_job`);
  const p = await callHook({ command: 'prepare_job', state: {}, args: { container: { image: 'stockade/base', workingDirectory: '/__w/hello/hello', environmentVariables: {}, systemMountVolumes: mounts, userMountVolumes: [], portMappings: [], entryPointArgs: [''] }, services: [] } });
  if (p.code !== 0 || !p.response) return 'failure';
  const state = p.response.state;
  let conclusion = 'success';
  for (const script of job.steps) {
    const id = randomUUID();
    writeFileSync(join(temp, `${id}.sh`), script);
    const out = join(temp, '_runner_file_commands', `set_output_${id}`);
    writeFileSync(out, '');
    const r = await callHook({ command: 'run_script_step', state, args: { entryPoint: 'bash', entryPointArgs: `--noprofile --norc -e -o pipefail /__w/_temp/${id}.sh`.split(' '), environmentVariables: { GITHUB_OUTPUT: `/__w/_temp/_runner_file_commands/set_output_${id}`, GITHUB_WORKSPACE: '/__w/hello/hello' }, prependPath: [], workingDirectory: '/__w/hello/hello' } });
    if (r.code !== 0) {
      conclusion = 'failure';
      break;
    }
  }
  await callHook({ command: 'cleanup_job', state, args: {} });
  return conclusion;
}

for (;;) {
  const r = await post('next', { pid: process.pid }).catch(() => ({ status: 0 }));
  if (r.status === 410) process.exit(0);
  if (r.status === 200) {
    const conclusion = await runJob(r.json);
    await post('done', { conclusion });
    console.log(`fake runner: job ${r.json.id}: ${conclusion}`);
    process.exit(0);
  }
  await new Promise((res) => setTimeout(res, 200));
}
