/** GitHub's limit on the jobs one matrix may generate. */
export const MAX_MATRIX_JOBS = 256;

export type MatrixCombination = Record<string, unknown>;

function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Expands an evaluated `strategy.matrix` as GitHub documents it: the cartesian
 * product of the keys, minus `exclude` (partial matches), then each `include`
 * entry is added to every combination whose original values it does not
 * overwrite, or becomes a new combination when it fits none.
 */
export function expandMatrix(matrix: unknown): { combinations: MatrixCombination[] } | { error: string } {
  if (matrix === undefined || matrix === null) return { combinations: [{}] };
  if (!isObject(matrix)) return { error: `strategy.matrix must be a mapping, not ${JSON.stringify(matrix)?.slice(0, 80)}` };
  const keys = Object.keys(matrix).filter((k) => k !== 'include' && k !== 'exclude');
  let combos: MatrixCombination[] = [{}];
  for (const k of keys) {
    const values = matrix[k];
    if (!Array.isArray(values)) return { error: `strategy.matrix.${k} must be a sequence` };
    if (!values.length) return { error: `strategy.matrix.${k} is empty; a matrix vector must have at least one value` };
    const next: MatrixCombination[] = [];
    for (const c of combos) for (const v of values) next.push({ ...c, [k]: v });
    if (next.length > MAX_MATRIX_JOBS * 4) return { error: `the matrix has more than ${MAX_MATRIX_JOBS} combinations` };
    combos = next;
  }
  if (!keys.length) combos = [];
  const exclude = matrix.exclude ?? [];
  const include = matrix.include ?? [];
  if (!Array.isArray(exclude) || !exclude.every(isObject)) return { error: 'strategy.matrix.exclude must be a sequence of mappings' };
  if (!Array.isArray(include) || !include.every(isObject)) return { error: 'strategy.matrix.include must be a sequence of mappings' };
  for (const ex of exclude) {
    for (const k of Object.keys(ex)) if (!keys.includes(k)) return { error: `strategy.matrix.exclude refers to '${k}', which is not a matrix key` };
  }
  combos = combos.filter((c) => !exclude.some((ex) => Object.entries(ex).every(([k, v]) => isSubset(v, c[k]))));
  const originals = combos.map((c) => ({ ...c }));
  const extra: MatrixCombination[] = [];
  for (const inc of include) {
    let added = false;
    combos.forEach((c, i) => {
      const orig = originals[i]!;
      const clashes = Object.entries(inc).some(([k, v]) => k in orig && !sameValue(orig[k], v));
      if (clashes) return;
      Object.assign(c, inc);
      added = true;
    });
    if (!added) extra.push({ ...inc });
  }
  const all = [...combos, ...extra];
  if (all.length > MAX_MATRIX_JOBS) return { error: `the matrix generates ${all.length} jobs; the limit is ${MAX_MATRIX_JOBS}` };
  if (!all.length) return { error: 'the matrix generates no jobs (every combination is excluded)' };
  return { combinations: all };
}

/** An exclude value matches when it equals the value, or is a mapping contained in it. */
function isSubset(pattern: unknown, value: unknown): boolean {
  if (isObject(pattern) && isObject(value)) return Object.entries(pattern).every(([k, v]) => isSubset(v, value[k]));
  return sameValue(pattern, value);
}

function displayValue(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** `build (18, ubuntu)`: the job's name followed by its matrix values, as GitHub shows a matrix job. */
export function matrixJobName(base: string, combination: MatrixCombination): string {
  const values = Object.values(combination).map(displayValue);
  return values.length ? `${base} (${values.join(', ')})` : base;
}
