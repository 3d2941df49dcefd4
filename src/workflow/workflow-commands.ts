/**
 * Workflow commands that a step prints on stdout (`::name key=value,…::message`),
 * parsed as GitHub's runner parses them (ActionCommand.TryParseV2).
 */
export interface WorkflowCommand {
  command: string;
  properties: Record<string, string>;
  message: string;
}

const COMMAND = /^::([A-Za-z][A-Za-z0-9-]*)(?: ([^]*?))?::([^]*)$/;

function unescapeData(s: string): string {
  return s.replace(/%0D/gi, '\r').replace(/%0A/gi, '\n').replace(/%25/g, '%');
}

function unescapeProperty(s: string): string {
  return s.replace(/%0D/gi, '\r').replace(/%0A/gi, '\n').replace(/%3A/gi, ':').replace(/%2C/gi, ',').replace(/%25/g, '%');
}

/** The command on one output line, or undefined when the line is plain output. Leading whitespace is allowed, as GitHub allows it. */
export function parseWorkflowCommand(line: string): WorkflowCommand | undefined {
  const m = COMMAND.exec(line.trimStart().replace(/\r$/, ''));
  if (!m) return undefined;
  const properties: Record<string, string> = {};
  if (m[2]) {
    for (const pair of m[2].split(',')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      properties[pair.slice(0, eq).trim()] = unescapeProperty(pair.slice(eq + 1));
    }
  }
  return { command: m[1]!.toLowerCase(), properties, message: unescapeData(m[3]!) };
}

export type AnnotationLevel = 'error' | 'warning' | 'notice';

/** An annotation as a check run takes it (file, lines, columns, title, message). */
export interface Annotation {
  level: AnnotationLevel;
  message: string;
  title?: string;
  file?: string;
  line?: number;
  endLine?: number;
  column?: number;
  endColumn?: number;
}

function positiveInt(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export function toAnnotation(level: AnnotationLevel, cmd: WorkflowCommand): Annotation {
  const p = cmd.properties;
  const a: Annotation = { level, message: cmd.message };
  if (p.title) a.title = p.title;
  if (p.file) a.file = p.file;
  const line = positiveInt(p.line);
  if (line !== undefined) {
    a.line = line;
    a.endLine = positiveInt(p.endLine) ?? line;
  }
  const col = positiveInt(p.col ?? p.column);
  if (col !== undefined) {
    a.column = col;
    a.endColumn = positiveInt(p.endColumn) ?? col;
  }
  return a;
}
