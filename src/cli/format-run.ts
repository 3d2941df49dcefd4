import type { JobResult } from '../runner';
import { formatSummary, toJson } from './format-results';

export function formatResults(results: JobResult[], json: boolean): string {
  return json ? `${JSON.stringify(toJson(results), null, 2)}\n` : `\n${formatSummary(results)}\n`;
}
