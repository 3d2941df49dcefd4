import { Evaluator, Lexer, Parser, data } from '@actions/expressions';
type ExpressionData = data.ExpressionData;
import type { FunctionDefinition } from '@actions/expressions/funcs/info';
import { truthy } from '@actions/expressions/result';
import { wellKnownFunctions } from '@actions/expressions/funcs';

/** GitHub's limit on the length of one expression. */
export const MAX_EXPRESSION_LENGTH = 21_000;
/** Largest string an interpolation may produce (bounds `format`/`join` blow-ups). */
export const MAX_INTERPOLATED_LENGTH = 1_000_000;
/**
 * The memory budget of one evaluation, in characters of function results (as GitHub's runner
 * evaluates under a memory counter): every result of format(), join(), toJSON() and the rest is
 * counted, and a call whose result would pass the budget fails before it is built.
 */
export const EXPRESSION_MEMORY_BUDGET = 4_000_000;

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

// `jobs` exists only in a reusable workflow's on.workflow_call.outputs; elsewhere it is empty.
const CONTEXT_NAMES = ['github', 'env', 'vars', 'secrets', 'inputs', 'matrix', 'strategy', 'needs', 'steps', 'job', 'jobs', 'runner'];

/** Characters a value costs (strings by length, the rest by their JSON form, capped walk). */
function sizeOf(d: ExpressionData): number {
  if (d instanceof data.StringData) return d.value.length;
  if (d instanceof data.Array || d instanceof data.Dictionary) return JSON.stringify(d, data.replacer)?.length ?? 0;
  return 8;
}

/** The size a call would produce, computed before it is built: format's placeholders and join's items. */
function predictedSize(name: string, args: ExpressionData[]): number {
  if (name === 'format') {
    const fs = args[0]?.coerceString() ?? '';
    let n = fs.length;
    for (const m of fs.matchAll(/\{(\d+)(?::[^}]*)?\}/g)) {
      const a = args[1 + Number(m[1])];
      if (a) n += a instanceof data.StringData ? a.value.length : a.coerceString().length;
    }
    return n;
  }
  if (name === 'join') {
    const sep = args[1] ? args[1].coerceString().length : 1;
    const a = args[0];
    if (a instanceof data.Array) return a.values().reduce((t, v) => t + sizeOf(v) + sep, 0);
    return a ? sizeOf(a) : 0;
  }
  return 0;
}

export class MemoryBudgetError extends Error {}

/** GitHub's functions, each counted against one evaluation's memory budget. */
function budgetedFunctions(budget: { left: number }): Array<[string, FunctionDefinition]> {
  return Object.entries(wellKnownFunctions).map(([name, f]) => [
    name,
    {
      ...f,
      call: (...args: ExpressionData[]) => {
        const predicted = predictedSize(name, args);
        if (predicted > budget.left) throw new MemoryBudgetError(`${name}() would exceed the expression memory budget of ${EXPRESSION_MEMORY_BUDGET} characters`);
        const r = f.call(...args);
        budget.left -= sizeOf(r);
        if (budget.left < 0) throw new MemoryBudgetError(`${name}() exceeded the expression memory budget of ${EXPRESSION_MEMORY_BUDGET} characters`);
        return r;
      },
    },
  ]);
}

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
    const functions = statusFunctions(status);
    for (const [name, f] of budgetedFunctions({ left: EXPRESSION_MEMORY_BUDGET })) functions.set(name, f);
    return new Evaluator(ast, ctx, functions).evaluate();
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
