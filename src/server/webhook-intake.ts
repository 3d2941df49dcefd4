import type { ServerStore } from './plan-delivery';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../common';
import { verifyWebhookSignature } from '../github';

/** GitHub caps webhook payloads at 25 MB. */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;

export interface IntakeOptions {
  secret: string;
  store: ServerStore;
  logger: Logger;
  /** Events stored for processing; others get 202 and are dropped. */
  events: ReadonlySet<string>;
  /** Called after a new delivery is stored (the worker wakes up). */
  onStored(): void;
  /** @default MAX_WEBHOOK_BYTES */
  maxBytes?: number;
  /** Counts each answer (metrics). */
  onResult?(result: IntakeResult): void;
  /**
   * Bytes of unauthenticated bodies held in memory at once, over all requests: a body that
   * would go past it is answered 503 (Retry-After) and not read. @default MAX_INFLIGHT_BYTES
   */
  maxInflightBytes?: number;
  /** Bodies being read at once; more are answered 503. @default 64 */
  maxConcurrentBodies?: number;
}

export type IntakeResult = 'accepted' | 'duplicate' | 'bad_signature' | 'too_large' | 'ignored' | 'malformed' | 'busy';

/** Unauthenticated body bytes held at once (a few full-size deliveries). */
export const MAX_INFLIGHT_BYTES = 128 * 1024 * 1024;

function reply(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${message}\n`);
}

/**
 * Reads the body up to `max` bytes; 'too_large' when it is larger (the rest is not
 * buffered), 'busy' when the shared budget of in-flight bytes has no room for it.
 */
function readCapped(req: IncomingMessage, max: number, budget: { take(n: number): boolean; give(n: number): void }): Promise<Buffer | 'too_large' | 'busy'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const release = () => {
      budget.give(size);
      size = 0;
    };
    req.on('close', release);
    req.on('data', (c: Buffer) => {
      if (over) return;
      if (size + c.length > max) {
        over = true;
        chunks.length = 0;
        release();
        resolve('too_large');
        return;
      }
      if (!budget.take(c.length)) {
        over = true;
        chunks.length = 0;
        release();
        resolve('busy');
        return;
      }
      size += c.length;
      chunks.push(c);
    });
    req.on('end', () => {
      if (over) return;
      const body = Buffer.concat(chunks);
      chunks.length = 0;
      resolve(body);
    });
    req.on('error', reject);
  });
}

/**
 * POST /webhook: size cap (413, not buffered), signature (401, nothing stored),
 * then the delivery is stored durably before the 202 answer; a replayed
 * X-GitHub-Delivery is answered 202 and not stored again.
 */
export function webhookHandler(o: IntakeOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const max = o.maxBytes ?? MAX_WEBHOOK_BYTES;
  const maxInflight = o.maxInflightBytes ?? MAX_INFLIGHT_BYTES;
  const maxBodies = o.maxConcurrentBodies ?? 64;
  let inflight = 0;
  let bodies = 0;
  const budget = {
    take: (n: number) => (inflight + n > maxInflight ? false : ((inflight += n), true)),
    give: (n: number) => void (inflight -= n),
  };
  return async (req, res) => {
    const log = o.logger.child({ delivery: String(req.headers['x-github-delivery'] ?? '').slice(0, 64) });
    const declared = Number(req.headers['content-length'] ?? 0) || 0;
    const count = o.onResult ?? (() => undefined);
    if (declared > max) {
      count('too_large');
      log.warn({ bytes: declared }, 'webhook body too large');
      // Read and drop the rest (never kept), so the client sees the answer rather than a reset.
      req.resume();
      reply(res, 413, `payload larger than ${max} bytes`);
      return;
    }
    if (bodies >= maxBodies || declared > maxInflight - inflight) {
      count('busy');
      log.warn({ bodies, inflight }, 'webhook intake busy: too many unauthenticated bodies in flight');
      res.setHeader('retry-after', '5');
      res.setHeader('connection', 'close');
      reply(res, 503, 'too many deliveries in flight; retry later');
      req.destroy();
      return;
    }
    bodies++;
    let body: Buffer | 'too_large' | 'busy';
    try {
      body = await readCapped(req, max, budget);
    } finally {
      bodies--;
    }
    if (body === 'too_large' || body === 'busy') {
      count(body);
      log.warn(body === 'busy' ? 'webhook intake busy' : 'webhook body too large');
      if (body === 'busy') res.setHeader('retry-after', '5');
      reply(res, body === 'busy' ? 503 : 413, body === 'busy' ? 'too many deliveries in flight; retry later' : `payload larger than ${max} bytes`);
      req.resume();
      return;
    }
    const signature = req.headers['x-hub-signature-256'];
    if (!(await verifyWebhookSignature(o.secret, body, typeof signature === 'string' ? signature : undefined))) {
      count('bad_signature');
      log.warn('webhook signature missing or wrong');
      reply(res, 401, 'signature does not match');
      return;
    }
    const guid = req.headers['x-github-delivery'];
    const event = req.headers['x-github-event'];
    if (typeof guid !== 'string' || !/^[A-Za-z0-9-]{1,64}$/.test(guid) || typeof event !== 'string' || !/^[a-z_]{1,64}$/.test(event)) {
      count('malformed');
      reply(res, 400, 'X-GitHub-Delivery and X-GitHub-Event are required');
      return;
    }
    if (!o.events.has(event)) {
      count('ignored');
      reply(res, 202, `event ${event} is ignored`);
      return;
    }
    try {
      JSON.parse(body.toString('utf8'));
    } catch {
      count('malformed');
      reply(res, 400, 'body is not JSON');
      return;
    }
    const added = await o.store.addDelivery(guid, event, body.toString('utf8'));
    count(added ? 'accepted' : 'duplicate');
    reply(res, 202, added ? 'accepted' : 'already received');
    if (added) o.onStored();
  };
}
