import { limitExcerpts } from './excerpt';
import YAML, { LineCounter, isNode } from 'yaml';
import type { Diagnostic, SourcePos } from './model';
import { WORKFLOW_LIMITS } from './limits';

export interface StrictYaml {
  /** The document as plain data; undefined when there are diagnostics. */
  js?: unknown;
  /** Position of the node at a path (for diagnostics about the data). */
  posOf(path: Array<string | number>): SourcePos;
  diagnostics: Diagnostic[];
}

/**
 * The strict YAML pass of workflow and action files: size cap, duplicate keys,
 * no merge keys or custom tags, aliases capped; every problem a diagnostic with
 * file, line and column. Never throws on bad input.
 */
export function parseStrictYaml(file: string, content: string): StrictYaml {
  const diagnostics: Diagnostic[] = [];
  const lineCounter = new LineCounter();
  const posAt = (offset: number): SourcePos => {
    const p = lineCounter.linePos(offset);
    return { file, line: p.line, column: p.col };
  };
  const err = (pos: SourcePos, message: string) => diagnostics.push({ ...pos, severity: 'error', message: limitExcerpts(message) });
  const size = Buffer.byteLength(content);
  if (size > WORKFLOW_LIMITS.maxFileBytes) {
    err({ file, line: 1, column: 1 }, `file is ${size} bytes; the limit is ${WORKFLOW_LIMITS.maxFileBytes}`);
    return { diagnostics, posOf: () => ({ file, line: 1, column: 1 }) };
  }
  const doc = YAML.parseDocument(content, { lineCounter, uniqueKeys: true, merge: false, prettyErrors: false, strict: true, customTags: [] });
  const posOf = (path: Array<string | number>): SourcePos => {
    const node = doc.getIn(path, true);
    return posAt(isNode(node) && node.range ? node.range[0] : 0);
  };
  for (const e of [...doc.errors, ...doc.warnings]) err(posAt(e.pos[0]), e.message.split('\n')[0] ?? e.message);
  if (diagnostics.length) return { diagnostics, posOf };
  try {
    return { js: doc.toJS({ maxAliasCount: WORKFLOW_LIMITS.maxAliases }), diagnostics, posOf };
  } catch (e) {
    err({ file, line: 1, column: 1 }, `YAML could not be expanded: ${(e as Error).message}`);
    return { diagnostics, posOf };
  }
}
