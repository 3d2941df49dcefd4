/** Rows taken one per repository in turn (arrival order within each), so one repository's burst does not hold up another's admission. */
export function interleaveByRepository<T extends { repository: string }>(rows: T[]): T[] {
  const byRepo = new Map<string, T[]>();
  for (const r of rows) {
    const list = byRepo.get(r.repository);
    if (list) list.push(r);
    else byRepo.set(r.repository, [r]);
  }
  const out: T[] = [];
  const lists = [...byRepo.values()];
  for (let i = 0; out.length < rows.length; i++) for (const l of lists) if (l[i]) out.push(l[i]!);
  return out;
}
