import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { StockadeError } from '../common';

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
