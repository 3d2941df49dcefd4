/** Text put where a secret was. */
export const MASK = '***';
/** Encoded forms shorter than this are not registered (they would mask ordinary text). */
const MIN_ENCODED_LENGTH = 4;
/** Bound on registered values, so a step cannot make every later line quadratic. */
export const MAX_MASK_VALUES = 2_000;

function base64Forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const out: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    const b = bytes.subarray(shift);
    if (!b.length) continue;
    let enc = b.toString('base64').replace(/=+$/, '');
    // The last character depends on the bytes that follow the secret when the length is not a multiple of 3.
    if (b.length % 3 !== 0) enc = enc.slice(0, -1);
    out.push(enc);
  }
  return out;
}

/** The encodings GitHub's runner masks besides the raw value (its ValueEncoders). */
function encodings(value: string): string[] {
  return [
    JSON.stringify(value).slice(1, -1),
    encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    value.replace(/'/g, "''"),
    value.replace(/^"+|"+$/g, ''),
    value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;'),
    ...base64Forms(value),
  ];
}

/**
 * Replaces registered secrets, their encodings and each line of multi-line
 * secrets by `***`, merging overlapping matches (as GitHub's SecretMasker does).
 */
export class SecretMasker {
  private readonly values = new Set<string>();
  private sorted: string[] = [];

  /** Registers a value; returns false when it is empty or the bound is reached. */
  add(value: string): boolean {
    if (!value || !value.trim()) return false;
    const lines = value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
    const raw = lines.length > 1 ? [value, ...lines] : [value];
    const encoded = raw.flatMap(encodings).filter((e) => e.length >= MIN_ENCODED_LENGTH);
    for (const c of [...raw, ...encoded]) {
      if (this.values.size >= MAX_MASK_VALUES) break;
      this.values.add(c);
    }
    this.sorted = [...this.values].sort((a, b) => b.length - a.length);
    return true;
  }

  get size(): number {
    return this.values.size;
  }

  mask(text: string): string {
    if (!this.sorted.length || !text) return text;
    const ranges: Array<[number, number]> = [];
    for (const v of this.sorted) {
      for (let i = text.indexOf(v); i !== -1; i = text.indexOf(v, i + 1)) ranges.push([i, i + v.length]);
    }
    if (!ranges.length) return text;
    ranges.sort((a, b) => a[0] - b[0]);
    let out = '';
    let pos = 0;
    let cur = ranges[0]!;
    for (const r of ranges.slice(1)) {
      if (r[0] <= cur[1]) cur = [cur[0], Math.max(cur[1], r[1])];
      else {
        out += text.slice(pos, cur[0]) + MASK;
        pos = cur[1];
        cur = r;
      }
    }
    return out + text.slice(pos, cur[0]) + MASK + text.slice(cur[1]);
  }

  /** Masks every string inside a JSON-like value. */
  maskDeep<T>(value: T): T {
    if (typeof value === 'string') return this.mask(value) as T;
    if (Array.isArray(value)) return value.map((v) => this.maskDeep(v)) as T;
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.maskDeep(v)])) as T;
    }
    return value;
  }

  contains(text: string): boolean {
    return this.mask(text) !== text;
  }
}
