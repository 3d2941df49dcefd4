import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { parseDuration, parseSize, StockadeError } from '../common';
import { DEFAULT_LIMITS, type ResourceLimits } from '../sandbox';

/** act's --github-instance: the GitHub Enterprise Server host the workflows believe they run on (github.com by default). */
export function githubInstanceUrl(host: string | undefined): string {
  if (host === undefined) return 'https://github.com';
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+(:\d{1,5})?$/.test(host)) throw new StockadeError('USAGE', `--github-instance '${host.slice(0, 80)}' is not a host name (like github.example.com)`);
  return `https://${host.toLowerCase()}`;
}

/** --tool-cache: an existing directory, reached without a link (its tree is copied into each job's tool cache). */
export function toolCacheDirFrom(dir: string | undefined): string | undefined {
  if (dir === undefined) return undefined;
  const abs = resolve(dir);
  const st = lstatSync(abs, { throwIfNoEntry: false });
  if (!st?.isDirectory()) throw new StockadeError('USAGE', `--tool-cache ${dir} is not a directory`);
  return abs;
}

/** --container-map REF=LOCAL (repeatable): a registry reference a workflow names, run as a local image. */
export function containerMap(list: string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    const from = item.slice(0, eq).trim().replace(/^docker:\/\//, '');
    const to = item.slice(eq + 1).trim();
    if (eq <= 0 || !from || !to || /\s/.test(from + to)) throw new StockadeError('USAGE', `--container-map needs REF=LOCAL, such as node:16-buster-slim=localhost/stockade/node (got '${item.slice(0, 80)}')`);
    out[from] = to;
  }
  return out;
}

/** --memory, --pids, --cpus, --timeout and --output-limit over the default limits. */
export function limitsFrom(v: Record<string, string | string[] | boolean | undefined>): ResourceLimits {
  const limits = { ...DEFAULT_LIMITS };
  const bad = (flag: string, value: string, form: string) => new StockadeError('USAGE', `--${flag} '${value}' is not ${form}`);
  const size = (flag: string) => {
    const t = v[flag] as string | undefined;
    if (t === undefined) return undefined;
    const n = parseSize(t);
    if (n === undefined) throw bad(flag, t, 'a size such as 512m or 2g');
    return n;
  };
  const num = (flag: string) => {
    const t = v[flag] as string | undefined;
    if (t === undefined) return undefined;
    const n = Number(t);
    if (!Number.isFinite(n) || n <= 0) throw bad(flag, t, 'a positive number');
    return n;
  };
  limits.memoryBytes = size('memory') ?? limits.memoryBytes;
  limits.outputBytes = size('output-limit') ?? limits.outputBytes;
  limits.pids = num('pids') ?? limits.pids;
  limits.cpus = num('cpus') ?? limits.cpus;
  if (typeof v.timeout === 'string') {
    const ms = parseDuration(v.timeout);
    if (ms === undefined) throw bad('timeout', v.timeout, 'a duration such as 90s or 10m');
    limits.timeoutMs = ms;
  }
  return limits;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `NAME=VALUE` flags → a map; names as GitHub allows them for secrets and variables. */
export function pairs(flag: string, list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    const name = eq > 0 ? item.slice(0, eq) : '';
    if (!NAME.test(name)) throw new StockadeError('USAGE', `--${flag} needs NAME=VALUE with a name of letters, digits and _ (got '${name || item.slice(0, 40)}')`);
    out[name] = item.slice(eq + 1);
  }
  return out;
}

/** A dotenv file of --secret-file, --var-file or --input-file (act's format), names checked. */
export function readDotenv(file: string, flag = 'secret-file'): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new StockadeError('USAGE', `--${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const parsed = parseDotenv(text);
  for (const k of Object.keys(parsed)) if (!NAME.test(k)) throw new StockadeError('USAGE', `--${flag} ${file}: '${k}' is not a valid ${flag.replace('-file', '')} name`);
  return parsed;
}

/**
 * `-P LABEL=IMAGE` (act's --platform): a runs-on label → a runner image by name (full, node, …) or a
 * local image reference. The label is matched as GitHub matches labels, case-insensitively.
 */
export function platformMap(list: string[] | undefined, labels: Record<string, string>, own: () => Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    const label = eq > 0 ? item.slice(0, eq).trim().toLowerCase() : '';
    const target = item.slice(eq + 1).trim();
    if (!label || !target || /\s/.test(target)) throw new StockadeError('USAGE', `-P needs LABEL=IMAGE, as in act (-P ubuntu-latest=full); got '${item.slice(0, 80)}'`);
    if (!/^[a-z0-9][a-z0-9._/:@-]{0,254}$/.test(target)) throw new StockadeError('USAGE', `-P ${label}: '${target.slice(0, 80)}' is not an image name`);
    out[label] = labels[target] ?? (target.includes('/') || target.includes(':') ? target : own()[target]) ?? (() => {
      throw new StockadeError('USAGE', `-P ${label}=${target}: no runner image '${target}' (${Object.keys(own()).join(', ')}) and not an image reference`);
    })();
  }
  return out;
}

/** `--matrix key:value` (repeatable, as in act): only combinations whose `key` is one of its values run. */
export function matrixFilter(list: string[] | undefined): Record<string, string[]> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string[]> = {};
  for (const item of list) {
    const i = item.indexOf(':');
    if (i <= 0) throw new StockadeError('USAGE', `--matrix needs KEY:VALUE (got '${item.slice(0, 40)}')`);
    (out[item.slice(0, i)] ??= []).push(item.slice(i + 1));
  }
  return out;
}

