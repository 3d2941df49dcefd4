import type { IncomingMessage, ServerResponse } from 'node:http';

/** Twirp's error codes and the HTTP statuses its specification gives them. */
const STATUS = {
  invalid_argument: 400,
  malformed: 400,
  bad_route: 404,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  unauthenticated: 401,
  failed_precondition: 412,
  resource_exhausted: 429,
  internal: 500,
} as const;
export type TwirpCode = keyof typeof STATUS;

export class TwirpError extends Error {
  constructor(readonly code: TwirpCode, message: string) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

export function sendTwirpError(res: ServerResponse, e: TwirpError): void {
  sendJson(res, STATUS[e.code], { code: e.code, msg: e.message });
}

/** A JSON body of at most `max` bytes, as an object; anything else is a TwirpError. */
export async function readJsonBody(req: IncomingMessage, max: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new TwirpError('invalid_argument', `the request body is larger than ${max} bytes`);
    chunks.push(c);
  }
  let v: unknown;
  try {
    v = n ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
  } catch {
    throw new TwirpError('malformed', 'the request body is not JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new TwirpError('malformed', 'the request body is not a JSON object');
  return v as Record<string, unknown>;
}

/** A string field of a request (protobuf's JSON form: a missing string is ''). */
export function str(body: Record<string, unknown>, field: string, max = 1024): string {
  const v = body[field] ?? '';
  if (typeof v !== 'string') throw new TwirpError('invalid_argument', `${field} must be a string`);
  if (v.length > max) throw new TwirpError('invalid_argument', `${field} is longer than ${max} characters`);
  return v;
}

/** An int64 field (protobuf's JSON form writes them as strings). */
export function int(body: Record<string, unknown>, field: string): number | undefined {
  const v = body[field];
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : typeof v === 'number' ? v : NaN;
  if (!Number.isSafeInteger(n)) throw new TwirpError('invalid_argument', `${field} must be an integer`);
  return n;
}
