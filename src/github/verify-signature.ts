import { verify } from '@octokit/webhooks-methods';

/**
 * Checks `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, constant-time
 * comparison, by Octokit's webhooks methods) before anything is parsed.
 */
export async function verifyWebhookSignature(secret: string, rawBody: Buffer, signature: string | undefined): Promise<boolean> {
  if (!signature || !/^sha256=[0-9a-f]{64}$/.test(signature)) return false;
  try {
    return await verify(secret, rawBody.toString('utf8'), signature);
  } catch {
    return false;
  }
}
