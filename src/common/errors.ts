/**
 * The error catalog: every error Stockade raises on purpose has a stable code, the
 * process exit status the CLI uses for it, and a message that names the received
 * value and the fix.
 */
export const ErrorCodes = {
  USAGE: { exit: 2, http: 400 },
  WORKFLOW_INVALID: { exit: 2, http: 422 },
  CONFIG_INVALID: { exit: 2, http: 400 },
  SPEC_REJECTED: { exit: 2, http: 422 },
  HOST_NOT_READY: { exit: 3, http: 503 },
  LIMITS_NOT_ENFORCED: { exit: 3, http: 503 },
  ENGINE_FAILED: { exit: 4, http: 502 },
  WORKSPACE_UNSAFE: { exit: 4, http: 500 },
  REPOSITORY_ARCHIVE: { exit: 4, http: 422 },
  INTERNAL: { exit: 70, http: 500 },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class StockadeError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'StockadeError';
    this.code = code;
    this.hint = options.hint;
  }

  get exitCode(): number {
    return ErrorCodes[this.code].exit;
  }

  /** One line for a person: code, message, and the fix when there is one. */
  describe(): string {
    return `${this.code}: ${this.message}${this.hint ? `\n  fix: ${this.hint}` : ''}`;
  }
}

export function isStockadeError(e: unknown): e is StockadeError {
  return e instanceof StockadeError;
}
