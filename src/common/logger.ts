import pino, { type Logger, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

/**
 * Paths redacted in every log line. Child loggers bind only fixed keys (delivery,
 * job, step, container), so user data never becomes a key; anything that may carry a
 * secret is listed here.
 */
export const REDACT_PATHS = [
  'env',
  '*.env',
  'secrets',
  '*.secrets',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'privateKey',
  '*.privateKey',
];

export interface LoggerOptions {
  /** @default 'info' */
  level?: string;
  /** Where JSON lines go. @default stderr */
  destination?: DestinationStream;
  /**
   * json: one JSON object per line (for journald, files and log shippers); pretty: readable lines
   * (pino-pretty); auto: pretty on a terminal, JSON otherwise. @default auto (STOCKADE_LOG_FORMAT)
   */
  format?: 'json' | 'pretty' | 'auto';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { app: 'stockade' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? destinationFor(options.format ?? 'auto'),
  );
}

/** A logger that drops everything: for unit tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** stderr as JSON, or readable through pino-pretty (synchronously: nothing is lost when the process exits). */
function destinationFor(format: 'json' | 'pretty' | 'auto'): DestinationStream {
  const readable = format === 'pretty' || (format === 'auto' && !!process.stderr.isTTY);
  if (!readable) return pino.destination({ fd: 2, sync: true });
  return pretty({ destination: 2, sync: true, colorize: !!process.stderr.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,app' });
}
