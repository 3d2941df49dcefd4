import { normalizeOn, type JobModel, type WorkflowModel } from '../workflow';

/** Jobs by stage (a job's stage is one more than the deepest of its needs), as `act -l` lists them; with steps for a dry run. */
export function listJobs(plan: Array<{ wf: WorkflowModel; jobs: JobModel[] }>, eventName: string, steps = false): string {
  const rows: string[][] = [['Stage', 'Job ID', 'Job name', 'Workflow file', 'Events']];
  const lines: string[] = [];
  for (const { wf, jobs } of plan) {
    const all = new Map(wf.jobs.map((j) => [j.id, j]));
    const stage = new Map<string, number>();
    const stageOf = (id: string, seen: Set<string>): number => {
      const known = stage.get(id);
      if (known !== undefined) return known;
      if (seen.has(id)) return 0;
      seen.add(id);
      const j = all.get(id);
      const v = j && j.needs.length ? 1 + Math.max(...j.needs.map((n) => stageOf(n, seen))) : 0;
      stage.set(id, v);
      return v;
    };
    const events = [...normalizeOn(wf.on).keys()].join(',');
    for (const j of [...jobs].sort((a, b) => stageOf(a.id, new Set()) - stageOf(b.id, new Set()))) {
      rows.push([String(stageOf(j.id, new Set())), j.id, j.name ?? j.id, relativeWorkflow(wf.file), events]);
      if (steps) lines.push(`${relativeWorkflow(wf.file)} ${j.id}: ${j.steps.map((st) => st.name ?? (st.uses ? `uses ${st.uses}` : `run ${(st.run ?? '').split('\n')[0]!.slice(0, 40)}`)).join(' → ') || '(no steps)'}`);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const table = rows.map((r) => r.map((v, c) => v.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
  return `${table}\n${lines.length ? `\n${lines.join('\n')}\n` : ''}${rows.length === 1 ? `no job runs on '${eventName}'\n` : ''}`;
}

function relativeWorkflow(file: string): string {
  const i = file.lastIndexOf('.github/workflows/');
  return i >= 0 ? file.slice(i) : file;
}
