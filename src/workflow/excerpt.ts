/** Longest quoted excerpt of a file a diagnostic carries. */
export const MAX_EXCERPT_CHARS = 32;
/** Longest diagnostic message. */
export const MAX_MESSAGE_CHARS = 400;

/**
 * Diagnostics travel to check runs and logs: a message quotes at most a short excerpt
 * of the file ('…' after 32 characters), with control characters shown escaped, and
 * the whole message is cut at 400 characters.
 */
export function limitExcerpts(message: string): string {
  const short = message.replace(/'([^'\n]*)'/g, (_m, inner: string) => `'${inner.length > MAX_EXCERPT_CHARS ? `${inner.slice(0, MAX_EXCERPT_CHARS)}…` : inner}'`);
  // eslint-disable-next-line no-control-regex
  const clean = short.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return clean.length > MAX_MESSAGE_CHARS ? `${clean.slice(0, MAX_MESSAGE_CHARS)}…` : clean;
}
