/**
 * What the sidecar reports, one JSON object per line on its stdout. The runner
 * reads them into the job's log, metrics and check-run summary.
 */
export type EgressEvent =
  | { ev: 'ready'; address: string }
  | { ev: 'dns'; verdict: 'allowed' | 'refused'; name: string; qtype: string; client: string; rcode?: string; reason?: string; detail?: string }
  | { ev: 'egress'; verdict: 'allowed' | 'refused'; via: 'connect' | 'http-proxy' | 'tls' | 'http'; name: string; port: number; client: string; address?: string; reason?: string; bytesOut?: number; bytesIn?: number }
  | { ev: 'suppressed'; dns: number; egress: number };

export function parseEgressEvent(line: string): EgressEvent | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(line) as EgressEvent;
    return typeof v === 'object' && v && typeof v.ev === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** A refusal in words, for logs and the check-run summary. */
export function describeRefusal(e: EgressEvent): string | undefined {
  if (e.ev === 'dns' && e.verdict === 'refused') return `DNS ${e.qtype || '?'} ${e.name || '(undecodable)'}: ${e.reason}${e.detail ? ` (${e.detail})` : ''}`;
  if (e.ev === 'egress' && e.verdict === 'refused') return `${e.via} ${e.name}:${e.port}: ${e.reason}`;
  return undefined;
}
