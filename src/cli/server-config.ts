import { narrowAllowlist, normalizeDomainPattern, validatePolicy } from '../egress';
import { StockadeError } from '../common';
import { egressSettings, readConfigFile, upstreamDnsFrom } from '../host';
import { DEFAULT_IMAGE_POLICY, type EgressSettings, type ImagePolicy } from '../runner';
import { DEFAULT_PRIORITIES, validateQuota, type Priorities } from '../server';
import type { Quota } from '../store';

/**
 * The server's YAML configuration, checked before the server starts:
 * `quotas: { default: {...}, orgs: { OWNER: {...} }, repos: { OWNER/REPO: {...} } }` with the admin
 * API's fields (concurrency, minutesPerDay, minutesPerMonth), and
 * `priorities: { defaultBranchPush, push, pullRequest, workflowJob }` (whole numbers, higher first).
 */
export function loadServerConfig(file: string): { server?: Record<string, unknown>; quotas: (scope: string) => Quota; priorities: Priorities; egress: (packageRoot: string) => (repository: string) => EgressSettings | undefined; egressConfigured: boolean; imagePolicy: ImagePolicy } {
  // The schema first (unknown keys and wrong types at file:line:col), then the rules a schema cannot say.
  const doc = readConfigFile(file) as { server?: Record<string, unknown>; quotas?: { default?: unknown; orgs?: Record<string, unknown>; repos?: Record<string, unknown> }; priorities?: Record<string, unknown>; egress?: unknown; images?: unknown };
  const check = (where: string, v: unknown): Quota => {
    const r = validateQuota(v);
    if ('error' in r) throw new StockadeError('CONFIG_INVALID', `${file}: ${where}: ${r.error}`);
    return Object.fromEntries(Object.entries(r.value).filter(([, x]) => x !== null)) as Quota;
  };
  const q = doc.quotas ?? {};
  const def = q.default === undefined ? {} : check('quotas.default', q.default);
  const orgs = new Map(Object.entries(q.orgs ?? {}).map(([k, v]) => [k.toLowerCase(), check(`quotas.orgs.${k}`, v)]));
  const repos = new Map(Object.entries(q.repos ?? {}).map(([k, v]) => [k.toLowerCase(), check(`quotas.repos.${k}`, v)]));
  const priorities: Priorities = { ...DEFAULT_PRIORITIES };
  for (const [k, v] of Object.entries(doc.priorities ?? {})) {
    if (!(k in priorities)) throw new StockadeError('CONFIG_INVALID', `${file}: priorities.${k} is unknown; keys are ${Object.keys(DEFAULT_PRIORITIES).join(', ')}`);
    if (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) > 1000) throw new StockadeError('CONFIG_INVALID', `${file}: priorities.${k} must be a whole number from -1000 to 1000`);
    priorities[k as keyof Priorities] = v;
  }
  const egress = readEgressConfig(file, doc.egress);
  // Owner names are case-insensitive on GitHub: configured scopes match in any case.
  const quotas = (scope: string): Quota => {
    const s = scope.toLowerCase();
    return s.startsWith('repo:') ? { ...def, ...(repos.get(s.slice(5)) ?? {}) } : (orgs.get(s.slice(4)) ?? {});
  };
  return { server: doc.server, egress, egressConfigured: doc.egress !== undefined && doc.egress !== null, quotas, priorities, imagePolicy: readImagePolicy(file, doc.images) };
}

/** `images: { allow: [PATTERN...], allowDigestPinned: bool, map: {REF: LOCAL} }`: images jobs may name besides Stockade's own, and registry names mapped to local images. */
function readImagePolicy(file: string, raw: unknown): ImagePolicy {
  if (raw === undefined || raw === null) return { ...DEFAULT_IMAGE_POLICY };
  const bad = (why: string) => new StockadeError('CONFIG_INVALID', `${file}: images${why}`);
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad(': must be a mapping');
  const doc = raw as Record<string, unknown>;
  for (const k of Object.keys(doc)) if (k !== 'allow' && k !== 'allowDigestPinned' && k !== 'map') throw bad(`.${k}: is unknown; keys are allow, allowDigestPinned, map`);
  const map = doc.map;
  if (map !== undefined && (typeof map !== 'object' || map === null || Array.isArray(map) || !Object.entries(map).every(([k, v]) => k.length > 0 && k.length < 256 && typeof v === 'string' && v.length > 0 && v.length < 256))) throw bad('.map: must map image references to local image references');
  if (doc.allow !== undefined && (!Array.isArray(doc.allow) || !doc.allow.every((x) => typeof x === 'string' && x.length > 0 && x.length < 256))) throw bad('.allow: must be a list of image references or patterns ending in *');
  if (doc.allowDigestPinned !== undefined && typeof doc.allowDigestPinned !== 'boolean') throw bad('.allowDigestPinned: must be true or false');
  return { allow: (doc.allow as string[] | undefined) ?? [], allowDigestPinned: doc.allowDigestPinned === true, ...(map ? { map: map as Record<string, string> } : {}) };
}

/**
 * `egress:` of the server's config: the widest allowlist per repository.
 * `default` applies to every repository, `orgs.OWNER` replaces it for an
 * organisation, `repos.OWNER/REPO` narrows the organisation's (it may not widen
 * it: checked here). A workflow narrows further with STOCKADE_EGRESS.
 * `upstreamDns`, `permittedRanges` and `ports` tune the sidecar.
 */
export function readEgressConfig(file: string, raw: unknown): (packageRoot: string) => (repository: string) => EgressSettings | undefined {
  if (raw === undefined || raw === null) return () => () => undefined;
  const bad = (where: string, why: string) => new StockadeError('CONFIG_INVALID', `${file}: egress${where}: ${why}`);
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('', 'must be a mapping');
  const doc = raw as Record<string, unknown>;
  for (const k of Object.keys(doc)) if (!['default', 'orgs', 'repos', 'mode', 'modes', 'upstreamDns', 'permittedRanges', 'ports'].includes(k)) throw bad(`.${k}`, 'is unknown; keys are default, orgs, repos, mode, modes, upstreamDns, permittedRanges, ports');
  // enforce (the default) or audit: for everyone (mode), or per OWNER or OWNER/REPO (modes; the repository wins).
  const isMode = (v: unknown): v is 'enforce' | 'audit' => v === 'enforce' || v === 'audit';
  if (doc.mode !== undefined && !isMode(doc.mode)) throw bad('.mode', 'must be enforce or audit');
  const modes = new Map<string, 'enforce' | 'audit'>();
  if (doc.modes !== undefined) {
    if (typeof doc.modes !== 'object' || doc.modes === null || Array.isArray(doc.modes)) throw bad('.modes', 'must map OWNER or OWNER/REPO to enforce or audit');
    for (const [k, v] of Object.entries(doc.modes)) {
      if (!isMode(v)) throw bad(`.modes.${k}`, 'must be enforce or audit');
      modes.set(k.toLowerCase(), v);
    }
  }
  const auditFor = (repository: string) => (modes.get(repository) ?? modes.get(repository.split('/')[0]!) ?? doc.mode ?? 'enforce') === 'audit';
  const list = (where: string, v: unknown): string[] => {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad(where, 'must be a list of names');
    try {
      return v.map(normalizeDomainPattern);
    } catch (e) {
      throw bad(where, (e as Error).message);
    }
  };
  const map = (where: string, v: unknown): Map<string, string[]> => {
    if (v === undefined) return new Map();
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(where, 'must be a mapping');
    return new Map(Object.entries(v).map(([k, x]) => [k.toLowerCase(), list(`${where}.${k}`, x)]));
  };
  const def = doc.default === undefined ? [] : list('.default', doc.default);
  const orgs = map('.orgs', doc.orgs);
  const repos = map('.repos', doc.repos);
  const orgMax = (owner: string) => orgs.get(owner) ?? def;
  for (const [repo, allow] of repos) {
    const owner = repo.split('/')[0]!;
    try {
      narrowAllowlist(orgMax(owner), allow);
    } catch (e) {
      throw bad(`.repos.${repo}`, (e as Error).message);
    }
  }
  const permittedRanges = doc.permittedRanges === undefined ? [] : (doc.permittedRanges as string[]);
  const ports = doc.ports as number[] | undefined;
  let policyCheck: Error | undefined;
  try {
    validatePolicy({ allow: [], permittedRanges, ports });
  } catch (e) {
    policyCheck = e as Error;
  }
  if (policyCheck) throw bad('', policyCheck.message);
  const anyEgress = def.length > 0 || [...orgs.values(), ...repos.values()].some((l) => l.length > 0) || doc.mode === 'audit' || [...modes.values()].includes('audit');
  return (packageRoot) => {
    const upstream = anyEgress ? upstreamDnsFrom(typeof doc.upstreamDns === 'string' ? doc.upstreamDns : undefined) : '';
    return (repository) => {
      const key = repository.toLowerCase();
      const allow = repos.get(key) ?? orgMax(key.split('/')[0]!);
      const audit = auditFor(key);
      if (!allow.length && !audit) return undefined;
      return egressSettings(packageRoot, { allow, permittedRanges, ports, audit }, upstream);
    };
  };
}
