import { createHmac, timingSafeEqual } from 'node:crypto';

/** The signature that lets a link read one job's log and no other. */
export function logSignature(key: Buffer, jobKey: string): string {
  return createHmac('sha256', key).update(jobKey).digest('hex');
}

export function logUrl(publicUrl: string, key: Buffer, jobKey: string): string {
  return `${publicUrl.replace(/\/$/, '')}/logs/${encodeURIComponent(jobKey)}?sig=${logSignature(key, jobKey)}`;
}

/** The job's page (step table, network, the log, live while it runs): the check run's details link. */
export function jobPageUrl(publicUrl: string, key: Buffer, jobKey: string): string {
  return `${publicUrl.replace(/\/$/, '')}/jobs/${encodeURIComponent(jobKey)}?sig=${logSignature(key, jobKey)}`;
}

export function checkLogSignature(key: Buffer, jobKey: string, sig: string | null): boolean {
  if (!sig || !/^[0-9a-f]{64}$/.test(sig)) return false;
  return timingSafeEqual(Buffer.from(logSignature(key, jobKey), 'hex'), Buffer.from(sig, 'hex'));
}
