import { timingSafeEqual } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * The job's way to GitHub's API: steps have no network, so GITHUB_API_URL points here and the
 * runner forwards to the API it was configured with. Only requests carrying the job's own
 * GITHUB_TOKEN are forwarded (what that token may do is GitHub's to decide); nothing else
 * leaves, so the gateway cannot carry other credentials or reach other hosts.
 */
export interface GatewayTarget {
  /** REST API base (https://api.github.com, or https://HOST/api/v3). */
  upstream: string;
  /** GraphQL endpoint. */
  graphql: string;
  /** The job's GITHUB_TOKEN. */
  token: string;
}

export const GATEWAY_PREFIX = '/_github';
const MAX_REQUEST_BYTES = 100 * 1024 * 1024;
const HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-real-ip', 'cookie']);

/** The token of an Authorization header in any form GitHub accepts: `token X`, `Bearer X`, or Basic with X as the password. */
export function tokenOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^(token|bearer)\s+(\S+)$/i.exec(header);
  if (m) return m[2];
  const b = /^basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
  if (b) {
    const text = Buffer.from(b[1]!, 'base64').toString('utf8');
    const i = text.indexOf(':');
    return i >= 0 ? text.slice(i + 1) : undefined;
  }
  return undefined;
}

const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export async function forwardToGitHub(target: GatewayTarget, req: IncomingMessage, res: ServerResponse, path: string, onRefused: (why: string) => void): Promise<void> {
  const token = tokenOf(req.headers.authorization);
  if (!token || !same(token, target.token)) {
    onRefused(`${req.method} ${path.split('?')[0]} without the job's GITHUB_TOKEN`);
    req.resume();
    res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: "Stockade forwards only requests made with the job's GITHUB_TOKEN", documentation_url: 'https://docs.github.com/actions/security-guides/automatic-token-authentication' }));
    return;
  }
  const rest = path.slice(GATEWAY_PREFIX.length) || '/';
  const isGraphql = rest === '/graphql' || rest.startsWith('/graphql?');
  const base = new URL(isGraphql ? target.graphql : target.upstream);
  const url = isGraphql ? new URL(base.href + rest.slice('/graphql'.length)) : new URL(base.href.replace(/\/$/, '') + rest);
  if (url.origin !== base.origin) throw new Error('the gateway only forwards to its configured API');
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  await new Promise<void>((resolve) => {
    const up = send(url, { method: req.method, headers }, (answer) => {
      const back: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined && !HOP.has(k) && k !== 'set-cookie') back[k] = v;
      res.writeHead(answer.statusCode ?? 502, back);
      pipeline(answer, res).then(resolve, () => {
        res.destroy();
        resolve();
      });
    });
    up.setTimeout(120_000, () => up.destroy(new Error('GitHub did not answer within 120 s')));
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `Stockade could not reach GitHub: ${e.message}` }));
      else res.destroy();
      resolve();
    });
    let n = 0;
    const cap = new Transform({
      transform(c: Buffer, _e, cb) {
        n += c.length;
        cb(n > MAX_REQUEST_BYTES ? new Error('request body too large') : null, c);
      },
    });
    pipeline(req, cap, up).catch(() => up.destroy());
  });
}
