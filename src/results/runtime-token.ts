import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';

/** Who a job is to the results service: what its ACTIONS_RUNTIME_TOKEN says, and where its caches go. */
export interface ResultsJob {
  repository: string;
  /** The workflow run's id in the results service (a UUID, as GitHub's). */
  runBackendId: string;
  /** The job's id in the results service. */
  jobBackendId: string;
  /** The scope (ref) the job's caches are saved to. */
  writeScope: string;
  /** Scopes a restore looks in, in order: the job's own first, then its base and the default branch. */
  readScopes: string[];
}

/**
 * The job's ACTIONS_RUNTIME_TOKEN: a JWT as GitHub's clients expect it, whose `scp` claim names
 * `Actions.Results:<run>:<job>` (@actions/artifact reads its backend ids there). It is signed with a
 * key that exists only for this job; the job's results service accepts this token and no other.
 */
export async function mintRuntimeToken(job: ResultsJob, lifetimeSeconds: number): Promise<string> {
  const scp = ['Actions.ExampleScope', 'Actions.GenericRead:00000000-0000-0000-0000-000000000000', `Actions.UploadArtifacts:${job.runBackendId}:${job.jobBackendId}`, `Actions.Results:${job.runBackendId}:${job.jobBackendId}`].join(' ');
  return new SignJWT({ scp, repository: job.repository, ref: job.writeScope })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('stockade')
    .setAudience('vso:stockade-results')
    .setSubject(`${job.repository}:${job.jobBackendId}`)
    .setIssuedAt()
    .setNotBefore('0s')
    .setExpirationTime(`${Math.max(60, Math.ceil(lifetimeSeconds))}s`)
    .sign(randomBytes(32));
}
