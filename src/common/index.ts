export { StockadeError, ErrorCodes, isStockadeError, type ErrorCode } from './errors';
export { createLogger, silentLogger, REDACT_PATHS, type Logger, type LoggerOptions } from './logger';
export { sha256Hex } from './hash';
export { parseSize, parseDuration } from './parse-size';
export { readFileBeneath, readBytesBeneath, listDirBeneath, pathComponents, type BeneathRead, type BeneathEntry } from './read-beneath';
export { escapeHtml } from './escape-html';
export type { Waiting, Running } from './scheduling';
export { Phases } from './phases';
