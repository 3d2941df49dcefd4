import { parseOptions } from './parse-options';
import { StockadeError, parseDuration } from '../common';
import { resolveHostConfig } from '../host';
import { parseRemoteUses } from '../runner';
import { actionFetcher, localArchives } from './remote-actions';

export const ACTIONS_USAGE = `usage: stockade actions pull OWNER/REPO[/PATH]@REF...  [--github-token TOKEN] [--github-instance HOST]
       stockade actions list [--json]
       stockade actions prune [--unused-for 30d]     (0 removes every fetched action)
  The host's cache of fetched actions (<state>/actions/<owner>/<repo>/<commit>): pull fills it for a
  machine that will run offline (stockade run --action-offline-mode), list shows each commit with the
  refs it was fetched as, prune removes what no job used for the given time.`;

/** The options of this command: what the parser (commander) accepts and what `stockade completion` offers. */
export const ACTIONS_OPTIONS = { 'github-token': { type: 'string' }, 'github-instance': { type: 'string' }, json: { type: 'boolean' }, 'unused-for': { type: 'string' } } as const;

/** `stockade actions pull|list|prune`. Returns the exit code. */
export async function actionsCommand(argv: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseOptions(`actions ${sub ?? ''}`.trim(), ACTIONS_OPTIONS, rest, { positionals: true });
  const fetcher = actionFetcher(resolveHostConfig(env).stateDir);
  if (sub === 'pull') {
    if (!positionals.length) throw new StockadeError('USAGE', 'actions pull needs at least one OWNER/REPO@REF', { hint: ACTIONS_USAGE });
    const host = values['github-instance'];
    if (host !== undefined && !/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(host)) throw new StockadeError('USAGE', `--github-instance '${host.slice(0, 80)}' is not a host name`);
    const api = localArchives(env, host ? `https://${host}` : 'https://github.com', values['github-token'] ?? env.GITHUB_TOKEN);
    let failed = 0;
    for (const uses of positionals) {
      const r = parseRemoteUses(uses);
      if (!r) throw new StockadeError('USAGE', `'${uses.slice(0, 100)}' is not OWNER/REPO[/PATH]@REF`);
      try {
        const a = await fetcher.fetch(api, r.owner, r.repo, r.ref);
        out.write(`${r.owner}/${r.repo}@${r.ref} ${a.sha} ${(a.bytes / 1024 ** 2).toFixed(1)} MiB\n`);
      } catch (e) {
        failed++;
        process.stderr.write(`stockade: ${(e as Error).message}\n`);
      }
    }
    return failed ? 1 : 0;
  }
  if (sub === 'list') {
    const list = fetcher.list();
    if (values.json) out.write(`${JSON.stringify(list.map(({ dir: _d, ...a }) => a), null, 2)}\n`);
    else for (const a of list) out.write(`${a.owner}/${a.repo} ${a.sha} ${a.refs.join(',') || '-'} ${(a.bytes / 1024 ** 2).toFixed(1)} MiB used ${new Date(a.usedAt).toISOString()}\n`);
    return 0;
  }
  if (sub === 'prune') {
    const text = values['unused-for'] ?? '30d';
    const ms = text === '0' ? 0 : parseDuration(text);
    if (ms === undefined) throw new StockadeError('USAGE', `--unused-for '${text}' is not a duration such as 30d or 12h`);
    const gone = fetcher.prune(ms);
    for (const a of gone) out.write(`removed ${a.owner}/${a.repo} ${a.sha}\n`);
    out.write(`${gone.length} removed, ${fetcher.list().length} kept\n`);
    return 0;
  }
  throw new StockadeError('USAGE', `actions: unknown subcommand '${sub ?? ''}'`, { hint: ACTIONS_USAGE });
}
