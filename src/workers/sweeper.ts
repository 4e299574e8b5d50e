/**
 * The sweeper: a loop beside the calls that keeps memory bounded in an idle
 * process too. Expired idempotency keys are deleted (not only hidden), idle
 * limiter state is dropped, and pending mints past MINT_APPROVAL_TTL are
 * rejected as expired, each in bounded batches that yield between them.
 */
import { SWEEP_BATCH_KEYS } from "../domain/limits.js";
import type { IdempotencyStore, MetricsSink, RateLimiter } from "../domain/ports.js";
import type { Logger } from "../logger.js";

/** Most expired pending mints one sweep round rejects before yielding. */
const SWEEP_BATCH_PENDING = 100;

/** How often expired keys and idle limiter state are swept, in ms (at most). */
export const SWEEP_INTERVAL_MS = 1_000;

export interface SweeperDeps {
  readonly idempotency: IdempotencyStore;
  readonly limiter: RateLimiter;
  /** Rejects up to `limit` expired pending mints; returns how many (MintCore.expirePending). */
  readonly expirePending: (limit: number) => Promise<number>;
  readonly sink: MetricsSink;
  readonly logger: Logger;
  readonly intervalMs: number;
}

/** Starts the sweeper; the returned function stops it. A round never overlaps the one before. */
export function startSweeper(deps: SweeperDeps): () => void {
  let sweeping = false;
  const sweep = async (): Promise<void> => {
    if (sweeping) return;
    sweeping = true;
    try {
      while ((await deps.idempotency.sweepExpired(SWEEP_BATCH_KEYS)) === SWEEP_BATCH_KEYS) {
        await new Promise((r) => setImmediate(r));
      }
      await deps.limiter.sweepIdle();
      // Pending mints past MINT_APPROVAL_TTL are rejected as expired.
      while ((await deps.expirePending(SWEEP_BATCH_PENDING)) === SWEEP_BATCH_PENDING) {
        await new Promise((r) => setImmediate(r));
      }
      deps.sink.sweeperRun(true);
    } catch (err) {
      deps.sink.sweeperRun(false);
      deps.logger.warn({ err }, "sweep failed; will retry");
    } finally {
      sweeping = false;
    }
  };
  const timer = setInterval(() => void sweep(), deps.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
