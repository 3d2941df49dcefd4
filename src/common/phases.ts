/**
 * Where the time of one piece of work went, phase by phase (ms since the previous mark), for a
 * debug log line and the benchmarks' phase tables (issue 17). Marks cost a clock read.
 */
export class Phases {
  private last = performance.now();
  readonly ms: Record<string, number> = {};

  mark(phase: string): void {
    const now = performance.now();
    this.ms[phase] = Math.round(((this.ms[phase] ?? 0) + now - this.last) * 10) / 10;
    this.last = now;
  }
}
