import { interpolate, type JobModel, type JobStatus, type WorkflowModel } from '../workflow';
import { narrowAllowlist, parseDomainList } from '../egress';
import type { JobNetwork } from './job-network';
import type { JobState } from './step-types';
import type { EgressReport, JobResult, JobSettings } from './types';

/**
 * What the job's network saw: the sidecar's counts, plus the direct attempts each
 * step made to addresses with no route (the sidecar never sees those).
 */
export function egressOf(net: JobNetwork | undefined, state: JobState): Pick<JobResult, 'egress'> {
  const direct = state.noRoute.reduce((a, x) => a + x.attempts, 0);
  if (!net?.sidecar && !direct) return {};
  // Masked again at the end: a secret registered by ::add-mask:: after the refusal is masked too.
  const report: EgressReport = net?.sidecar ? { ...net.report, refusals: net.report.refusals.map((r) => state.masker.mask(r)), ...(net.report.audited ? { audited: net.report.audited.map((n) => state.masker.mask(n)) } : {}) } : { dnsAllowed: 0, dnsRefused: 0, connectionsAllowed: 0, connectionsRefused: 0, bytesOut: 0, refusals: [] };
  report.connectionsRefused += direct;
  // Container labels are step indexes (`3`, `3.1`, `pre-3`, `post-3`): named as the job's results name them.
  const nameOf = (label: string) => {
    const r = state.results.find((x) => x.index === Number(/\d+/.exec(label)?.[0]));
    return r ? `${label.startsWith('pre-') ? 'Pre ' : label.startsWith('post-') ? 'Post ' : ''}${r.name}` : label;
  };
  for (const x of state.noRoute) report.refusals.push(state.masker.mask(`${x.attempts} direct connection${x.attempts === 1 ? '' : 's'} to addresses with no route in step "${nameOf(x.step)}"`));
  return { egress: report };
}

/** What `STOCKADE_EGRESS: none` gives: no network, in audit mode too. */
export const NO_EGRESS: string[] = [];

/**
 * The names this job may reach: the runner's allowlist, narrowed by the workflow's
 * or job's `STOCKADE_EGRESS` (names separated by spaces or commas; `none` for no
 * network). A name outside the runner's allowlist fails the job before any step.
 */
export function egressAllowlist(wf: WorkflowModel, job: JobModel, contexts: Record<string, unknown>, status: JobStatus, settings: JobSettings): string[] {
  const max = settings.egress?.policy.allow ?? [];
  const raw = job.env.STOCKADE_EGRESS ?? wf.env.STOCKADE_EGRESS;
  if (raw === undefined) return max;
  const text = interpolate(raw, contexts, status).trim();
  if (text === '' || text === 'none') return NO_EGRESS;
  try {
    return narrowAllowlist(max, parseDomainList(text));
  } catch (e) {
    throw new Error(`STOCKADE_EGRESS: ${(e as Error).message}`);
  }
}
