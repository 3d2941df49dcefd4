import { parseOptions } from './parse-options';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { StockadeError } from '../common';
import { hashToken } from '../server';
import { openServerStore } from './server-store';
import { resolveHostConfig } from '../host';

export const ADMIN_USAGE = `usage: stockade quota set OWNER[/REPO] [--concurrency N] [--minutes-per-day M] [--minutes-per-month M]
       stockade quota get OWNER[/REPO]      stockade quota list [--org OWNER]
       stockade queue                       stockade jobs cancel JOB_KEY
       (these talk to the admin API: --url or STOCKADE_ADMIN_URL, --token or STOCKADE_ADMIN_TOKEN)
       stockade admin-token create --org OWNER|'*' [--state-dir DIR | --database postgres://…]   (as root on the server host; prints the token once)`;

async function call(method: string, path: string, values: { url?: string; token?: string }, env: NodeJS.ProcessEnv, body?: unknown): Promise<unknown> {
  const url = values.url ?? env.STOCKADE_ADMIN_URL ?? 'http://127.0.0.1:8081';
  const token = values.token ?? env.STOCKADE_ADMIN_TOKEN;
  if (!token) throw new StockadeError('USAGE', 'an admin token is needed: --token or STOCKADE_ADMIN_TOKEN', { hint: ADMIN_USAGE });
  let res: Response;
  try {
    res = await fetch(`${url.replace(/\/$/, '')}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new StockadeError('HOST_NOT_READY', `admin API at ${url} does not answer: ${(e as Error).message}`, { hint: 'start `stockade serve --admin-port PORT` and pass --url' });
  }
  const data = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new StockadeError(res.status === 400 ? 'USAGE' : 'CONFIG_INVALID', `admin API answered ${res.status}: ${data.error ?? ''}`);
  return data;
}

const pathOf = (target: string | undefined) => {
  if (!target || !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)?$/.test(target)) throw new StockadeError('USAGE', `'${target ?? ''}' is not OWNER or OWNER/REPO`, { hint: ADMIN_USAGE });
  return `/v1/quotas/${target.split('/').map(encodeURIComponent).join('/')}`;
};

function whole(flag: string, v: string | undefined): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === 'none') return null;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new StockadeError('USAGE', `--${flag} '${v}' is not a whole number (or 'none')`);
  return n;
}

/** The options of this command: what the parser (commander) accepts and what `stockade completion` offers. */
export const ADMIN_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  org: { type: 'string' },
  concurrency: { type: 'string' },
  'minutes-per-day': { type: 'string' },
  'minutes-per-month': { type: 'string' },
  'state-dir': { type: 'string' },
  database: { type: 'string' },
} as const;

/** `stockade quota|queue|jobs|admin-token`: prints JSON answers of the admin API. */
export async function adminCommand(command: string, argv: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseOptions(command, ADMIN_OPTIONS, argv, { positionals: true });
  const print = (x: unknown) => out.write(`${JSON.stringify(x, null, 2)}\n`);
  const [sub, target] = positionals;
  if (command === 'admin-token' && sub === 'create') {
    const org = values.org;
    if (!org || !(org === '*' || /^[A-Za-z0-9_.-]+$/.test(org))) throw new StockadeError('USAGE', '--org OWNER (or * for the operator) is required', { hint: ADMIN_USAGE });
    const store = await openServerStore(values.database ?? env.STOCKADE_DATABASE, values['state-dir'] ?? join(resolveHostConfig(env).stateDir, 'server'));
    const token = `stk_${randomBytes(24).toString('base64url')}`;
    try {
      await store.quotas.addToken(hashToken(token), org);
    } finally {
      await store.close();
    }
    out.write(`${token}\n`);
    return 0;
  }
  if (command === 'quota' && sub === 'set') {
    const body: Record<string, number | null> = {};
    for (const [flag, field] of [['concurrency', 'concurrency'], ['minutes-per-day', 'minutesPerDay'], ['minutes-per-month', 'minutesPerMonth']] as const) {
      const v = whole(flag, values[flag]);
      if (v !== undefined) body[field] = v;
    }
    if (!Object.keys(body).length) throw new StockadeError('USAGE', 'nothing to set', { hint: ADMIN_USAGE });
    print(await call('PUT', pathOf(target), values, env, body));
    return 0;
  }
  if (command === 'quota' && sub === 'get') return print(await call('GET', pathOf(target), values, env)), 0;
  if (command === 'quota' && sub === 'list') return print(await call('GET', `/v1/quotas${values.org ? `?org=${encodeURIComponent(values.org)}` : ''}`, values, env)), 0;
  if (command === 'queue') return print(await call('GET', '/v1/queue', values, env)), 0;
  if (command === 'jobs' && sub === 'cancel' && target) return print(await call('POST', `/v1/jobs/${encodeURIComponent(target)}/cancel`, values, env)), 0;
  throw new StockadeError('USAGE', `unknown ${command} command`, { hint: ADMIN_USAGE });
}
