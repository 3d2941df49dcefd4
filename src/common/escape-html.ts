/** Text as HTML text or an attribute value: `& < > " '` as numeric entities. */
export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
