/**
 * `on:` as GitHub evaluates it: which events a workflow listens to, and whether
 * it runs for one event payload (branches/tags/paths filters, activity types).
 */

type Obj = Record<string, unknown>;

/** `on:` in any of its three forms (string, list, mapping) → event → its configuration (null when none). */
export function normalizeOn(on: unknown): Map<string, Obj | null> {
  const out = new Map<string, Obj | null>();
  if (typeof on === 'string') out.set(on, null);
  else if (Array.isArray(on)) for (const e of on) out.set(String(e), null);
  else if (on && typeof on === 'object') {
    for (const [k, v] of Object.entries(on as Obj)) out.set(k, v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : null);
  }
  return out;
}

/** Activity types GitHub uses when `types:` is absent and the event does not run for every type. */
const DEFAULT_TYPES: Record<string, string[]> = {
  pull_request: ['opened', 'synchronize', 'reopened'],
  pull_request_target: ['opened', 'synchronize', 'reopened'],
};

const patternCache = new Map<string, RegExp>();

/**
 * GitHub's filter pattern syntax: `*` any characters but `/`, `**` any characters,
 * `?` zero or one of the preceding character, `+` one or more of it, `[…]` a
 * character class, `\` escapes.
 */
export function filterPatternToRegExp(pattern: string): RegExp {
  const cached = patternCache.get(pattern);
  if (cached) return cached;
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) {
      re += escapeRe(pattern[++i]!);
    } else if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?' || c === '+') {
      re += c;
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end === -1) re += '\\[';
      else {
        re += `[${pattern.slice(i + 1, end).replace(/[\\\]^]/g, '\\$&')}]`;
        i = end;
      }
    } else re += escapeRe(c);
  }
  const out = new RegExp(`^${re}$`);
  if (patternCache.size < 10_000) patternCache.set(pattern, out);
  return out;
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function patterns(v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  return (Array.isArray(v) ? v : [v]).map(String);
}

/** Last matching pattern decides; `!pattern` excludes. */
function matchesList(list: string[], value: string): boolean {
  let matched = false;
  for (const p of list) {
    const negated = p.startsWith('!');
    if (filterPatternToRegExp(negated ? p.slice(1) : p).test(value)) matched = !negated;
  }
  return matched;
}

function refFilter(include: string[] | undefined, ignore: string[] | undefined, name: string): boolean {
  if (include) return matchesList(include, name);
  if (ignore) return !matchesList(ignore, name);
  return true;
}

export interface TriggerFacts {
  /** Files changed by the event; undefined when not known (the paths filters then pass, as GitHub does when it cannot compute a diff). */
  changedFiles?: string[];
}

export interface TriggerDecision {
  runs: boolean;
  reason: string;
}

function pushChangedFiles(payload: Obj): string[] | undefined {
  const commits = payload.commits;
  if (!Array.isArray(commits)) return undefined;
  const files = new Set<string>();
  for (const c of commits as Obj[]) {
    for (const k of ['added', 'modified', 'removed']) {
      const list = c?.[k];
      if (Array.isArray(list)) list.forEach((f) => files.add(String(f)));
    }
  }
  return [...files];
}

function pathsPass(cfg: Obj, files: string[] | undefined): TriggerDecision | undefined {
  const paths = patterns(cfg.paths);
  const ignore = patterns(cfg['paths-ignore']);
  if (!paths && !ignore) return undefined;
  if (files === undefined) return undefined;
  if (paths && !files.some((f) => matchesList(paths, f))) return { runs: false, reason: 'no changed file matches paths' };
  if (ignore && files.length && files.every((f) => matchesList(ignore, f))) return { runs: false, reason: 'every changed file matches paths-ignore' };
  return undefined;
}

/** Whether a workflow with this `on:` runs for the event. The server and `stockade run` both decide with it. */
export function workflowRunsFor(on: unknown, eventName: string, payload: Obj, facts: TriggerFacts = {}): TriggerDecision {
  const events = normalizeOn(on);
  if (!events.has(eventName)) return { runs: false, reason: `the workflow does not listen to ${eventName}` };
  const cfg = events.get(eventName) ?? {};

  const action = typeof payload.action === 'string' ? payload.action : undefined;
  const types = patterns(cfg.types) ?? DEFAULT_TYPES[eventName];
  if (types && action !== undefined && !types.includes(action)) return { runs: false, reason: `activity type ${action} is not in types (${types.join(', ')})` };

  if (eventName === 'push') {
    const ref = String(payload.ref ?? '');
    const branches = patterns(cfg.branches);
    const branchesIgnore = patterns(cfg['branches-ignore']);
    const tags = patterns(cfg.tags);
    const tagsIgnore = patterns(cfg['tags-ignore']);
    const hasBranchFilter = !!(branches || branchesIgnore);
    const hasTagFilter = !!(tags || tagsIgnore);
    if (ref.startsWith('refs/heads/')) {
      if (!hasBranchFilter && hasTagFilter) return { runs: false, reason: 'only tags are filtered; branch pushes do not run' };
      if (!refFilter(branches, branchesIgnore, ref.slice(11))) return { runs: false, reason: `branch ${ref.slice(11)} does not pass the branches filters` };
    } else if (ref.startsWith('refs/tags/')) {
      if (!hasTagFilter && hasBranchFilter) return { runs: false, reason: 'only branches are filtered; tag pushes do not run' };
      if (!refFilter(tags, tagsIgnore, ref.slice(10))) return { runs: false, reason: `tag ${ref.slice(10)} does not pass the tags filters` };
      // GitHub ignores paths filters for tag pushes.
      return { runs: true, reason: 'tag push' };
    }
    const paths = pathsPass(cfg, facts.changedFiles ?? pushChangedFiles(payload));
    return paths ?? { runs: true, reason: 'push passes the filters' };
  }

  if (eventName === 'pull_request' || eventName === 'pull_request_target') {
    const base = String(((payload.pull_request as Obj | undefined)?.base as Obj | undefined)?.ref ?? '');
    if (!refFilter(patterns(cfg.branches), patterns(cfg['branches-ignore']), base)) return { runs: false, reason: `base branch ${base} does not pass the branches filters` };
    const paths = pathsPass(cfg, facts.changedFiles);
    return paths ?? { runs: true, reason: `${eventName} passes the filters` };
  }

  if (eventName === 'workflow_run') {
    const run = (payload.workflow_run ?? {}) as Obj;
    const workflows = patterns(cfg.workflows);
    if (workflows && !workflows.includes(String(run.name ?? ''))) return { runs: false, reason: `workflow ${String(run.name)} is not in workflows` };
    const branch = String(run.head_branch ?? '');
    if (!refFilter(patterns(cfg.branches), patterns(cfg['branches-ignore']), branch)) return { runs: false, reason: `branch ${branch} does not pass the branches filters` };
  }
  return { runs: true, reason: `the workflow listens to ${eventName}` };
}
