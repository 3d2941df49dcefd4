import { Evaluator, Lexer, Parser, data } from '@actions/expressions';
type ExpressionData = data.ExpressionData;
import type { FunctionDefinition } from '@actions/expressions/funcs/info';
import { truthy } from '@actions/expressions/result';

/** GitHub's limit on the length of one expression. */
export const MAX_EXPRESSION_LENGTH = 21_000;
/** Largest string an interpolation may produce (bounds `format`/`join` blow-ups). */
export const MAX_INTERPOLATED_LENGTH = 1_000_000;

export interface JobStatus {
  /** True while no earlier step (or needed job) has failed. */
  success(): boolean;
  failure(): boolean;
  cancelled(): boolean;
  /** `hashFiles(...)` over the job's workspace; absent where GitHub does not allow it (job-level keys). */
  hashFiles?(patterns: string[]): string;
}

export class ExpressionError extends Error {
  constructor(readonly expression: string, message: string) {
    super(`${message} in expression: ${expression.length > 200 ? `${expression.slice(0, 200)}…` : expression}`);
    this.name = 'ExpressionError';
  }
}

const CONTEXT_NAMES = ['github', 'env', 'vars', 'secrets', 'inputs', 'matrix', 'strategy', 'needs', 'steps', 'job', 'runner'];

function statusFunctions(status: JobStatus | undefined): Map<string, FunctionDefinition> {
  const s = status ?? { success: () => true, failure: () => false, cancelled: () => false };
  const fn = (name: string, f: () => boolean): [string, FunctionDefinition] => [
    name,
    { name, minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(f()) },
  ];
  const hashFiles: FunctionDefinition = {
    name: 'hashFiles',
    minArgs: 1,
    maxArgs: 255,
    call: (...args) => {
      if (!s.hashFiles) throw new Error('hashFiles() is only available in steps');
      return new data.StringData(s.hashFiles(args.map((a) => a.coerceString())));
    },
  };
  return new Map([fn('success', s.success), fn('failure', s.failure), fn('cancelled', s.cancelled), fn('always', () => true), ['hashfiles', hashFiles]]);
}

const STATUS_INFOS = [...['success', 'failure', 'cancelled', 'always'].map((name) => ({ name, minArgs: 0, maxArgs: 0 })), { name: 'hashFiles', minArgs: 1, maxArgs: 255 }];

function toData(v: unknown): ExpressionData {
  return JSON.parse(JSON.stringify(v ?? null), data.reviver) as ExpressionData;
}

function evaluateData(expr: string, contexts: Record<string, unknown>, status?: JobStatus): ExpressionData {
  if (expr.length > MAX_EXPRESSION_LENGTH) throw new ExpressionError(expr, `expression is ${expr.length} characters; the limit is ${MAX_EXPRESSION_LENGTH}`);
  try {
    const lexed = new Lexer(expr).lex();
    const ast = new Parser(lexed.tokens, CONTEXT_NAMES, STATUS_INFOS).parse();
    const ctx = new data.Dictionary(...CONTEXT_NAMES.map((key) => ({ key, value: toData(contexts[key] ?? {}) })));
    return new Evaluator(ast, ctx, statusFunctions(status)).evaluate();
  } catch (e) {
    if (e instanceof ExpressionError) throw e;
    throw new ExpressionError(expr, (e as Error).message);
  }
}

/** Evaluates one expression (without `${{ }}`) to a plain JS value. */
export function evaluateExpression(expr: string, contexts: Record<string, unknown>, status?: JobStatus): unknown {
  return JSON.parse(JSON.stringify(evaluateData(expr, contexts, status), data.replacer)) as unknown;
}

export function hasExpression(text: string): boolean {
  return text.includes('${{');
}

/** Spans of `${{ … }}` in text; a `}}` inside a quoted string does not end the expression. */
function templateSpans(text: string): Array<{ start: number; end: number; expr: string }> {
  const spans: Array<{ start: number; end: number; expr: string }> = [];
  let i = text.indexOf('${{');
  while (i !== -1) {
    let j = i + 3;
    let inString = false;
    for (; j < text.length; j++) {
      const c = text[j];
      if (inString) {
        if (c === "'") {
          if (text[j + 1] === "'") j++;
          else inString = false;
        }
      } else if (c === "'") inString = true;
      else if (c === '}' && text[j + 1] === '}') break;
    }
    if (j >= text.length) throw new ExpressionError(text.slice(i), 'the expression is not closed with }}');
    spans.push({ start: i, end: j + 2, expr: text.slice(i + 3, j) });
    i = text.indexOf('${{', j + 2);
  }
  return spans;
}

/** Replaces every `${{ expr }}` in text by the expression's string value. */
export function interpolate(text: string, contexts: Record<string, unknown>, status?: JobStatus): string {
  if (!hasExpression(text)) return text;
  let out = '';
  let last = 0;
  for (const span of templateSpans(text)) {
    out += text.slice(last, span.start) + evaluateData(span.expr.trim(), contexts, status).coerceString();
    last = span.end;
    if (out.length > MAX_INTERPOLATED_LENGTH) throw new ExpressionError(text, `result exceeds ${MAX_INTERPOLATED_LENGTH} characters`);
  }
  return out + text.slice(last);
}

/** A value that is a single `${{ }}` keeps its type (number, boolean); otherwise it is interpolated text. */
export function evaluateValue(value: unknown, contexts: Record<string, unknown>, status?: JobStatus): unknown {
  if (typeof value !== 'string') return value;
  if (!hasExpression(value)) return value;
  const spans = templateSpans(value);
  if (spans.length === 1 && value.slice(0, spans[0]!.start).trim() === '' && value.slice(spans[0]!.end).trim() === '') {
    return evaluateExpression(spans[0]!.expr.trim(), contexts, status);
  }
  return interpolate(value, contexts, status);
}

const STATUS_CALL = /\b(success|failure|always|cancelled)\s*\(/;

/**
 * An `if:` condition as GitHub evaluates it: `${{ }}` optional; without a status
 * function the condition is `success() && (expr)`.
 */
export function evaluateCondition(condition: string | undefined, contexts: Record<string, unknown>, status: JobStatus): boolean {
  let expr = (condition ?? '').trim();
  const whole = /^\$\{\{([\s\S]*)\}\}$/.exec(expr);
  if (whole) expr = whole[1]!.trim();
  if (expr === '') expr = 'success()';
  else if (!STATUS_CALL.test(expr)) expr = `success() && (${expr})`;
  return truthy(evaluateData(expr, contexts, status));
}
