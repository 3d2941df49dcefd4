import type { CheckAnnotation, CheckRunFields } from './github-api';

/** GitHub's limit on a check run's output.text and output.summary. */
export const CHECK_TEXT_LIMIT = 65_535;
/** GitHub accepts at most 50 annotations per request. */
export const ANNOTATIONS_PER_REQUEST = 50;

export type CheckConclusion = 'success' | 'failure' | 'cancelled' | 'timed_out' | 'skipped' | 'neutral';

/** What the server knows of a finished job, independent of the runner's types. */
export interface JobReport {
  name: string;
  conclusion: CheckConclusion;
  steps: Array<{ name: string; conclusion: string; durationMs: number; peakMemoryBytes: number; exitReason: string }>;
  /** The job's GITHUB_STEP_SUMMARY (masked). */
  stepSummary: string;
  /** Masked log lines, oldest first. */
  log: string[];
  error?: string;
  annotations: Array<{ level: 'error' | 'warning' | 'notice'; message: string; title?: string; file?: string; line?: number; endLine?: number; column?: number; endColumn?: number }>;
  /** What the job's egress sidecar allowed and blocked; refusals are anomaly signals. */
  network?: { dnsAllowed: number; dnsRefused: number; connectionsAllowed: number; connectionsRefused: number; bytesOut: number; refusals: string[]; audited?: string[] };
  /** What the job wrote against its disk limits (added up over the run's jobs). */
  disk?: { bytesUsed: number; bytesLimit: number; inodesUsed: number; inodesLimit: number };
  /** The remote actions that ran, each with the commit its ref resolved to (what ran, exactly). */
  actions?: Array<{ uses: string; sha?: string }>;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function mib(b: number): string {
  return b ? `${(b / 1024 ** 2).toFixed(1)} MiB` : '-';
}

/** The summary: a table of steps (durations, memory peaks, exit reasons), then the job's step summary, cut to GitHub's limit. */
export function reportSummary(r: JobReport): string {
  const rows = r.steps.map((s) => `| ${cell(s.name)} | ${s.conclusion} | ${(s.durationMs / 1000).toFixed(2)} s | ${mib(s.peakMemoryBytes)} | ${cell(s.exitReason)} |`);
  const table = ['| step | conclusion | duration | peak memory | exit |', '|---|---|---|---|---|', ...rows].join('\n');
  const parts = [`**${r.conclusion}**${r.error ? `: ${cell(r.error)}` : ''}`, table];
  const n = r.network;
  const blocked = n ? n.dnsRefused + n.connectionsRefused : 0;
  if (n && blocked) {
    const shown = n.refusals.slice(0, 10).map((x) => `- ${cell(x)}`);
    parts.push([`:warning: **${blocked} blocked network attempt${blocked === 1 ? '' : 's'}**: ${cell(n.refusals.slice(0, 3).join('; '))}${n.refusals.length > 3 ? '; …' : ''}`, ...shown].join('\n'));
  }
  if (n?.audited) {
    parts.push(n.audited.length
      ? [`**Egress audit**: ${n.audited.length} name${n.audited.length === 1 ? '' : 's'} reached; the allowlist that enforces the same:`, '```yaml', 'egress:', '  allow:', ...n.audited.map((x) => `    - ${x.replace(/[^a-z0-9.*-]/g, '')}`), '```'].join('\n')
      : '**Egress audit**: no name was reached; the job needs no egress.');
  }
  if (r.actions?.length) parts.push(`Actions: ${r.actions.map((a) => `\`${cell(a.uses)}\` ${a.sha ? `at \`${a.sha}\`` : '(offline copy)'}`).join(', ')}`);
  if (r.disk) parts.push(`Disk: ${mib(r.disk.bytesUsed)} of ${mib(r.disk.bytesLimit)}, ${r.disk.inodesUsed} of ${r.disk.inodesLimit} files`);
  if (r.stepSummary.trim()) parts.push(r.stepSummary);
  return cut(parts.join('\n\n'), CHECK_TEXT_LIMIT);
}

/** The log tail that fits in output.text, in a code block. */
export function reportText(log: string[]): string {
  const budget = CHECK_TEXT_LIMIT - 200;
  const kept: string[] = [];
  let size = 0;
  for (let i = log.length - 1; i >= 0; i--) {
    const line = log[i]!.replace(/```/g, "'''");
    if (size + line.length + 1 > budget) break;
    kept.unshift(line);
    size += line.length + 1;
  }
  const dropped = log.length - kept.length;
  return `${dropped ? `(${dropped} earlier lines in the full log)\n` : ''}\`\`\`\n${kept.join('\n')}\n\`\`\``;
}

function cut(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 40)}\n\n… (cut at ${max} characters)`;
}

/** Annotations as the Checks API takes them, in batches of 50 (only those with a file can be placed). */
export function annotationBatches(r: JobReport): CheckAnnotation[][] {
  const level = { error: 'failure', warning: 'warning', notice: 'notice' } as const;
  const all = r.annotations.map((a) => {
    const start = a.line ?? 1;
    const end = a.endLine ?? start;
    const x: CheckAnnotation = {
      path: a.file ?? '.github',
      start_line: start,
      end_line: end,
      annotation_level: level[a.level],
      message: cut(a.message, 64 * 1024 - 100),
    };
    if (a.title) x.title = cut(a.title, 255);
    // GitHub accepts columns only on single-line annotations.
    if (start === end && a.column !== undefined) {
      x.start_column = a.column;
      x.end_column = a.endColumn ?? a.column;
    }
    return x;
  });
  const batches: CheckAnnotation[][] = [];
  for (let i = 0; i < all.length; i += ANNOTATIONS_PER_REQUEST) batches.push(all.slice(i, i + ANNOTATIONS_PER_REQUEST));
  return batches;
}

/** The `completed` update of a check run: conclusion, summary, log tail, first batch of annotations. */
export function completedFields(r: JobReport, detailsUrl: string | undefined, now: Date): CheckRunFields {
  const batches = annotationBatches(r);
  return {
    status: 'completed',
    conclusion: r.conclusion,
    completed_at: now.toISOString(),
    ...(detailsUrl ? { details_url: detailsUrl } : {}),
    output: { title: `${r.name}: ${r.conclusion}`, summary: reportSummary(r), text: reportText(r.log), ...(batches[0] ? { annotations: batches[0] } : {}) },
  };
}
