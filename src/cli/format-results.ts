import type { JobResult } from '../runner';

function mib(bytes: number): string {
  return bytes ? `${(bytes / 1024 ** 2).toFixed(1)} MiB` : '-';
}

/** The summary table printed after a run. */
export function formatSummary(results: JobResult[]): string {
  const rows: string[][] = [['job', 'step', 'conclusion', 'duration', 'peak memory', 'exit reason']];
  for (const j of results) {
    rows.push([j.name, '', j.conclusion, `${(j.durationMs / 1000).toFixed(2)} s`, '', j.error ? 'error' : '']);
    for (const s of j.steps) {
      const reason = s.reason === 'exit' ? `exit ${s.exitCode}` : s.reason;
      rows.push(['', s.name.slice(0, 48), s.conclusion, `${(s.durationMs / 1000).toFixed(2)} s`, mib(s.peakMemoryBytes), reason]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
  const errors = results.filter((j) => j.error).map((j) => `job ${j.id}: ${j.error}`);
  const blocked = results.flatMap((j) => {
    const e = j.egress;
    const n = e ? e.dnsRefused + e.connectionsRefused : 0;
    return e && n ? [`job ${j.id}: ${n} blocked network attempts: ${e.refusals.slice(0, 5).join('; ')}${e.refusals.length > 5 ? '; …' : ''}`] : [];
  });
  // Audit mode: what the job reached, and the allowlist that lets it do the same in enforce mode.
  const audited = results.flatMap((j) => (j.egress?.audited ? [`job ${j.id}: egress audit: ${j.egress.audited.length} names reached${j.egress.audited.length ? `: ${j.egress.audited.join(', ')}\n  allowlist to enforce the same: ${proposedFlags(j.egress.audited)}` : ''}`] : []));
  const disk = results.flatMap((j) => (j.disk ? [`job ${j.id}: disk ${mib(j.disk.bytesUsed)} of ${mib(j.disk.bytesLimit)}, ${j.disk.inodesUsed} of ${j.disk.inodesLimit} files`] : []));
  const cache = results.flatMap((j) => {
    const r = j.results;
    if (!r || !(r.cacheHits + r.cachePartialHits + r.cacheMisses + r.cachesSaved + r.artifactsUploaded + r.artifactsDownloaded)) return [];
    const parts = [
      r.cacheHits + r.cachePartialHits + r.cacheMisses ? `caches ${r.cacheHits} hit, ${r.cachePartialHits} by restore key, ${r.cacheMisses} missed (${mib(r.cacheBytesRestored)} restored)` : '',
      r.cachesSaved ? `${r.cachesSaved} saved (${mib(r.cacheBytesSaved)})` : '',
      r.artifactsUploaded ? `${r.artifactsUploaded} artifacts uploaded (${mib(r.artifactBytesUploaded)})` : '',
      r.artifactsDownloaded ? `${r.artifactsDownloaded} downloaded` : '',
    ];
    return [`job ${j.id}: ${parts.filter(Boolean).join(', ')}`];
  });
  const actions = results.flatMap((j) => (j.actions?.length ? [`job ${j.id}: actions ${j.actions.map((a) => `${a.uses} ${a.sha ? `at ${a.sha.slice(0, 12)}` : '(offline copy)'}`).join(', ')}`] : []));
  const notes = [...errors, ...blocked, ...audited, ...disk, ...cache, ...actions];
  return notes.length ? `${table}\n\n${notes.join('\n')}` : table;
}

/** What `stockade run` prints at the end: the table, or the JSON result. */
export function formatResults(results: JobResult[], json: boolean): string {
  return json ? `${JSON.stringify(toJson(results), null, 2)}\n` : `\n${formatSummary(results)}\n`;
}

/** Machine-readable result of `stockade run --json`. */
export function toJson(results: JobResult[]): unknown {
  return {
    conclusion: results.every((j) => j.conclusion === 'success' || j.conclusion === 'skipped') ? 'success' : 'failure',
    jobs: results.map((j) => ({
      id: j.id,
      name: j.name,
      conclusion: j.conclusion,
      outcome: j.outcome,
      matrix: j.matrix,
      durationMs: j.durationMs,
      outputs: j.outputs,
      error: j.error,
      summary: j.summary,
      egress: j.egress,
      disk: j.disk,
      results: j.results,
      actions: j.actions,
      steps: j.steps.map((s) => ({
        index: s.index,
        id: s.id,
        name: s.name,
        conclusion: s.conclusion,
        outcome: s.outcome,
        exitCode: s.exitCode,
        exitReason: s.reason,
        durationMs: s.durationMs,
        peakMemoryBytes: s.peakMemoryBytes,
        cpuSeconds: s.cpuSeconds,
        outputs: s.outputs,
        error: s.error,
        annotations: s.annotations,
        log: s.log,
        logDroppedLines: s.logDroppedLines,
      })),
    })),
  };
}

/** `--allow-domain a --allow-domain b` for the names an audit recorded (exact names: never wider than what ran). */
function proposedFlags(names: string[]): string {
  return names.map((n) => `--allow-domain ${n}`).join(' ');
}
