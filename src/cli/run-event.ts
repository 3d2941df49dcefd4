import { StockadeError } from '../common';
import { normalizeOn } from '../workflow';

/** `inputs` of a workflow_dispatch run: the workflow's defaults, typed, overridden by --input. */
export function dispatchInputs(on: unknown, given: Record<string, string>): Record<string, unknown> {
  const cfg = normalizeOn(on).get('workflow_dispatch');
  const declared = ((cfg?.inputs ?? {}) as Record<string, Record<string, unknown> | null>) ?? {};
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const type = String(spec?.type ?? 'string');
    const raw = name in given ? given[name]! : spec?.default === undefined || spec?.default === null ? undefined : String(spec.default);
    if (raw === undefined) {
      if (spec?.required === true) throw new StockadeError('USAGE', `workflow_dispatch input '${name}' is required; pass --input ${name}=VALUE`);
      out[name] = type === 'boolean' ? false : '';
      continue;
    }
    if (type === 'boolean') {
      if (raw !== 'true' && raw !== 'false') throw new StockadeError('USAGE', `input '${name}' is a boolean; '${raw}' is not true or false`);
      out[name] = raw === 'true';
    } else if (type === 'number') {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new StockadeError('USAGE', `input '${name}' is a number; '${raw}' is not`);
      out[name] = n;
    } else if (type === 'choice') {
      const options = Array.isArray(spec?.options) ? spec.options.map(String) : [];
      if (!options.includes(raw)) throw new StockadeError('USAGE', `input '${name}' must be one of ${options.join(', ')}; got '${raw}'`);
      out[name] = raw;
    } else out[name] = raw;
  }
  for (const k of Object.keys(given)) if (!(k in declared)) throw new StockadeError('USAGE', `--input ${k}: the workflow declares no such workflow_dispatch input`);
  return out;
}

/** A payload like GitHub's for a local run without --eventpath. */
export function defaultEvent(eventName: string, git: { sha: string; ref: string; repository: string; actor: string }): Record<string, unknown> {
  const [owner = '', name = ''] = git.repository.split('/');
  const repository = { full_name: git.repository, name, owner: { login: owner }, default_branch: 'main' };
  const base = { repository, sender: { login: git.actor } };
  if (eventName === 'push') return { ...base, ref: git.ref, after: git.sha, before: '0'.repeat(40), head_commit: { id: git.sha } };
  if (eventName === 'workflow_dispatch') return { ...base, ref: git.ref, inputs: {} };
  return base;
}

/** github.ref and github.sha as GitHub sets them from the event payload, when one is given. */
export function withEventRef<T extends { sha: string; ref: string }>(git: T, eventName: string, event: Record<string, unknown>): T {
  const pr = event.pull_request as { head?: { sha?: unknown } } | undefined;
  if ((eventName === 'pull_request' || eventName === 'pull_request_target') && typeof event.number === 'number') {
    return { ...git, ref: eventName === 'pull_request' ? `refs/pull/${event.number}/merge` : git.ref, sha: typeof pr?.head?.sha === 'string' ? pr.head.sha : git.sha };
  }
  const out = { ...git };
  if (typeof event.ref === 'string' && event.ref.startsWith('refs/')) out.ref = event.ref;
  if (typeof event.after === 'string' && /^[0-9a-f]{40}$/.test(event.after)) out.sha = event.after;
  return out;
}
