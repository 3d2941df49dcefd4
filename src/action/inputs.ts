import { parseDuration, parseSize } from '../common';
import { DEFAULT_LIMITS, LIMIT_BOUNDS, type ResourceLimits } from '../sandbox';
import { parseDomainList } from '../egress';
import { parseResultsPatterns } from './results';

export interface ActionInputs {
  run: string;
  shell: string;
  image: string;
  workingDirectory: string;
  /** Names of the runner's environment variables passed into the sandbox. */
  env: string[];
  allowDomains: string[];
  limits: ResourceLimits;
  /** 'default', or a path inside the workspace. */
  seccomp: string;
  /** Files handed back after the run (input `results`); undefined: nothing comes back. */
  results?: { patterns: string[]; path: string; maxFiles: number; maxBytes: number };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Reads and checks every input; throws a message naming the input and what it accepts. */
export function readInputs(get: (name: string) => string): ActionInputs {
  const run = get('run');
  if (!run.trim()) throw new Error("input 'run' is required: the script to run in the sandbox");
  const shell = get('shell') || 'bash';
  if (!/^(bash|sh|python|pwsh|[A-Za-z0-9_./-]+ .*\{0\}.*)$/.test(shell)) throw new Error(`input 'shell' '${shell}' is not bash, sh, python, or a command with {0}`);
  const image = get('image') || 'base';
  if (!/^[a-z0-9][a-z0-9._/:@-]{0,254}$/.test(image)) throw new Error(`input 'image' '${image}' is not an image name (one of runner-images/, or a full reference)`);
  const env = get('env')
    .split(/[\s,]+/)
    .filter(Boolean);
  for (const n of env) if (!ENV_NAME.test(n)) throw new Error(`input 'env': '${n}' is not a variable name`);
  let allowDomains: string[];
  try {
    allowDomains = parseDomainList(get('allow-domains'));
  } catch (e) {
    throw new Error(`input 'allow-domains': ${(e as Error).message}`);
  }
  const limits: ResourceLimits = { ...DEFAULT_LIMITS };
  const size = (name: string, key: 'memoryBytes' | 'outputBytes') => {
    const t = get(name);
    if (!t) return;
    const n = parseSize(t);
    if (n === undefined) throw new Error(`input '${name}' '${t}' is not a size such as 512m or 2g`);
    limits[key] = n;
  };
  const num = (name: string, key: 'cpus' | 'pids') => {
    const t = get(name);
    if (!t) return;
    const n = Number(t);
    if (!Number.isFinite(n)) throw new Error(`input '${name}' '${t}' is not a number`);
    limits[key] = n;
  };
  size('memory', 'memoryBytes');
  size('output-limit', 'outputBytes');
  num('cpus', 'cpus');
  num('pids', 'pids');
  const timeout = get('timeout');
  if (timeout) {
    const ms = parseDuration(timeout);
    if (ms === undefined) throw new Error(`input 'timeout' '${timeout}' is not a duration such as 90s or 10m`);
    limits.timeoutMs = ms;
  }
  const names: Partial<Record<keyof ResourceLimits, string>> = { memoryBytes: 'memory', outputBytes: 'output-limit', cpus: 'cpus', pids: 'pids', timeoutMs: 'timeout' };
  for (const [key, input] of Object.entries(names) as Array<[keyof ResourceLimits, string]>) {
    const [min, max] = LIMIT_BOUNDS[key];
    if (limits[key] < min || limits[key] > max) throw new Error(`input '${input}' is out of range (${min} to ${max}${key.endsWith('Bytes') ? ' bytes' : key === 'timeoutMs' ? ' ms' : ''})`);
  }
  const patterns = parseResultsPatterns(get('results'));
  let results: ActionInputs['results'];
  if (patterns.length) {
    const maxFiles = get('results-max-files') ? Number(get('results-max-files')) : 1000;
    if (!Number.isInteger(maxFiles) || maxFiles < 1 || maxFiles > 100_000) throw new Error(`input 'results-max-files' '${get('results-max-files')}' is not a whole number from 1 to 100000`);
    const maxBytes = get('results-max-size') ? parseSize(get('results-max-size')) : 256 * 1024 ** 2;
    if (maxBytes === undefined || maxBytes < 1 || maxBytes > 1024 ** 3) throw new Error(`input 'results-max-size' '${get('results-max-size')}' is not a size from 1 byte to 1g`);
    results = { patterns, path: get('results-path') || 'stockade-results', maxFiles, maxBytes };
  }
  return { run, shell, image, workingDirectory: get('working-directory') || '.', env, allowDomains, limits, seccomp: get('seccomp') || 'default', ...(results ? { results } : {}) };
}
