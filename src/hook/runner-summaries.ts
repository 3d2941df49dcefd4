import type { EgressReport, RunnerSummary } from '../runner';

const MAX_SUMMARIES = 1024;

/** What one hook job adds to its runner directory's summary when it ends. */
export interface EndedJob {
  root: string;
  outcomes: RunnerSummary['steps'];
  refusals: string[];
  limits: string;
  network?: EgressReport;
}

/**
 * Summaries of ended hook jobs by runner directory, kept until the runner is gone and its summary
 * taken (server runner mode reports it in Stockade's check run); at most 1024 directories, oldest
 * dropped first (a runner started by hand never has its summary taken).
 */
export class RunnerSummaries {
  private readonly byRoot = new Map<string, RunnerSummary>();

  add(job: EndedJob): void {
    const sum = this.byRoot.get(job.root) ?? empty();
    sum.jobs++;
    sum.limits = job.limits;
    sum.steps.push(...job.outcomes);
    sum.refusals.push(...job.refusals);
    if (job.network) {
      sum.blockedNetworkAttempts += job.network.dnsRefused + job.network.connectionsRefused;
      sum.blocked.push(...job.network.refusals);
    }
    this.byRoot.delete(job.root);
    this.byRoot.set(job.root, sum);
    if (this.byRoot.size > MAX_SUMMARIES) this.byRoot.delete(this.byRoot.keys().next().value!);
  }

  take(root: string): RunnerSummary {
    const sum = this.byRoot.get(root) ?? empty();
    this.byRoot.delete(root);
    return sum;
  }
}

function empty(): RunnerSummary {
  return { jobs: 0, steps: [], refusals: [], blockedNetworkAttempts: 0, blocked: [] };
}
