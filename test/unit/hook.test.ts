import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHookInput, planJobContainer, type HookContainer } from '../../src/hook';

// Inputs shaped as GitHub's runner writes them to a container hook's stdin: the fields of
// actions/runner src/Runner.Worker/Container/ContainerHooks/HookInput.cs (serialised camelCase),
// the mounts its ContainerInfo lists, as in actions/runner-container-hooks examples/*.json.
const root = '/home/runner/actions-runner';
const systemMounts = [
  { sourceVolumePath: '/var/run/docker.sock', targetVolumePath: '/var/run/docker.sock', readOnly: false },
  { sourceVolumePath: `${root}/_work`, targetVolumePath: '/__w', readOnly: false },
  { sourceVolumePath: `${root}/externals`, targetVolumePath: '/__e', readOnly: true },
  { sourceVolumePath: `${root}/_work/_temp`, targetVolumePath: '/__w/_temp', readOnly: false },
  { sourceVolumePath: `${root}/_work/_actions`, targetVolumePath: '/__w/_actions', readOnly: false },
  { sourceVolumePath: `${root}/_work/_tool`, targetVolumePath: '/__w/_tool', readOnly: false },
  { sourceVolumePath: `${root}/_work/_temp/_github_home`, targetVolumePath: '/github/home', readOnly: false },
  { sourceVolumePath: `${root}/_work/_temp/_github_workflow`, targetVolumePath: '/github/workflow', readOnly: false },
];

function prepareJob(container: Record<string, unknown>, services: unknown[] = []): string {
  return JSON.stringify({ command: 'prepare_job', responseFile: `${root}/_work/_temp/_runner_hook_responses/0c7a.json`, state: {}, args: { container: { workingDirectory: '/__w/repo/repo', environmentVariables: {}, systemMountVolumes: systemMounts, userMountVolumes: [], portMappings: [], entryPointArgs: [''], registry: { username: null, password: null, serverUrl: null }, ...container }, services } });
}

const opts = { images: { base: 'localhost/stockade/base:abc', node: 'localhost/stockade/node:def' }, policy: { allow: [], allowDigestPinned: false } };

test('hook input: the four commands parse; bad input is refused with the field named, never thrown', () => {
  const p = parseHookInput(prepareJob({ image: 'stockade/node', environmentVariables: { NODE_ENV: 'test' } }, [{ contextName: 'redis', image: 'localhost/stockade/base:abc', environmentVariables: {}, portMappings: ['6379:6379'] }]));
  assert.ok('value' in p, JSON.stringify(p));
  assert.equal(p.value.command, 'prepare_job');
  const script = parseHookInput(JSON.stringify({ command: 'run_script_step', responseFile: null, state: { network: 'n' }, args: { entryPointArgs: ['-e', '/__w/_temp/1b2c.sh'], entryPoint: 'bash', environmentVariables: { A: '1' }, prependPath: '/foo/bar:/__w/_tool/node/bin', workingDirectory: '/__w/repo/repo' } }));
  assert.ok('value' in script && script.value.command === 'run_script_step');
  assert.deepEqual((script as { value: { args: { prependPath: string[] } } }).value.args.prependPath, ['/foo/bar', '/__w/_tool/node/bin']);
  assert.ok('value' in parseHookInput(JSON.stringify({ command: 'cleanup_job', responseFile: null, state: { network: 'n' } })));
  for (const [input, why] of [
    ['not json', /not JSON/],
    ['[]', /JSON object/],
    [JSON.stringify({ command: 'rm_rf' }), /command 'rm_rf' is not one of/],
    [JSON.stringify({ command: 'prepare_job', args: {} }), /responseFile is required/],
    [JSON.stringify({ command: 'run_script_step', args: { entryPoint: 'bash', workingDirectory: '/__w', environmentVariables: { 'A B': 'x' } } }), /'A B' is not a variable name/],
    [JSON.stringify({ command: 'run_script_step', args: { entryPoint: 'bash\u0000', workingDirectory: '/__w' } }), /NUL byte/],
    [JSON.stringify({ command: 'prepare_job', responseFile: '/r', args: { services: Array.from({ length: 40 }, () => ({})) } }), /limit is 32/],
    ['x'.repeat(9 * 1024 * 1024), /larger than/],
  ] as const) {
    const r = parseHookInput(input);
    assert.ok('error' in r, input.slice(0, 80));
    assert.match(r.error, why);
  }
});

test('prepare_job plan: only the runner\'s own directories are mounted, the Docker socket is dropped with a notice, stockade/<name> maps to a runner image', () => {
  const p = parseHookInput(prepareJob({ image: 'stockade/node' }));
  assert.ok('value' in p && p.value.command === 'prepare_job');
  const r = planJobContainer(p.value.args.container as HookContainer, opts);
  assert.deepEqual(r.errors, []);
  assert.match(r.notices.join('\n'), /Docker socket \(\/var\/run\/docker\.sock\) is never mounted/);
  assert.equal(r.plan!.image, 'localhost/stockade/node:def');
  assert.equal(r.plan!.runnerRoot, root);
  assert.deepEqual(r.plan!.mounts.map((m) => m.target), ['/__w', '/__e', '/__w/_temp', '/__w/_actions', '/__w/_tool', '/github/home', '/github/workflow']);
  assert.equal(r.plan!.mounts.find((m) => m.target === '/__e')!.readOnly, true);
});

test('prepare_job plan: host paths outside the runner, user volumes, create options, ports and foreign images fail the job with a clear error', () => {
  const evil = [...systemMounts, { sourceVolumePath: '/etc', targetVolumePath: '/__w/_tool', readOnly: false }, { sourceVolumePath: `${root}/_work/../../../root/.ssh`, targetVolumePath: '/github/home', readOnly: false }, { sourceVolumePath: `${root}/.credentials`, targetVolumePath: '/creds', readOnly: true }];
  const p = parseHookInput(prepareJob({ image: 'node:14.16', createOptions: '--cpus 1 --privileged', userMountVolumes: [{ sourceVolumePath: 'my_docker_volume', targetVolumePath: '/volume_mount', readOnly: false }], portMappings: ['80:8080'], systemMountVolumes: evil }));
  assert.ok('value' in p && p.value.command === 'prepare_job');
  const r = planJobContainer(p.value.args.container as HookContainer, opts);
  assert.equal(r.plan, undefined);
  const text = r.errors.join('\n');
  for (const want of [/container\.options '--cpus 1 --privileged' is not supported/, /container\.volumes is not supported/, /container\.ports is not supported/, /host path \/etc at \/__w\/_tool, outside the runner's directory/, /root\/\.ssh at \/github\/home, outside/, /\.credentials at \/creds; only the runner's own directories/, /image 'node:14\.16' is neither one of Stockade's runner images/]) assert.match(text, want);
  const none = planJobContainer({ entryPointArgs: [], environmentVariables: {}, portMappings: [], systemMountVolumes: systemMounts, userMountVolumes: [] }, opts);
  assert.match(none.errors.join('\n'), /the job has no container: .*container: stockade\/base/);
  assert.match(planJobContainer({ ...(p.value.args.container as HookContainer), image: 'stockade/nope', createOptions: '', userMountVolumes: [], portMappings: [], systemMountVolumes: systemMounts }, opts).errors.join(''), /names no Stockade runner image; there are base, node/);
});

test('runner-mode egress names come from the server URL: github.com and its Actions services, a GHES host alone, bad URLs refused', async () => {
  const { githubEgressNames, hostPathOf } = await import('../../src/hook');
  assert.deepEqual(githubEgressNames('https://github.com'), ['github.com', 'api.github.com', 'codeload.github.com', '*.actions.githubusercontent.com', '*.githubusercontent.com']);
  assert.deepEqual(githubEgressNames('https://GHES.example.com/'), ['ghes.example.com']);
  assert.deepEqual(githubEgressNames('https://acme.ghe.com'), ['acme.ghe.com', '*.acme.ghe.com']);
  assert.throws(() => githubEgressNames('not a url'), /is not a URL/);
  const binds = [
    { hostPath: '/r/_work', target: '/__w' },
    { hostPath: '/r/_work/_temp', target: '/__w/_temp' },
    { hostPath: '/r/_work/_temp/_github_home', target: '/github/home' },
  ];
  assert.equal(hostPathOf(binds, '/__w/_temp/_runner_file_commands/set_output_1'), '/r/_work/_temp/_runner_file_commands/set_output_1');
  assert.equal(hostPathOf(binds, '/github/home/x/../y'), '/r/_work/_temp/_github_home/y');
  assert.equal(hostPathOf(binds, '/etc/passwd'), undefined);
  assert.equal(hostPathOf(binds, '/__work'), undefined);
});
