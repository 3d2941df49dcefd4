/**
 * App mode gives every job a GITHUB_TOKEN of its own: an installation token for the job's
 * repository only, with the permissions the workflow grants, revoked when the job ends.
 * The unmodified actions/github-script@v8.0.0 uses it against the fake GitHub, which checks
 * each request's token scope the way GitHub does (404 outside its repositories, 403 without
 * the permission).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endWorld, deliver, examplePayload, makeWorld, setDiagnostics, startServer, until, type ServerProcess, type World } from './helpers';

const SHA = 'c'.repeat(40);
const GREET_SHA = 'd'.repeat(40);
const WORKFLOW = `name: Token
on: push
permissions:
  issues: write
jobs:
  comment:
    runs-on: stockade
    steps:
      - id: gs
        uses: actions/github-script@v8.0.0
        with:
          script: |
            const r = await github.rest.issues.createComment({ owner: context.repo.owner, repo: context.repo.repo, issue_number: 7, body: 'hello from ' + context.job });
            core.setOutput('url', r.data.html_url);
            return r.data.id;
      - uses: acme/greet@v1
      - run: echo "vars env=\${{ vars.DEPLOY_ENV }} org=\${{ vars.ORG_ONLY }}"
      - run: echo "comment at \${{ steps.gs.outputs.url }} result=\${{ steps.gs.outputs.result }} token=[\${{ github.token }}] same=\${{ github.token == secrets.GITHUB_TOKEN }}"
  readonly:
    runs-on: stockade
    permissions:
      contents: read
    steps:
      - id: denied
        continue-on-error: true
        uses: actions/github-script@v8.0.0
        with:
          script: |
            await github.rest.issues.createComment({ owner: context.repo.owner, repo: context.repo.repo, issue_number: 7, body: 'must not land' });
      - id: other
        continue-on-error: true
        uses: actions/github-script@v8.0.0
        with:
          script: |
            await github.rest.repos.get({ owner: 'octo-org', repo: 'another-repo' });
      - uses: actions/github-script@v8.0.0
        with:
          script: |
            const r = await github.rest.repos.get({ owner: context.repo.owner, repo: context.repo.repo });
            console.log('read ' + r.data.full_name);
      - run: echo "denied=\${{ steps.denied.outcome }} other=\${{ steps.other.outcome }}"
      - name: no other credential goes through
        run: |
          code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: token ghs_not_the_job_token" "$GITHUB_API_URL/repos/octo-org/hello")
          echo "forged=$code"
`;

/** No permissions: GitHub's restricted default (contents and packages read). */
const DEFAULT_WORKFLOW = `name: Default
on: push
jobs:
  plain:
    runs-on: stockade
    steps:
      - run: echo "default token [\${{ github.token }}]"
`;

let w: World;
let state: string;
let server: ServerProcess;

before(async () => {
  w = await makeWorld({ '.stockade/workflows/token.yml': WORKFLOW, '.stockade/workflows/default.yml': DEFAULT_WORKFLOW, 'README.md': 'readme\n' }, SHA);
  // A remote action not in the offline cache: fetched with the installation's token.
  const src = mkdtempSync(join(tmpdir(), 'stockade-greet-'));
  mkdirSync(join(src, 'acme-greet-1234567'));
  writeFileSync(join(src, 'acme-greet-1234567/action.yml'), 'name: greet\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      run: echo "greetings from a fetched action"\n');
  w.fake.repos.set('acme/greet', { workflows: {}, tarball: spawnSync('tar', ['-czf', '-', '-C', src, 'acme-greet-1234567']).stdout, runs: {}, refs: { v1: GREET_SHA } });
  w.fake.variables.set('octo-org/hello', { repo: [{ name: 'DEPLOY_ENV', value: 'staging' }], org: [{ name: 'DEPLOY_ENV', value: 'prod' }, { name: 'ORG_ONLY', value: 'from-org' }] });
  state = mkdtempSync(join(tmpdir(), 'stockade-token-'));
  server = await startServer(w, state, ['--action-cache', join(process.cwd(), '../shared/real-actions'), '--concurrency', '1']);
  setDiagnostics(() => `\nviolations: ${JSON.stringify(w.fake.violations)}\nrequests: ${w.fake.requests.map((r) => `${r.operationId} ${r.path}`).join('\n')}\nserver: ${server.stderr().slice(-4000)}`);
});

after(() => endWorld(w, server, state));

test('each job gets a GITHUB_TOKEN scoped to its repository and permissions, used by actions/github-script, masked, revoked at the end; vars come from the API', async () => {
  const push = examplePayload('push', undefined, (p) => Object.assign(p, { ref: 'refs/heads/main', after: SHA, deleted: false }));
  await deliver(w, server.url, 'push', push);
  const key = `octo-org/hello/app/push/refs/heads/main/${SHA}`;
  const run = await until('token run completed', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === key && c.fields.status === 'completed'), 120_000);
  const text = (run.fields.output as { text: string }).text;
  assert.equal(run.fields.conclusion, 'success', text);

  // The comment landed, made with a token that asked for this repository and issues: write.
  assert.equal(w.fake.comments.length, 1, text);
  const c = w.fake.comments[0]!;
  assert.equal(c.repo, 'octo-org/hello');
  assert.equal(c.body, 'hello from comment');
  const scope = w.fake.scopedTokens.get(c.token);
  assert.ok(scope, 'the comment was made with a job token');
  assert.deepEqual(scope.repositories, ['hello']);
  assert.deepEqual(scope.permissions, { metadata: 'read', issues: 'write' });
  assert.match(text, /comment at https:\/\/github\.com\/octo-org\/hello\/issues\/7#issuecomment-1 result=\d+ token=\[\*\*\*\] same=true/);
  assert.ok(!text.includes(c.token), 'the token is masked');

  // The job with contents: read only: the fake refused the comment (403) and another repository (404); reading its own worked.
  assert.match(text, /denied=failure other=failure/);
  // The fetched action ran, and the summary says at which commit.
  assert.match(text, /greetings from a fetched action/);
  assert.match((run.fields.output as { summary: string }).summary, new RegExp(`Actions: .*\`acme/greet@v1\` at \`${GREET_SHA}\``));
  // vars: the repository's variable over the organisation's of the same name.
  assert.match(text, /vars env=staging org=from-org/);
  assert.match(text, /read octo-org\/hello/);
  assert.match(text, /Resource not accessible by integration/);
  // A forged credential never reaches GitHub: the gateway answers 401 itself.
  assert.match(text, /forged=401/);
  assert.ok(!w.fake.requests.some((r) => r.auth.includes('ghs_not_the_job_token')));

  // The default permissions ask for packages: read, which this App lacks (GitHub would refuse the whole token): left out.
  // Three job tokens were made (the default one without packages); all are revoked.
  const jobTokens = [...w.fake.scopedTokens.values()];
  assert.equal(jobTokens.length, 3);
  assert.equal(jobTokens.filter((t) => JSON.stringify(t.permissions) === JSON.stringify({ metadata: 'read', contents: 'read' })).length, 2, JSON.stringify(jobTokens));
  assert.match(text, /default token \[\*\*\*\]/);
  assert.match(server.stderr(), /lacks what the App was not granted: packages: read \(the App has none\)/);
  await until('tokens revoked', () => jobTokens.every((t) => t.revoked), 10_000);
});
