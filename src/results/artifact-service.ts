import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ResultsContext } from './results-server';
import { int, readJsonBody, sendJson, str, TwirpError } from './twirp';
import type { Artifact } from './results-store';

const MAX_BODY = 64 * 1024;
/** Characters upload-artifact refuses in a name (path-and-artifact-name-validation of @actions/artifact). */
const BAD_NAME = /["":<>|*?\r\n\\/]/;

function checkName(name: string): string {
  if (!name) throw new TwirpError('invalid_argument', 'name is empty');
  if (BAD_NAME.test(name)) throw new TwirpError('invalid_argument', `artifact name '${name}' contains a character artifacts cannot have: " : < > | * ? \\r \\n \\ /`);
  return name;
}

/** The run a request names must be the job's own: a job never sees another run's artifacts. */
function checkRun(c: ResultsContext, body: Record<string, unknown>): void {
  if (str(body, 'workflow_run_backend_id', 64) !== c.job.runBackendId) throw new TwirpError('permission_denied', 'the request names another workflow run');
}

function describe(a: Artifact) {
  return {
    workflow_run_backend_id: a.runBackendId,
    workflow_job_run_backend_id: a.jobBackendId,
    database_id: String(a.id),
    name: a.name,
    size: String(a.size),
    created_at: new Date(a.createdAt).toISOString(),
    ...(a.hash ? { digest: a.hash } : {}),
  };
}

/** Artifacts v4: twirp `github.actions.results.api.v1.ArtifactService` (upload-artifact v4+, @actions/artifact 2+). */
export async function artifactTwirp(c: ResultsContext, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJsonBody(req, MAX_BODY);
  const { store, job } = c;
  checkRun(c, body);
  if (method === 'CreateArtifact') {
    if (str(body, 'workflow_job_run_backend_id', 64) !== job.jobBackendId) throw new TwirpError('permission_denied', 'the request names another job');
    const name = checkName(str(body, 'name', 256));
    const version = int(body, 'version');
    // 4 is upload-artifact v4's; newer clients send higher ones (@actions/artifact 6 sends 7) for the same protocol.
    if (version !== undefined && (version < 4 || version > 99)) throw new TwirpError('invalid_argument', `artifact version ${version} is not supported (4 and later are)`);
    const expiresRaw = body.expires_at;
    const expires = typeof expiresRaw === 'string' ? Date.parse(expiresRaw) : Number.POSITIVE_INFINITY;
    if (Number.isNaN(expires)) throw new TwirpError('invalid_argument', 'expires_at is not a timestamp');
    const made = store.createArtifact(job.repository, job.runBackendId, job.jobBackendId, name, expires);
    if (!made.ok) throw new TwirpError(made.code, made.why);
    c.events.push({ kind: 'artifact-create', key: name });
    return sendJson(res, 200, { ok: true, signed_upload_url: c.signedUrl({ blob: made.artifact.blob, op: 'w', maxBytes: store.limits.artifactQuotaBytes }) });
  }
  if (method === 'FinalizeArtifact') {
    const name = checkName(str(body, 'name', 256));
    const pending = store.pendingArtifact(job.repository, job.runBackendId, job.jobBackendId, name);
    if (!pending) throw new TwirpError('not_found', `no upload of artifact ${name} is in progress in this job`);
    const hash = typeof body.hash === 'string' ? body.hash.slice(0, 200) : '';
    const done = store.finalizeArtifact(pending, hash);
    if (!done.ok) throw new TwirpError('failed_precondition', done.why);
    c.events.push({ kind: 'artifact-upload', key: name, bytes: done.size });
    return sendJson(res, 200, { ok: true, artifact_id: String(pending.id) });
  }
  if (method === 'ListArtifacts') {
    const name = body.name_filter === undefined ? undefined : str(body, 'name_filter', 256);
    const id = int(body, 'id_filter');
    const list = store.listArtifacts(job.repository, job.runBackendId, { name, id });
    return sendJson(res, 200, { artifacts: list.map(describe) });
  }
  if (method === 'GetSignedArtifactURL' || method === 'DeleteArtifact') {
    const name = checkName(str(body, 'name', 256));
    const a = store.listArtifacts(job.repository, job.runBackendId, { name })[0];
    if (!a) throw new TwirpError('not_found', `no artifact named ${name} in this workflow run`);
    if (method === 'DeleteArtifact') {
      store.deleteArtifact(a);
      return sendJson(res, 200, { ok: true, artifact_id: String(a.id) });
    }
    c.events.push({ kind: 'artifact-download', key: name, bytes: a.size });
    return sendJson(res, 200, { name: a.name, signed_url: c.signedUrl({ blob: a.blob, op: 'r', maxBytes: 0, fileName: a.name }) });
  }
  throw new TwirpError('bad_route', `ArtifactService has no method ${method}`);
}
