/**
 * Wiring: config -> adapters -> core -> server. Adapters are chosen once,
 * here; nothing below this file knows which ones run.
 */
import { MemoryExactlyOnceStore } from "./adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "./adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "./adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "./adapters/memory/memory-rate-limiter.js";
import { systemClock, type Clock } from "./domain/clock.js";
import { MintCore } from "./domain/mint-core.js";
import type { ExactlyOnceStore, IdempotencyStore, LedgerStore, Probe, RateLimiter } from "./domain/ports.js";
import type { Config } from "./config.js";
import { SWEEP_BATCH_KEYS } from "./domain/limits.js";
import type { Logger } from "./logger.js";
import { startServer, type RunningServer } from "./transport/grpc/server.js";

/** How often expired keys and idle limiter state are swept, in ms (at most). */
const SWEEP_INTERVAL_MS = 1_000;

export interface Adapters {
  /** The port the core writes money through; `ledger` and `idempotency` are its building blocks (sweeps, tests). */
  readonly store: ExactlyOnceStore;
  readonly ledger: LedgerStore;
  readonly idempotency: IdempotencyStore;
  readonly limiter: RateLimiter;
  readonly probes: Probe[];
  /** What each port runs on, for the start log line. */
  readonly description: Record<string, string>;
  close(): Promise<void>;
}

/** Test-only knobs; production passes none. */
export interface TestHooks {
  /** Stands in for PostgreSQL's now() where key expiry is judged, so a fake clock is the store's clock too. */
  readonly pgNowWallMs?: () => number;
}

export async function openAdapters(config: Config, clock: Clock, logger: Logger, hooks: TestHooks = {}): Promise<Adapters> {
  let store: ExactlyOnceStore;
  let ledger: LedgerStore;
  let idempotency: IdempotencyStore;
  let limiter: RateLimiter;
  const probes: Probe[] = [];
  const closers: (() => Promise<void>)[] = [];
  const description: Record<string, string> = {};

  if (config.store === "memory") {
    ledger = new MemoryLedgerStore({ clock });
    idempotency = new MemoryIdempotencyStore({ ttlMs: config.idempotencyTtlMs, maxKeys: config.idempotencyMaxKeys, clock });
    store = new MemoryExactlyOnceStore(ledger, idempotency, clock);
    description.ledger = "memory";
    description.idempotency = "memory";
  } else {
    const { openPostgresStores } = await import("./adapters/postgres/index.js");
    const pg = await openPostgresStores({
      url: config.store,
      poolSize: config.pgPoolSize,
      statementTimeoutMs: config.pgStatementTimeoutMs,
      connectTimeoutMs: config.pgConnectTimeoutMs,
      idempotencyTtlMs: config.idempotencyTtlMs,
      clock,
      logger,
      ...(hooks.pgNowWallMs === undefined ? {} : { testNowWallMs: hooks.pgNowWallMs }),
    });
    store = pg.store;
    ledger = pg.ledger;
    idempotency = pg.idempotency;
    probes.push(pg.probe);
    closers.push(() => pg.close());
    description.ledger = "postgres";
    description.idempotency = "postgres";
  }

  if (config.redisUrl !== "") {
    const { createRedisRateLimiter } = await import("./adapters/redis/redis-rate-limiter.js");
    const redis = createRedisRateLimiter({
      url: config.redisUrl,
      limit: config.rateLimit,
      windowMs: config.rateWindowMs,
      failOpen: config.rateLimitFailOpen,
      logger,
      clock,
    });
    limiter = redis;
    // Failing open means Redis being down does not stop minting, so it must not stop serving either.
    if (!config.rateLimitFailOpen) probes.push(redis);
    closers.push(() => redis.close());
    description.limiter = config.rateLimitFailOpen ? "redis (fail open)" : "redis";
  } else {
    limiter = new MemoryRateLimiter({ limit: config.rateLimit, windowMs: config.rateWindowMs, clock });
    description.limiter = config.store === "memory" ? "memory" : "memory (per replica: set MINT_REDIS_URL for one global limit)";
  }

  return {
    store,
    ledger,
    idempotency,
    limiter,
    probes,
    description,
    async close() {
      for (const c of closers.reverse()) await c();
    },
  };
}

export interface App {
  readonly server: RunningServer;
  readonly core: MintCore;
  readonly adapters: Adapters;
  /** Drains, stops the server and closes the adapters; true when calls in flight finished within the grace. */
  shutdown(): Promise<boolean>;
}

/** Starts the whole service. `clock` defaults to the system clock (tests pass a fake one). */
export async function startApp(config: Config, logger: Logger, clock: Clock = systemClock, hooks: TestHooks = {}): Promise<App> {
  const adapters = await openAdapters(config, clock, logger, hooks);
  const core = new MintCore({
    store: adapters.store,
    limiter: adapters.limiter,
    clock,
    maxAmountMicros: config.maxAmountMicros,
    maxLockWaiters: config.maxLockWaiters,
    reserveRequired: config.reserveRequired,
  });

  // Expired keys are deleted (not only hidden) and idle limiter state dropped,
  // in bounded batches, so memory stays bounded in an idle process too.
  let sweeping = false;
  const sweep = async (): Promise<void> => {
    if (sweeping) return;
    sweeping = true;
    try {
      while ((await adapters.idempotency.sweepExpired(SWEEP_BATCH_KEYS)) === SWEEP_BATCH_KEYS) {
        await new Promise((r) => setImmediate(r));
      }
      await adapters.limiter.sweepIdle();
    } catch (err) {
      logger.warn({ err }, "sweep failed; will retry");
    } finally {
      sweeping = false;
    }
  };
  const sweepTimer = setInterval(() => void sweep(), Math.min(SWEEP_INTERVAL_MS, config.idempotencyTtlMs, config.rateWindowMs));
  sweepTimer.unref();

  const server = await startServer({
    core,
    clock,
    logger,
    listen: config.listen,
    maxMessageBytes: config.maxMessageBytes,
    shutdownGraceMs: config.shutdownGraceMs,
    maxCallsInFlight: config.maxCallsInFlight,
    maxConcurrentStreams: config.maxConcurrentStreams,
    probes: adapters.probes,
    closeAdapters: async () => {
      clearInterval(sweepTimer);
      await adapters.close();
    },
  });
  return { server, core, adapters, shutdown: () => server.shutdown() };
}
