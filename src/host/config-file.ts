import { readFileSync } from 'node:fs';
import Ajv, { type ErrorObject } from 'ajv';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { StockadeError } from '../common';
import { SERVER_SETTINGS, type ServerSetting } from './server-settings';

/**
 * The server's configuration file: one YAML document checked against one JSON Schema (published as
 * docs/config.schema.json, generated from this module) before the server starts. Every unknown key
 * and wrong type is an error at its file:line:col; nothing is silently ignored.
 */

const quota = {
  type: 'object',
  additionalProperties: false,
  properties: {
    concurrency: { type: ['integer', 'null'], minimum: 1, maximum: 256, description: 'Jobs of the scope running at once.' },
    minutesPerDay: { type: ['integer', 'null'], minimum: 1, maximum: 1_440_000, description: 'Job minutes per UTC day.' },
    minutesPerMonth: { type: ['integer', 'null'], minimum: 1, maximum: 44_640_000, description: 'Job minutes per UTC month.' },
  },
} as const;

const names = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 255 }, maxItems: 1000, description: 'Host names, exact or *.suffix.' } as const;
const mode = { type: 'string', enum: ['enforce', 'audit'] } as const;

function settingSchema(s: ServerSetting): Record<string, unknown> {
  const base: Record<string, unknown> = { description: `${s.description}${s.env ? ` Environment: ${s.env}.` : ''}` };
  if (s.default !== undefined) base.default = s.type === 'list' && typeof s.default === 'string' ? s.default.split(',') : s.default;
  if (s.type === 'list') return { ...base, type: 'array', items: { type: 'string', minLength: 1, maxLength: 1024 }, maxItems: 1000 };
  if (s.type === 'boolean') return { ...base, type: 'boolean' };
  if (s.type === 'integer' || s.type === 'number') return { ...base, type: s.type, ...(s.min !== undefined ? { minimum: s.min } : {}), ...(s.max !== undefined ? { maximum: s.max } : {}) };
  // app-id is a number on GitHub: either form is accepted.
  if (s.key === 'app-id') return { ...base, type: ['string', 'integer'] };
  return { ...base, type: 'string', minLength: 1, maxLength: 4096, ...(s.enum ? { enum: s.enum } : {}) };
}

/** The JSON Schema of the config file (draft-07). */
export function configSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Stockade server configuration (stockade serve --config FILE)',
    type: 'object',
    additionalProperties: false,
    properties: {
      server: {
        type: 'object',
        additionalProperties: false,
        description: 'Every flag of stockade serve, by its long name. A flag given on the command line wins, then its environment variable, then this file.',
        properties: Object.fromEntries(SERVER_SETTINGS.map((s) => [s.key, settingSchema(s)])),
      },
      quotas: {
        type: 'object',
        additionalProperties: false,
        properties: { default: quota, orgs: { type: 'object', additionalProperties: quota }, repos: { type: 'object', additionalProperties: quota } },
      },
      priorities: {
        type: 'object',
        additionalProperties: false,
        properties: Object.fromEntries(['defaultBranchPush', 'push', 'pullRequest', 'workflowJob'].map((k) => [k, { type: 'integer', minimum: -1000, maximum: 1000 }])),
      },
      egress: {
        type: 'object',
        additionalProperties: false,
        properties: {
          default: names,
          orgs: { type: 'object', additionalProperties: names },
          repos: { type: 'object', additionalProperties: names },
          mode: { ...mode, description: 'enforce (the default): only allowlisted names; audit: every name, recorded.' },
          modes: { type: 'object', additionalProperties: mode, description: 'OWNER or OWNER/REPO → enforce or audit (a repository wins over its owner).' },
          upstreamDns: { type: 'string' },
          permittedRanges: { type: 'array', items: { type: 'string' } },
          ports: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 } },
        },
      },
      images: {
        type: 'object',
        additionalProperties: false,
        properties: {
          allow: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 255 } },
          allowDigestPinned: { type: 'boolean' },
          map: { type: 'object', additionalProperties: { type: 'string', minLength: 1, maxLength: 255 } },
        },
      },
    },
  };
}

const MAX_CONFIG_BYTES = 1024 * 1024;

/** A JSON pointer's segments (`/server/port` → ['server', 'port']). */
function pointer(p: string): string[] {
  return p ? p.slice(1).split('/').map((x) => x.replace(/~1/g, '/').replace(/~0/g, '~')) : [];
}

/** The YAML node at `path`, or the deepest one on the way. */
function nodeAt(root: Node | null, path: string[]): Node | null {
  let node = root;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String((p.key as { value?: unknown } | null)?.value ?? p.key) === seg);
      if (!pair) return node;
      node = (pair.value as Node | null) ?? (pair.key as Node);
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)] as Node | undefined;
      if (!item) return node;
      node = item;
    } else return node;
  }
  return node;
}

/** The key node of `key` in the mapping at `path` (an unknown key is reported where it is written). */
function keyAt(root: Node | null, path: string[], key: string): Node | null {
  const map = nodeAt(root, path);
  if (!isMap(map)) return map;
  const pair = map.items.find((p) => String((p.key as { value?: unknown } | null)?.value ?? p.key) === key);
  return (pair?.key as Node | undefined) ?? map;
}

/** Edit distance, for "did you mean": a misspelt key is the common mistake. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function message(e: ErrorObject): string {
  const at = pointer(e.instancePath).join('.') || '(the document)';
  if (e.keyword === 'additionalProperties') {
    const key = (e.params as { additionalProperty: string }).additionalProperty;
    const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
    const near = known.map((k) => [k, distance(k.toLowerCase(), key.toLowerCase())] as const).sort((a, b) => a[1] - b[1])[0];
    const hint = near && near[1] <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean ${near[0]}?)` : known.length ? `; keys here are ${known.join(', ')}` : '';
    return `${at === '(the document)' ? '' : `${at}.`}${key} is unknown${hint}`;
  }
  if (e.keyword === 'enum') return `${at} must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues ?? []).join(', ')}`;
  return `${at} ${e.message ?? 'is invalid'}`;
}

export interface ConfigProblem {
  line: number;
  column: number;
  message: string;
}

/**
 * Parses and checks a config file's text: YAML errors and schema violations, each with its line and
 * column (1-based). Returns the plain value when there is no problem.
 */
export function checkConfigText(text: string): { value: Record<string, unknown> } | { problems: ConfigProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const pos = (offset: number) => lines.linePos(offset);
  if (doc.errors.length) return { problems: doc.errors.map((e) => ({ ...pos(e.pos[0]), column: pos(e.pos[0]).col, message: e.message.split('\n')[0]! })) };
  const value = (doc.toJS({ maxAliasCount: 100 }) ?? {}) as unknown;
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
  const validate = ajv.compile(configSchema());
  if (validate(value)) return { value: value as Record<string, unknown> };
  const problems = (validate.errors ?? []).map((e) => {
    const path = pointer(e.instancePath);
    const node = e.keyword === 'additionalProperties' ? keyAt(doc.contents, path, (e.params as { additionalProperty: string }).additionalProperty) : nodeAt(doc.contents, path);
    const p = pos(node?.range?.[0] ?? 0);
    return { line: p.line, column: p.col, message: message(e) };
  });
  // One problem per place: allErrors can say the same twice (a type and its range).
  const seen = new Set<string>();
  return { problems: problems.filter((p) => !seen.has(`${p.line}:${p.column}:${p.message}`) && !!seen.add(`${p.line}:${p.column}:${p.message}`)).sort((a, b) => a.line - b.line || a.column - b.column) };
}

/** Reads and checks a config file; a problem is a CONFIG_INVALID error listing each at file:line:col. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_CONFIG_BYTES) throw new StockadeError('CONFIG_INVALID', `${file}: ${buf.length} bytes; a config file is at most ${MAX_CONFIG_BYTES}`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof StockadeError) throw e;
    throw new StockadeError('CONFIG_INVALID', `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const r = checkConfigText(text);
  if ('problems' in r) throw new StockadeError('CONFIG_INVALID', r.problems.map((p) => `${file}:${p.line}:${p.column}: error: ${p.message}`).join('\n'));
  return r.value;
}
