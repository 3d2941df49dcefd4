import { failedReport, type CheckRuns } from './check-runs';
import { jobPageUrl } from './log-link';
import type { JobSpec, PlannedJob, ServerJob, ServerStore } from './plan-delivery';
import { refusedBeforeQueue } from './precheck';
import type { ServerOptions } from './server-options';

export interface AcceptDeps {
  o: ServerOptions;
  checkRuns: CheckRuns;
  /** The settings a job is checked against before it is queued. */
  settings: ServerOptions['settings'];
  /** When this process started: rows created before it were accepted by an earlier one. */
  startedAt: number;
  hostId: string;
  leaseMs: number;
}

/**
 * accepted → queued, with the check run created as `queued`; or failed at once when the sandbox
 * would refuse the workflow (before it takes a slot). The caller holds the job's accept claim.
 */
export async function acceptJob(d: AcceptDeps, row: ServerJob, attempt: number): Promise<void> {
  const { o } = d;
  const spec = row.spec;
  try {
    const name = `stockade: ${spec.jobName}`;
    // A job accepted by an earlier process may have had its check run created just
    // before a crash, without the id being saved: find it rather than make a second.
    // So may a host that accepted it before this one (attempt > 1), or a create that timed out after GitHub made it.
    const earlier = row.checkRunId ?? (row.createdAt < d.startedAt || attempt > 1 || row.githubAttempts > 0 ? await o.github.findCheckRun(row.installationId, spec.owner, spec.repo, row.headSha, name, row.key) : undefined);
    // What the sandbox will refuse is refused here, before the job takes a slot: it completes at once with the errors.
    const payload = async () => JSON.parse((await o.store.getDelivery(row.deliveryGuid))?.payload ?? '{}') as Record<string, unknown>;
    // In runner mode GitHub's runner reads the workflow (actions, containers); the hook judges each step.
    const viaRunner = !!o.jit && spec.mode === 'workflow_job';
    const refused = earlier === undefined && !viaRunner ? await refusedBeforeQueue(o.github, row, spec, d.settings, await payload(), o.logger) : undefined;
    if (refused) {
      await o.store.transition(row.key, 'failed', { result: refused });
      return;
    }
    // The claim is confirmed (and extended) just before the check run is made: a host that was paused
    // past it must not create a second one beside the check run of the host that took the job over.
    if (earlier === undefined && !(await o.store.leases.renewAccept(row.key, d.hostId, attempt, d.leaseMs))) {
      o.logger.warn({ job: row.key, attempt }, 'accept claim lost to another host; it creates the check run');
      return;
    }
    const id = earlier ?? (await o.github.createCheckRun(row.installationId, spec.owner, spec.repo, {
      name,
      head_sha: row.headSha,
      status: 'queued',
      external_id: row.key,
      details_url: jobPageUrl(o.publicUrl, o.logKey, row.key),
    }));
    // Saved whatever the state (a job cancelled while the check run was being created must complete
    // this one), unless a later claim of the job exists.
    if (!(await o.store.leases.saveCheckRun(row.key, attempt, id))) {
      o.logger.error({ job: row.key, attempt, checkRun: id }, 'accept claim lost while its check run was being created');
      return;
    }
    await o.store.transition(row.key, 'queued');
  } catch (e) {
    await d.checkRuns.writeFailed(row, e, 'check run could not be created', row.createdAt, async () => {
      // Terminal: the job never ran and GitHub will not take a check run for it.
      await o.store.transition(row.key, 'failed', { result: failedReport(row, `GitHub refused the check run: ${(e as Error).message}`) });
    });
  }
}

/** check_run rerequested / requested_action: the job behind the check run (its external_id) runs again. */
export async function planRerun(store: ServerStore, guid: string, payload: Record<string, unknown>): Promise<{ jobs: PlannedJob[]; reason: string }> {
  const action = String(payload.action ?? '');
  if (action !== 'rerequested' && action !== 'requested_action') return { jobs: [], reason: `check_run ${action} runs nothing` };
  const externalId = String(((payload.check_run ?? {}) as Record<string, unknown>).external_id ?? '');
  const original = await store.get(externalId.replace(/#rerun\/.*$/, ''));
  if (!original) return { jobs: [], reason: `check run ${externalId} is not one of this runner's jobs` };
  // A replayed re-run request (a fresh delivery id) while a re-run of the same job is still under way starts nothing.
  const busy = ['accepted', 'queued', 'running'].includes(original.state) ? original : await store.activeWithPrefix(`${original.key}#rerun/`);
  if (busy) return { jobs: [], reason: `a re-run of ${original.key} is already ${busy.state} (${busy.key})` };
  // A re-run can be asked for by anyone who can see the check run: it runs as untrusted (no secrets).
  const spec = original.spec;
  const untrusted: JobSpec = spec.mode === 'app' ? { ...spec, fromFork: true } : { ...spec, untrusted: true };
  return {
    jobs: [{ key: `${original.key}#rerun/${guid}`, deliveryGuid: original.deliveryGuid, repository: original.repository, installationId: original.installationId, headSha: original.headSha, spec: untrusted }],
    reason: `re-run of ${original.key} (untrusted: no secrets)`,
  };
}
