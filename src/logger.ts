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

/**
 * Waits (at most `maxWaitMs`) until the log line being written to stdout has
 * been written or has failed. Call it before `process.exit`: pino flushes its
 * stdout stream synchronously at exit, and sonic-boom's synchronous flush
 * retries a write that fails with EPIPE forever, so a process whose stdout
 * reader has gone (a log pipe closed, `npm start | head`) would hang instead
 * of exiting after SIGTERM. Once the pending write has failed, pino's own
 * EPIPE handler turns the stream into a no-op and the exit is immediate.
 */
export function settleLogs(logger: Logger, maxWaitMs = 1_000): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    | { _writing?: unknown; once?: unknown; off?: unknown }
    | undefined;
  if (stream === undefined || stream._writing !== true || typeof stream.once !== "function" || typeof stream.off !== "function") return Promise.resolve();
  const events = stream as unknown as NodeJS.EventEmitter;
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      events.off("drain", done);
      events.off("error", done);
      resolve();
    };
    const timer = setTimeout(done, maxWaitMs);
    events.once("drain", done);
    events.once("error", done);
  });
}

export const silentLogger: AdapterLogger = { info() {}, warn() {}, error() {} };
