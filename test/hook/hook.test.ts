// Runner mode end to end: the runner's side played by runner-harness.ts (what actions/runner does),
// the hook (dist/hook.js, installed at /opt/stockade/hook.js) run as the runner's user, and a real
// broker with the real sandbox: rootless Podman, our seccomp profile, read-back limits.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { silentLogger } from '../../src/common';
import { HookJobs, startHookBroker } from '../../src/hook';
import { baseImageRef, egressSettings, runnerImages, resolveHostConfig } from '../../src/host';
import { githubEgressNames } from '../../src/hook';
import { startOutsideWorld } from '../network/outside-world';
import { asRunner } from '../../src/cli/exec';
import { DEFAULT_LIMITS, LABEL_MANAGED, openSandbox, type Sandbox } from '../../src/sandbox';
import { FakeRunner, RUNNER_GID, RUNNER_UID } from './runner-harness';

const root = process.cwd();
const host = resolveHostConfig(process.env);
const socketDir = `/run/stockade-test-${process.pid}`;
const socket = join(socketDir, 'hook.sock');
const base = `/home/github-runner/hook-tests-${process.pid}`;
let server: Server;
let sandbox: Sandbox;
const runners: FakeRunner[] = [];

function newRunner(user?: { uid: number; gid: number }, sock = socket): FakeRunner {
  const r = new FakeRunner(base, sock, user);
  runners.push(r);
  return r;
}

before(async () => {
  const s = spawnSync('node', [join(root, 'dist/cli.js'), 'setup', '--no-images', '--runner'], { encoding: 'utf8' });
  assert.equal(s.status, 0, s.stderr);
  mkdirSync(base, { recursive: true });
  sandbox = await openSandbox({ socketPath: host.socketPath, stateDir: host.stateDir, seccompProfileJson: readFileSync(join(root, 'seccomp/stockade.json'), 'utf8'), logger: silentLogger() });
  const jobs = new HookJobs({
    sandbox,
    images: runnerImages(host),
    policy: { allow: [], allowDigestPinned: false },
    limits: { ...DEFAULT_LIMITS, memoryBytes: 256 * 1024 ** 2, pids: 128, timeoutMs: 8000, killGraceMs: 500 },
    runnerUid: RUNNER_UID,
    logger: silentLogger(),
    allow: [],
    sidecarImage: baseImageRef(host),
    nodeBinary: process.execPath,
    asPodmanUser: (args) => asRunner(host, args),
  });
  server = await startHookBroker({ socketPath: socket, gid: RUNNER_GID, jobs, logger: silentLogger() });
});

after(async () => {
  server?.close();
  for (const r of runners) r.remove();
  rmSync(base, { recursive: true, force: true });
  rmSync(socketDir, { recursive: true, force: true });
});

async function managedContainers(): Promise<number> {
  return (await sandbox.deps.engine.listContainers(`${LABEL_MANAGED}=true`)).filter((c) => c.labels['io.stockade.owner'] === sandbox.ownerTag).length;
}

test('prepare_job: the Docker socket is dropped with a notice, the response is what the runner reads, and a job without a container is refused', async () => {
  const r = newRunner();
  const p = await r.prepareJob({});
  assert.equal(p.code, 0, p.stdout);
  assert.match(p.stdout, /Docker socket \(\/var\/run\/docker\.sock\) is never mounted/);
  assert.equal(p.response?.isAlpine, false);
  const ctx = p.response?.context as { container: { id: string; network: string }; services: unknown[] };
  assert.match(ctx.container.id, /^stockade-hook-[0-9a-f]{12}$/);
  assert.deepEqual(ctx.services, []);
  assert.ok((r.state as { stockade: { token: string } }).stockade.token.length === 48);
  assert.equal((await r.cleanupJob()).code, 0);

  const none = await r.call({ command: 'prepare_job', args: { services: [] } });
  assert.equal(none.code, 1);
  assert.match(none.stdout, /the job has no container: .*container: stockade\/base/);
});

test('two steps run in two fresh containers; the workspace carries over, files belong to the runner, outputs, env and path come back, the exit code is the step\'s', async () => {
  const r = newRunner();
  assert.equal((await r.prepareJob({})).code, 0);
  const one = await r.runScript('echo "$HOSTNAME $$" > /tmp/who; cat /proc/self/cgroup | md5sum > /__w/repo/repo/cg; echo built > /__w/repo/repo/artifact.txt\necho "answer=42" >> "$GITHUB_OUTPUT"\necho "GREETING=hello" >> "$GITHUB_ENV"\nmkdir -p /__w/_tool/bin && echo /__w/_tool/bin >> "$GITHUB_PATH"\nid -u');
  assert.equal(one.code, 0, one.stdout);
  assert.deepEqual(one.outputs, { answer: '42' });
  assert.deepEqual(one.env, { GREETING: 'hello' });
  assert.match(one.stdout, /^0$/m, 'the step runs as root of its container');
  assert.equal(r.ownerOf('repo/repo/artifact.txt'), RUNNER_UID, 'what a step writes belongs to the runner\'s user');
  const two = await r.runScript('cat /__w/repo/repo/artifact.txt; test ! -e /tmp/who && echo fresh-tmp; cat /proc/self/cgroup | md5sum | cmp -s - /__w/repo/repo/cg || echo other-container; echo "PATH=$PATH"; exit 3');
  assert.equal(two.code, 3, two.stdout);
  assert.match(two.stdout, /^built$/m);
  assert.match(two.stdout, /^fresh-tmp$/m);
  assert.match(two.stdout, /^other-container$/m);
  assert.match(two.stdout, /^PATH=\/__w\/_tool\/bin:/m);
  assert.equal((await r.cleanupJob()).code, 0);
  assert.equal(await managedContainers(), 0);
});

test('a JavaScript action runs through the runner\'s own Node at /__e/node20 and sets an output', async () => {
  const r = newRunner();
  assert.equal((await r.prepareJob({})).code, 0);
  const dir = join(r.work, '_actions/acme/hello/v1');
  mkdirSync(dir, { recursive: true });
  spawnSync('chown', ['-R', `${RUNNER_UID}:${RUNNER_GID}`, join(r.work, '_actions/acme')]);
  r.write(join(dir, 'index.js'), "require('fs').appendFileSync(process.env.GITHUB_OUTPUT, `greeting=hi from ${process.version}\\n`); console.log('action ran');\n");
  const s = await r.runScript('', { entryPoint: '/__e/node20/bin/node', args: '/__w/_actions/acme/hello/v1/index.js' });
  assert.equal(s.code, 0, s.stdout);
  assert.match(s.stdout, /action ran/);
  assert.equal(s.outputs.greeting, `hi from ${process.version}`);
  // The action's own directory is read-only from a step: a step cannot rewrite what the runner loads next.
  const w = await r.runScript('echo x > /__w/_actions/acme/hello/v1/index.js');
  assert.notEqual(w.code, 0);
  assert.match(w.stdout, /Read-only file system/);
  await r.cleanupJob();
});

test('a container action (image form) runs in its own container with the workspace at /github/workspace; a Dockerfile action is refused with the reason', async () => {
  const r = newRunner();
  assert.equal((await r.prepareJob({})).code, 0);
  assert.equal((await r.runScript('echo from-the-job > /__w/repo/repo/in.txt')).code, 0);
  const c = await r.runContainerStep('stockade/base', 'sh', ['-c', 'cat /github/workspace/in.txt; echo "seen=$(cat in.txt)" >> "$GITHUB_OUTPUT"; test -S /var/run/docker.sock || echo no-docker-socket; echo $INPUT_WHO'], { INPUT_WHO: 'octocat' });
  assert.equal(c.code, 0, c.stdout);
  assert.match(c.stdout, /^from-the-job$/m);
  assert.match(c.stdout, /^no-docker-socket$/m);
  assert.match(c.stdout, /^octocat$/m);
  assert.deepEqual(c.outputs, { seen: 'from-the-job' });
  const d = await r.call({ command: 'run_container_step', args: { image: null, dockerfile: '/etc/Dockerfile', entryPointArgs: [], environmentVariables: {}, systemMountVolumes: [], userMountVolumes: [], portMappings: [] } });
  assert.equal(d.code, 1);
  assert.match(d.stdout, /the Dockerfile \/etc\/Dockerfile is not in the job's actions directory/);
  const other = await r.runContainerStep('docker.io/library/alpine:3', 'sh', ['-c', 'true']);
  assert.equal(other.code, 1);
  assert.match(other.stdout, /container: .*alpine:3/);
  await r.cleanupJob();
});

test('a runner run as root works too: its work directory is handed to the steps\' uid, its credentials stay out of reach', async () => {
  const r = newRunner({ uid: 0, gid: 0 });
  const p = await r.prepareJob({});
  assert.equal(p.code, 0, p.stdout);
  assert.match(p.stdout, /the runner runs as root: its work directory \(\d+ entries\) is handed to uid 100000/);
  const s = await r.runScript('echo "ok=yes" >> "$GITHUB_OUTPUT"; echo hi > /__w/repo/repo/f; cat /__w/../.credentials 2>&1 | head -1 || true');
  assert.equal(s.code, 0, s.stdout);
  assert.deepEqual(s.outputs, { ok: 'yes' });
  assert.doesNotMatch(s.stdout, /RUNNER-CREDENTIAL-CANARY/);
  assert.equal(r.ownerOf('repo/repo/f'), RUNNER_UID);
  await r.cleanupJob();
});

test('limits bite in runner mode: fork bomb, memory, wall time; the hook exits non-zero with the reason', async () => {
  const r = newRunner();
  assert.equal((await r.prepareJob({})).code, 0);
  const fork = await r.runScript('for i in $(seq 400); do sleep 30 & done; wait');
  assert.notEqual(fork.code, 0);
  assert.match(fork.stdout, /fork|Resource temporarily unavailable|process limit/);
  const mem = await r.runScript('head -c 600m /dev/zero | tail > /dev/null');
  assert.notEqual(mem.code, 0);
  assert.match(mem.stdout, /ran out of memory \(limit 256 MiB\)/);
  const t0 = Date.now();
  const slow = await r.runScript('sleep 60');
  assert.notEqual(slow.code, 0);
  assert.match(slow.stdout, /past its time limit \(8 s\)/);
  assert.ok(Date.now() - t0 < 30_000);
  await r.cleanupJob();
  assert.equal(await managedContainers(), 0);
});

test('a step that swaps GITHUB_OUTPUT for a link to the runner\'s credentials is caught: the runner reads nothing through it', async () => {
  const r = newRunner();
  assert.equal((await r.prepareJob({})).code, 0);
  const s = await r.runScript(`rm -f "$GITHUB_OUTPUT"; ln -s ${r.root}/.credentials "$GITHUB_OUTPUT"; ln -s ${r.root}/.credentials "$GITHUB_ENV.x"`);
  assert.equal(s.code, 1, s.stdout);
  assert.match(s.stdout, /GITHUB_OUTPUT \(\/__w\/_temp\/_runner_file_commands\/set_output_[0-9a-f-]+\) is a symbolic link; a step may not make the runner read through it: it was removed/);
  assert.deepEqual(s.outputs, {});
  assert.doesNotMatch(JSON.stringify(s), /RUNNER-CREDENTIAL-CANARY/);
  // A step that turns a directory the runner binds into a link is refused before its next container.
  const swap = await r.runScript(`rm -rf /__w/_temp/_github_home && ln -s ${r.root} /__w/_temp/_github_home`);
  assert.equal(swap.code, 0, swap.stdout);
  const next = await r.runScript('cat /github/home/.credentials');
  assert.equal(next.code, 1);
  assert.match(next.stdout, /_github_home \(for \/github\/home\) passes through the symbolic link .*a step changed it; the step is refused/);
  assert.doesNotMatch(next.stdout, /RUNNER-CREDENTIAL-CANARY/);
  await r.cleanupJob();
});

test('an attacker in a step finds neither the runner\'s credentials nor its process', async () => {
  const r = newRunner();
  assert.equal((await r.prepareJob({})).code, 0);
  const s = await r.runScript(
    [
      'set +e +o pipefail',
      'find / -xdev \\( -name .credentials -o -name .credentials_rsaparams -o -name .runner \\) 2>/dev/null | sed "s/^/found: /"',
      'for m in / /__w /__e /github/home /github/workflow; do find $m -maxdepth 3 \\( -name .credentials -o -name .runner \\) 2>/dev/null | sed "s/^/found: /"; done',
      'ls /__e/.. /__w/.. | tr "\\n" " "; echo',
      // The pattern is built at run time: the script file itself (in /__w/_temp) must not match.
      'p=RUNNER-CREDENTIAL; grep -l -a -s -r "$p-CANARY" /__w /__e /github /etc /root /home /tmp /run 2>/dev/null | head -3 | sed "s/^/leak: /"',
      'ps -eo comm= 2>/dev/null | sort -u | tr "\\n" " "; echo',
      'echo done',
    ].join('\n'),
  );
  assert.equal(s.code, 0, s.stdout);
  assert.match(s.stdout, /^done$/m);
  assert.doesNotMatch(s.stdout, /found: |leak: |RUNNER-CREDENTIAL-CANARY|RSA-PARAMS-CANARY|Runner\.Listener|Runner\.Worker/);
  await r.cleanupJob();
});

test('a host path outside the runner\'s directories, or one that holds its credentials, fails prepare_job with a clear error', async () => {
  const r = newRunner();
  const mounts = r.systemMounts();
  const outside = await r.call({ command: 'prepare_job', args: { container: { image: 'stockade/base', workingDirectory: '/__w/repo/repo', environmentVariables: {}, userMountVolumes: [], portMappings: [], systemMountVolumes: mounts.map((m) => (m.targetVolumePath === '/__w/_tool' ? { ...m, sourceVolumePath: '/etc' } : m)) }, services: [] } });
  assert.equal(outside.code, 1);
  assert.match(outside.stdout, /mount the host path \/etc at \/__w\/_tool, outside the runner's directory/);
  const holder = await r.call({ command: 'prepare_job', args: { container: { image: 'stockade/base', workingDirectory: '/__w/repo/repo', environmentVariables: {}, userMountVolumes: [], portMappings: [], systemMountVolumes: mounts.map((m) => (m.targetVolumePath === '/github/home' ? { ...m, sourceVolumePath: r.root } : m)) }, services: [] } });
  assert.equal(holder.code, 1);
  assert.match(holder.stdout, /outside the runner's directory|holds the runner's own directory/);
  const user = await r.prepareJob({ userMountVolumes: [{ sourceVolumePath: '/root', targetVolumePath: '/data', readOnly: false }], createOptions: '--privileged' });
  assert.equal(user.code, 1);
  assert.match(user.stdout, /container\.options '--privileged' is not supported/);
  assert.match(user.stdout, /container\.volumes is not supported/);
  // A work directory that is a link is refused too.
  const linked = join(base, `linked-${process.pid}`);
  symlinkSync(r.work, linked);
  const viaLink = await r.call({ command: 'prepare_job', args: { container: { image: 'stockade/base', workingDirectory: '/__w/repo/repo', environmentVariables: {}, userMountVolumes: [], portMappings: [], systemMountVolumes: mounts.map((m) => (m.targetVolumePath === '/__w' ? { ...m, sourceVolumePath: linked } : m)) }, services: [] } });
  assert.equal(viaLink.code, 1);
  rmSync(linked);
});

test('a forged hook state acts on nothing; a hook killed mid-step (the runner cancels) stops and removes its container', async () => {
  const r = newRunner();
  assert.equal((await r.prepareJob({})).code, 0);
  const real = r.state as { stockade: { job: string; token: string } };
  r.state = { stockade: { job: real.stockade.job, token: '0'.repeat(48) } };
  const forged = await r.runScript('echo should-not-run');
  assert.equal(forged.code, 1);
  assert.match(forged.stdout, /names no job this broker prepared/);
  assert.doesNotMatch(forged.stdout, /^should-not-run$/m);
  r.state = real;
  const killed = await r.runScript('sleep 60', { killAfterMs: 2500 });
  assert.notEqual(killed.code, 0);
  for (let i = 0; i < 50 && (await managedContainers()) > 0; i++) await new Promise((res) => setTimeout(res, 200));
  assert.equal(await managedContainers(), 0);
  assert.equal((await r.cleanupJob()).code, 0);
});

test('malformed hook input gets a clear error and the broker keeps serving', async () => {
  const r = newRunner();
  const bad = await r.call({ command: 'rm_rf' });
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /command 'rm_rf' is not one of/);
  const p = await r.prepareJob({});
  assert.equal(p.code, 0, p.stdout);
  await r.cleanupJob();
  assert.ok(existsSync(socket));
});

test('a runner started by hand needs only ACTIONS_RUNNER_CONTAINER_HOOKS: the installed hook finds the broker setup started on its default socket', async () => {
  const r = new FakeRunner(base, '');
  runners.push(r);
  const p = await r.prepareJob({ image: 'stockade/base' });
  assert.equal(p.code, 0, p.stdout);
  const s = await r.runScript('echo "via=default-socket" >> "$GITHUB_OUTPUT"');
  assert.equal(s.code, 0, s.stdout);
  assert.deepEqual(s.outputs, { via: 'default-socket' });
  assert.equal((await r.cleanupJob()).code, 0);
  // A user outside the broker's group cannot reach it at all.
  const stranger = new FakeRunner(base, '', { uid: 65534, gid: 65534 });
  runners.push(stranger);
  const refused = await stranger.prepareJob({});
  assert.equal(refused.code, 1);
  assert.match(refused.stdout, /cannot reach Stockade's hook broker at \/run\/stockade\/hook\.sock: connect EACCES/);
});

test('egress in runner mode: a step reaches the GitHub endpoints of the broker\'s configuration through the job\'s sidecar and nothing else; blocked attempts are reported', async () => {
  const world = await startOutsideWorld();
  const egressSocket = join(socketDir, 'egress.sock');
  // The test's outside world plays GitHub: --github-url https://allowed.test.
  const allow = githubEgressNames('https://allowed.test');
  const jobs = new HookJobs({
    sandbox,
    images: runnerImages(host),
    policy: { allow: [], allowDigestPinned: false },
    limits: { ...DEFAULT_LIMITS, timeoutMs: 60_000 },
    runnerUid: RUNNER_UID,
    logger: silentLogger(),
    allow,
    egress: egressSettings(root, { allow, permittedRanges: [world.subnet] }, world.dns),
    sidecarImage: baseImageRef(host),
    nodeBinary: process.execPath,
  });
  const egressServer = await startHookBroker({ socketPath: egressSocket, gid: RUNNER_GID, jobs, logger: silentLogger() });
  try {
    const r = newRunner(undefined, egressSocket);
    const p = await r.prepareJob({});
    assert.equal(p.code, 0, p.stdout);
    assert.match(p.stdout, /egress: allowed\.test through the sidecar/);
    assert.match(p.stdout, /network only to allowed\.test/);
    r.write(join(r.work, 'repo/repo/ca.pem'), readFileSync(world.certFile, 'utf8'));
    const s = await r.runScript(
      [
        'set +e',
        'c() { curl -sS -f --max-time 5 --cacert ca.pem "$@"; }',
        'c https://allowed.test/ >/dev/null && echo REACHED results-proxy || echo BLOCKED results-proxy',
        "c --noproxy '*' https://allowed.test/ >/dev/null && echo REACHED results-transparent || echo BLOCKED results-transparent",
        'c https://other.test/ >/dev/null 2>&1 && echo REACHED other || echo BLOCKED other',
        `c --noproxy '*' http://${world.other}/ >/dev/null 2>&1 && echo REACHED direct-ip || echo BLOCKED direct-ip`,
        'exit 0',
      ].join('\n'),
      { env: { ACTIONS_RESULTS_URL: 'https://allowed.test/', ACTIONS_ID_TOKEN_REQUEST_URL: 'https://other.test/token' } },
    );
    assert.equal(s.code, 0, s.stdout);
    assert.match(s.stdout, /^REACHED results-proxy$/m);
    assert.match(s.stdout, /^REACHED results-transparent$/m);
    assert.match(s.stdout, /^BLOCKED other$/m, 'a URL in the step\'s environment does not widen the allowlist');
    assert.match(s.stdout, /^BLOCKED direct-ip$/m);
    const c = await r.cleanupJob();
    assert.equal(c.code, 0);
    assert.match(c.stdout, /egress: \d+ blocked network attempts/);
    assert.match(c.stdout, /blocked: .*other\.test/);
    assert.equal(await managedContainers(), 0);
    assert.ok(!world.events().some((e) => e.host === 'other.test' || e.address === world.other), JSON.stringify(world.events().slice(-5)));
  } finally {
    egressServer.close();
    world.stop();
  }
});

test('setup --runner TARBALL installs the official runner as its user; a hostile tarball is refused and writes nothing outside; doctor reads the version', async () => {
  const { pack } = await import('tar-stream');
  const { gzipSync } = await import('node:zlib');
  const escape = `/tmp/stockade-runner-escape-${process.pid}`;
  const tarball = async (name: string, hostile: boolean) => {
    const p = pack();
    p.entry({ name: 'run.sh', mode: 0o755 }, '#!/bin/sh\necho run\n');
    p.entry({ name: 'bin/Runner.Listener', mode: 0o755 }, '#!/bin/sh\necho 2.321.0\n');
    p.entry({ name: 'bin/setuid', mode: 0o4755 }, 'x');
    if (hostile) p.entry({ name: `../../../..${escape}`, mode: 0o644 }, 'escaped');
    p.finalize();
    const chunks: Buffer[] = [];
    for await (const c of p) chunks.push(c as Buffer);
    const file = join(base, name);
    writeFileSync(file, gzipSync(Buffer.concat(chunks)), { mode: 0o600 });
    return file;
  };
  const install = '/home/github-runner/actions-runner';
  const had = existsSync(install);
  const setupWith = (file: string) => spawnSync('node', [join(root, 'dist/cli.js'), 'setup', '--no-images', '--runner', file], { encoding: 'utf8' });
  try {
    const bad = setupWith(await tarball('hostile.tar.gz', true));
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /extracting .*hostile\.tar\.gz failed: .*Member name contains '\.\.'/s);
    assert.ok(!existsSync(escape), 'a member naming a path outside is not written there');
    if (!had) assert.ok(!existsSync(install), 'a refused archive leaves no half install');
    const s = setupWith(await tarball('actions-runner-linux-x64-2.321.0.tar.gz', false));
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stderr, /installing GitHub's runner from .* into \/home\/github-runner\/actions-runner \(as github-runner\)/);
    assert.equal(statSync(join(install, 'run.sh')).uid, RUNNER_UID);
    assert.equal(statSync(join(install, 'bin/setuid')).mode & 0o7000, 0, 'no setuid bit survives');
    const d = spawnSync('node', [join(root, 'dist/cli.js'), 'doctor'], { encoding: 'utf8' });
    assert.match(d.stdout, /ok {7}runner mode: official runner: \/home\/github-runner\/actions-runner 2\.321\.0/);
    const missing = setupWith(join(base, 'nope.tar.gz'));
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /no such file/);
  } finally {
    if (!had) rmSync(install, { recursive: true, force: true });
    rmSync(escape, { force: true });
  }
});

test('services in runner mode: started on the job network under the sandbox, reachable by name from steps, in the response in the runner\'s order; volumes and other options refused', async () => {
  const r = newRunner();
  const svc = (name: string, extra: Record<string, unknown> = {}) => ({ contextName: name, image: 'stockade/base', entryPointArgs: [], environmentVariables: { SVC: name }, userMountVolumes: [], portMappings: ['5432:5432'], createOptions: '', ...extra });
  const p = await r.prepareJob({}, [svc('db'), svc('cache', { portMappings: ['6379'] })]);
  assert.equal(p.code, 0, p.stdout);
  const ctx = p.response?.context as { container: { network: string }; services: Array<{ id: string; network: string; ports: Record<string, string> }> };
  assert.match(ctx.container.network, /^stockade-hook-[0-9a-f]{12}$/);
  assert.equal(ctx.services.length, 2);
  assert.deepEqual(ctx.services.map((s) => s.ports), [{ 5432: '5432' }, { 6379: '6379' }]);
  for (const s of ctx.services) assert.equal(s.network, ctx.container.network);
  const s = await r.runScript('getent hosts db | cut -d" " -f1 | grep -c . ; getent hosts cache >/dev/null && echo cache-resolves');
  assert.equal(s.code, 0, s.stdout);
  assert.match(s.stdout, /^1$/m);
  assert.match(s.stdout, /^cache-resolves$/m);
  assert.equal((await r.cleanupJob()).code, 0);
  assert.equal(await managedContainers(), 0);
  const bad = await r.prepareJob({}, [svc('db', { userMountVolumes: [{ sourceVolumePath: '/etc', targetVolumePath: '/data', readOnly: false }, { sourceVolumePath: '/var/run/docker.sock', targetVolumePath: '/var/run/docker.sock', readOnly: false }] })]);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /service db: the Docker socket is never mounted/);
  assert.match(bad.stdout, /service db: volumes are not supported: host paths are never mounted \(\/etc\)/);
  const opt = await r.prepareJob({}, [svc('db', { createOptions: '--privileged' })]);
  assert.equal(opt.code, 1);
  assert.match(opt.stdout, /service option '--privileged' is not supported/);
  assert.equal(await managedContainers(), 0);
});

test('a Dockerfile action is built under the sandbox\'s rules: FROM by the image policy, RUN lines under read-back limits (a fork bomb in RUN is stopped), cached, then run like an image action', { timeout: 300_000 }, async () => {
  const r = newRunner();
  assert.equal((await r.prepareJob({})).code, 0);
  const action = (name: string, dockerfile: string) => {
    const dir = join(r.work, '_actions/acme', name, 'v1');
    mkdirSync(dir, { recursive: true });
    spawnSync('chown', ['-R', `${RUNNER_UID}:${RUNNER_GID}`, join(r.work, '_actions/acme')]);
    r.write(join(dir, 'Dockerfile'), dockerfile);
    r.write(join(dir, 'greeting.txt'), `hello from ${name}\n`);
    return join(dir, 'Dockerfile');
  };
  const tag = `${process.pid}-${Date.now()}`;
  const good = action('built', `FROM ${baseImageRef(host)}\nCOPY greeting.txt /greeting.txt\nRUN echo "built ${tag}" >> /greeting.txt\nENTRYPOINT ["cat", "/greeting.txt"]\n`);
  const first = await r.runContainerStep({ dockerfile: good }, '', []);
  assert.equal(first.code, 0, first.stdout);
  assert.match(first.stdout, /building the action's image localhost\/stockade-action\/[0-9a-f]{20}:built .*no network, no capabilities/);
  assert.match(first.stdout, /^hello from built$/m);
  assert.match(first.stdout, new RegExp(`^built ${tag}$`, 'm'));
  const again = await r.runContainerStep({ dockerfile: good }, '', []);
  assert.equal(again.code, 0, again.stdout);
  assert.match(again.stdout, /is already built/);
  const foreign = await r.runContainerStep({ dockerfile: action('foreign', 'FROM docker.io/library/alpine:3\nRUN true\n') }, '', []);
  assert.equal(foreign.code, 1);
  assert.match(foreign.stdout, /FROM .*alpine:3/);
  const variable = await r.runContainerStep({ dockerfile: action('variable', 'ARG BASE=x\nFROM ${BASE}\n') }, '', []);
  assert.equal(variable.code, 1);
  assert.match(variable.stdout, /uses a build argument; the image must be named literally/);
  const bomb = await r.runContainerStep({ dockerfile: action('bomb', `FROM ${baseImageRef(host)}\nRUN echo ${tag}; for i in $(seq 400); do sleep 30 & done; wait\n`) }, '', []);
  assert.equal(bomb.code, 1, bomb.stdout);
  assert.match(bomb.stdout, /the build hit its process limit \(128\)/, bomb.stdout);
  assert.match(bomb.stdout, /the build hit its process limit \(128\)|Resource temporarily unavailable|fork/);
  await r.cleanupJob();
});
