import { normalizeOn, type JobModel, type WorkflowModel } from '../workflow';

/** A job's stage: one more than the deepest of its needs (0 without needs; a cycle counts as 0). */
function stages(wf: WorkflowModel): (id: string) => number {
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
  return (id) => stageOf(id, new Set());
}

/**
 * Jobs by stage as boxes, one row per stage with an arrow between rows, as `act -g` draws them
 * (per workflow file; a job's needs are all in rows above it).
 */
export function graphJobs(plan: Array<{ wf: WorkflowModel; jobs: JobModel[] }>, eventName: string): string {
  const parts: string[] = [];
  for (const { wf, jobs } of plan) {
    if (!jobs.length) continue;
    const stageOf = stages(wf);
    const rows: string[][] = [];
    for (const j of jobs) (rows[stageOf(j.id)] ??= []).push(j.name && !j.name.includes('${{') ? j.name : j.id);
    const drawn = rows.filter(Boolean).map((names) => {
      const boxes = names.map((n) => [`╭${'─'.repeat(n.length + 2)}╮`, `│ ${n} │`, `╰${'─'.repeat(n.length + 2)}╯`]);
      return [0, 1, 2].map((i) => ` ${boxes.map((b) => b[i]).join(' ')}`);
    });
    const width = Math.max(...drawn.map((d) => d[0]!.length));
    const arrow = `${' '.repeat(Math.max(0, Math.floor(width / 2)))}⬇`;
    parts.push(`${relativeWorkflow(wf.file)}\n${drawn.map((d) => d.join('\n')).join(`\n${arrow}\n`)}\n`);
  }
  return parts.length ? parts.join('\n') : `no job runs on '${eventName}'\n`;
}

/** Jobs by stage (a job's stage is one more than the deepest of its needs), as `act -l` lists them; with steps for a dry run. */
export function listJobs(plan: Array<{ wf: WorkflowModel; jobs: JobModel[] }>, eventName: string, steps = false): string {
  const rows: string[][] = [['Stage', 'Job ID', 'Job name', 'Workflow name', 'Workflow file', 'Events']];
  const lines: string[] = [];
  for (const { wf, jobs } of plan) {
    const stageOf = stages(wf);
    const events = [...normalizeOn(wf.on).keys()].join(',');
    for (const j of [...jobs].sort((a, b) => stageOf(a.id) - stageOf(b.id))) {
      rows.push([String(stageOf(j.id)), j.id, j.name ?? j.id, wf.name ?? relativeWorkflow(wf.file), relativeWorkflow(wf.file), events]);
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
