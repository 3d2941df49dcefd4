import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root, tempDir } from './helpers';

// The next step's container is prepared while a step runs (src/runner/prewarm.ts): these tests hold it
// to being the same step as one made when it starts, and to no earlier step being able to steer it.
const cli = join(root, 'dist/cli.js');

function repo(workflow: string): string {
  const dir = tempDir();
  mkdirSync(join(dir, '.github/workflows'), { recursive: true });
  writeFileSync(join(dir, '.github/workflows/ci.yml'), workflow);
  return dir;
}

function run(dir: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync('node', [cli, 'run', '-C', dir], { encoding: 'utf8', timeout: 180_000, env: { ...process.env, STOCKADE_LOG_LEVEL: 'debug', STOCKADE_LOG_FORMAT: 'json', ...env } });
  // Which steps ran in a prepared container: the runner's debug line per step.
  const prepared = r.stderr
    .split('\n')
    .filter((l) => l.includes('"step phases"'))
    .map((l) => JSON.parse(l) as { step: string; prepared: boolean })
    .filter((l) => l.prepared)
    .map((l) => l.step);
  return { ...r, prepared };
}

/** The lines a step printed with `tag|`, as the human log shows them. */
const tagged = (out: string, tag: string) => out.split('\n').flatMap((l) => (l.includes(`${tag}|`) ? [l.slice(l.indexOf(`${tag}|`))] : []));

const probe = (tag: string) => `
          {
            echo "pwd=$(pwd) uid=$(id -u) gid=$(id -g) nofile=$(ulimit -n) nproc=$(ulimit -u) umask=$(umask)"
            grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd|CapPrm)' /proc/self/status
            echo "ppid=$PPID"
            env | grep -v -E '^(HOSTNAME|_|SHLVL|GITHUB_RUN_ID|ACTIONS_[A-Z_]*(URL|TOKEN))=' | sort | sed 's/^/env /'
          } | sed -E 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/UUID/g; s/^/${tag}|/'
          sleep 0.5`;

test('a step in a prepared container is the step a fresh one would run: directory, identity, limits, privileges, environment, exit code', () => {
  const dir = repo(`on: push
env:
  QUOTED: "it's \\"quoted\\" $HOME \`date\` \\\\ end"
jobs:
  a:
    runs-on: [self-hosted]
    steps:
      - run: sleep 0.5
      - name: two
        working-directory: sub/dir
        env:
          MULTI: "line one\\nline two"
          EMPTY: ""
        run: |
          ${probe('S2')}
      - name: three
        continue-on-error: true
        run: |
          ${probe('S3')}
          exit 3
      - name: four
        run: echo "S4|after=\${{ steps.x.outcome }} job=\${{ job.status }}"
`);
  mkdirSync(join(dir, 'sub/dir'), { recursive: true });
  writeFileSync(join(dir, 'sub/dir/.keep'), '');
  const warm = run(dir);
  const cold = run(dir, { STOCKADE_PREWARM: '0' });
  assert.equal(warm.status, 0, warm.stdout + warm.stderr.slice(-3000));
  assert.equal(cold.status, 0, cold.stdout + cold.stderr.slice(-3000));
  // Step 1 ran in a container prepared while the results forwarder started, steps 2, 3 and 4 in ones prepared while the step before slept; none with prewarm off.
  assert.deepEqual(warm.prepared, ['0', '1', '2', '3'], warm.stderr.split('\n').filter((l) => /prepared|cold/.test(l)).join('\n'));
  assert.deepEqual(cold.prepared, []);
  for (const tag of ['S2', 'S3', 'S4']) {
    const w = tagged(warm.stdout, tag);
    assert.ok(w.length > 5 || tag === 'S4', `${tag} printed: ${w.join('\n')}`);
    assert.deepEqual(w, tagged(cold.stdout, tag), `${tag} differs between a prepared and a fresh container`);
  }
  const s2 = tagged(warm.stdout, 'S2').join('\n');
  assert.match(s2, /S2\|pwd=\/github\/workspace\/sub\/dir /);
  assert.match(s2, /^S2\|env MULTI=line one$/m);
  assert.match(s2, /^S2\|env line two$/m);
  assert.match(s2, /S2\|env QUOTED=it's "quoted" \$HOME `date` \\ end/);
  assert.match(s2, /S2\|env EMPTY=$/m);
  assert.match(s2, /NoNewPrivs:\s+1/);
  assert.match(s2, /CapEff:\s+0+$/m);
  assert.match(warm.stdout, /S4\|after= job=success/);
  assert.match(warm.stdout, /exit code 3/);
});

test('an earlier step cannot steer the next step\'s prepared container: writing, holding or replacing its FIFO (gone once the launcher waits) makes that step start fresh; no step sees another\'s launch file', () => {
  // Each tampering step tries for 1.5 s, from the moment the next container is being prepared (a write is
  // bounded: opening a FIFO nobody reads any more would block the tampering step itself).
  // A write can block and time out (124): the launcher it reached ended, and the name is not gone yet. The step goes on.
  const tamper = (action: string) => `
          end=$(($(date +%s%N) + 1500000000)); n=0
          while [ "$(date +%s%N)" -lt "$end" ]; do for f in "$RUNNER_TEMP"/_stockade_go_*; do [ -p "$f" ] && { ${action}; n=$((n+1)); }; done; done
          echo "fifos tampered with: $n"`;
  const dir = repo(`on: push
jobs:
  a:
    runs-on: [self-hosted]
    steps:
      - name: write the next step's FIFO
        run: |${tamper(`timeout 0.3 sh -c 'echo "touch /tmp/hijacked; echo HIJACKED" > "$1"' sh "$f" || true`)}
      - name: two
        env:
          SECRET2: two-secret-value
        run: |
          test ! -e /tmp/hijacked && echo "step two ran its own script: $SECRET2"
          ${tamper('rm -f "$f" && ln -s /etc/passwd "$f"')}
      - name: three
        run: |
          grep -rl "two-secret-$(echo value)" "$RUNNER_TEMP" /tmp 2>/dev/null && echo LEAKED
          echo "step three ran"
          sleep 1
          echo "go names visible after 1 s: $(ls -a "$RUNNER_TEMP" | grep -c _stockade_go_)"
          ${tamper('{ sleep 5 > "$f" & }')}
      - name: four
        run: echo "step four ran; HIJACKED count $(ls /tmp/hijacked 2>/dev/null | wc -l)"
`);
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const r = run(dir);
  assert.equal(r.status, 0, r.stdout + r.stderr.slice(-3000));
  // A link a step left where the FIFO was is never followed by the runner (it is root on the host).
  assert.equal(readFileSync('/etc/passwd', 'utf8'), passwd);
  assert.match(r.stdout, /step two ran its own script: two-secret-value/);
  assert.match(r.stdout, /step three ran/);
  assert.match(r.stdout, /step four ran; HIJACKED count 0/);
  assert.doesNotMatch(r.stdout, /LEAKED|^HIJACKED/m);
  // Whatever a step caught of a FIFO, every step ran its own script, once.
  assert.equal((r.stdout.match(/step two ran its own script/g) ?? []).length, 1);
});
