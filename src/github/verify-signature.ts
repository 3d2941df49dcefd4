import { Webhooks } from '@octokit/webhooks';

const verifiers = new Map<string, Webhooks>();

/**
 * Checks `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, constant-time
 * comparison, by @octokit/webhooks) before anything is parsed.
 */
export async function verifyWebhookSignature(secret: string, rawBody: Buffer, signature: string | undefined): Promise<boolean> {
  if (!signature || !/^sha256=[0-9a-f]{64}$/.test(signature)) return false;
  let w = verifiers.get(secret);
  if (!w) {
    w = new Webhooks({ secret });
    verifiers.set(secret, w);
  }
  try {
    return await w.verify(rawBody.toString('utf8'), signature);
  } catch {
    return false;
  }
}
