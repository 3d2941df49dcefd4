import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The polyglot matrix: in each runner image, under the default seccomp profile and
 * limits (one fresh rootless container per step, no network), a real program builds
 * and its tests pass, then the language's own way to call denied syscalls gets EPERM
 * and the usual ways out of a container all fail.
 */
const root = process.cwd();
const cli = join(root, 'dist/cli.js');
const projects = join(root, 'test/images/projects');
const attacks = readFileSync(join(root, 'test/images/attacks.sh'), 'utf8');

const IMAGES: Record<string, { build: string; attack: string; expect: RegExp[] }> = {
  python: {
    build: 'python3 -m unittest discover -s tests -v && python3 -m pytest -q tests',
    attack: 'python3 attack.py',
    expect: [/^python unshare: EPERM$/m, /^python mount: EPERM$/m, /^python setns: EPERM$/m, /^python keyctl: EPERM$/m, /^python bpf: EPERM$/m],
  },
  cpp: {
    build: 'make test && g++ --version | head -n 1',
    attack: 'gcc -O0 -o attack attack.c && ./attack',
    expect: [/^c unshare: EPERM$/m, /^c mount: EPERM$/m, /^c setns: EPERM$/m, /^c bpf: EPERM$/m, /^c kexec_load: EPERM$/m, /^c int0x80: (SIGSYS|killed by another signal)$/m],
  },
  rust: {
    build: 'cargo build --offline && cargo test --offline && ./target/debug/sandboxed',
    attack: 'cargo run --offline -q --bin attack',
    expect: [/^rust unshare: EPERM$/m, /^rust mount: EPERM$/m, /^rust setns: EPERM$/m, /^rust keyctl: EPERM$/m, /^rust bpf: EPERM$/m],
  },
  go: {
    build: 'go vet ./... && go build ./... && go test -v ./... && go run .',
    attack: 'go run ./attack',
    expect: [/^go unshare: EPERM$/m, /^go mount: EPERM$/m, /^go setns: EPERM$/m, /^go keyctl: EPERM$/m, /^go bpf: EPERM$/m],
  },
  node: {
    build: 'node --version && node --test',
    attack: 'node attack.mjs',
    expect: [/^node unshare: EPERM$/m, /^node write-proc-sys: (EROFS|EACCES|EPERM)$/m, /^node write-sys: (EROFS|EACCES|EPERM|ENOENT)$/m],
  },
};

for (const [image, spec] of Object.entries(IMAGES)) {
  test(`${image}: a real project builds and tests pass in the sandbox; denied syscalls get EPERM; nothing leaves the container`, () => {
    const dir = mkdtempSync(join(tmpdir(), `stockade-${image}-`));
    cpSync(join(projects, image), dir, { recursive: true });
    writeFileSync(join(dir, 'attacks.sh'), attacks);
    mkdirSync(join(dir, '.github/workflows'), { recursive: true });
    const indent = (s: string) => s.split('\n').map((l) => `          ${l}`).join('\n');
    writeFileSync(
      join(dir, '.github/workflows/ci.yml'),
      `on: push
jobs:
  matrix:
    runs-on: [self-hosted, stockade, ${image}]
    steps:
      - name: build and test
        run: |
${indent(spec.build)}
      - name: language attacks
        run: |
${indent(spec.attack)}
      - name: container escapes
        run: bash attacks.sh
`,
    );
    const r = spawnSync('node', [cli, 'run', '-C', dir, '--json'], { encoding: 'utf8', timeout: 900_000, maxBuffer: 64 * 1024 ** 2 });
    let json: { jobs: Array<{ error?: string; steps: Array<{ name: string; conclusion: string; log: string[] }> }> };
    try {
      json = JSON.parse(r.stdout) as typeof json;
    } catch {
      throw new Error(`no JSON (exit ${r.status}): ${r.stdout.slice(-2000)}\n${r.stderr.slice(-3000)}`);
    }
    const job = json.jobs[0]!;
    const log = (name: string) => job.steps.find((s) => s.name === name)?.log.join('\n') ?? '';
    const all = job.steps.map((s) => `--- ${s.name} (${s.conclusion})\n${s.log.slice(-60).join('\n')}`).join('\n');
    assert.equal(r.status, 0, `${job.error ?? ''}\n${all}`);
    for (const re of spec.expect) assert.match(log('language attacks'), re, all);
    const escapes = log('container escapes');
    const lines = escapes.split('\n').filter((l) => l.startsWith('shell '));
    assert.equal(lines.length, 10, escapes);
    for (const l of lines) assert.match(l, /: denied \(/, l);
  });
}

test('stockade images list finds each image\'s toolchains by running probes inside it', () => {
  const r = spawnSync('node', [cli, 'images', 'list', '--json'], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  const list = JSON.parse(r.stdout) as Array<{ name: string; present: boolean; sizeBytes: number; toolchains: Array<{ name: string; version: string }> }>;
  const found = (image: string) => new Map(list.find((i) => i.name === image)!.toolchains.map((t) => [t.name, t.version]));
  for (const i of list) assert.ok(i.present && i.sizeBytes > 0, `${i.name} is built`);
  assert.match(found('python').get('pytest') ?? '', /^pytest \d+\./);
  assert.match(found('node').get('node') ?? '', /^v\d+\.\d+\.\d+ x64/);
  assert.match(found('go').get('go') ?? '', /^go version go1\.\d+/);
  assert.match(found('rust').get('rustc') ?? '', /^rustc 1\.\d+\.\d+ host x86_64-unknown-linux-gnu$/);
  assert.match(found('cpp').get('g++') ?? '', /^\d+\.\d+\.\d+ target x86_64-linux-gnu$/);
  // full: what ubuntu-latest workflows use most, in one image.
  for (const tool of ['python', 'pip', 'pytest', 'node', 'npm', 'gcc', 'g++', 'make', 'cmake', 'jq']) assert.ok(found('full').get(tool), `full lacks ${tool}`);
  assert.equal(found('full').get('jq'), found('full').get('jq')?.match(/^jq-1\.\d+/)?.input);
  assert.equal(found('base').get('jq'), undefined);
  assert.equal(found('base').get('go'), undefined, 'the base has no Go: probes report what answers, not labels');
  assert.equal(found('python').get('rustc'), undefined);
});
