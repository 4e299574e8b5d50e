/** Structured JSON logs (pino), one object per line on stdout. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "usdc-mint" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/**
 * The part of a logger the adapters use: a pino `Logger` fits it, and tests
 * pass `silentLogger` or a recorder. One type for every adapter.
 */
export interface AdapterLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLogger: AdapterLogger = { info() {}, warn() {}, error() {} };
