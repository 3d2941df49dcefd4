/** Returns one `needs` cycle as a path of job ids (first id repeated at the end), or undefined. */
export function findNeedsCycle(jobs: Array<{ id: string; needs: string[] }>): string[] | undefined {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'visiting') return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 'visiting');
    stack.push(id);
    for (const n of byId.get(id)?.needs ?? []) {
      if (!byId.has(n)) continue;
      const c = visit(n);
      if (c) return c;
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const j of jobs) {
    const c = visit(j.id);
    if (c) return c;
  }
  return undefined;
}

/** Jobs in an order where every job comes after the jobs it needs (input order kept where free). */
export function orderByNeeds<T extends { id: string; needs: string[] }>(jobs: T[]): T[] {
  const done = new Set<string>();
  const out: T[] = [];
  let rest = [...jobs];
  while (rest.length) {
    const ready = rest.filter((j) => j.needs.every((n) => done.has(n) || !jobs.some((x) => x.id === n)));
    if (!ready.length) throw new Error('needs cycle');
    for (const j of ready) {
      out.push(j);
      done.add(j.id);
    }
    rest = rest.filter((j) => !done.has(j.id));
  }
  return out;
}
