/**
 * Wiring: config -> adapters -> core -> server. Adapters are chosen once,
 * here; nothing below this file knows which ones run.
 */
import { MemoryExactlyOnceStore } from "./adapters/memory/memory-exactly-once-store.js";
import type { RunningRelay } from "./workers/nats-relay-wiring.js";
import { MemoryIdempotencyStore } from "./adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "./adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "./adapters/memory/memory-rate-limiter.js";
import { systemClock, type Clock } from "./domain/clock.js";
import { MintCore } from "./domain/mint-core.js";
import { noMetrics, type ApprovalStore, type ExactlyOnceStore, type IdempotencyStore, type LedgerStore, type MetricsSink, type Probe, type RateLimiter } from "./domain/ports.js";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { MintServiceService } from "../gen/usdc/mint/v1/mint.js";
import { startConfiguredMetricsServer, type RunningMetricsServer } from "./observability/metrics-server.js";
import { ServiceMetrics, type MetricsSources } from "./observability/metrics.js";
import { grpcMethodsOf } from "./transport/grpc/metrics-link.js";
import { startServer, type RunningServer } from "./transport/grpc/server.js";
import { Security, type ReloadReport } from "./auth/security.js";
import type { SettlementReads, SettlementRuntime } from "./settlement-runtime.js";
import { startSweeper, SWEEP_INTERVAL_MS } from "./workers/sweeper.js";
import type { LedgerEventFeed } from "./domain/ledger-events.js";
import { LedgerWatchHub } from "./domain/ledger-watch-hub.js";


export interface Adapters {
  /** The port the core writes money through; `ledger` and `idempotency` are its building blocks (sweeps, tests). */
  readonly store: ExactlyOnceStore & ApprovalStore;
  readonly ledger: LedgerStore;
  readonly idempotency: IdempotencyStore;
  readonly limiter: RateLimiter;
  readonly probes: Probe[];
  /** What each port runs on, for the start log line. */
  readonly description: Record<string, string>;
  /** Gauges of adapter state that metrics read at scrape time (pool, limiter). */
  readonly metricsSources: Pick<MetricsSources, "pgPool" | "limiterAccounts">;
  /** The ledger's event feed (WatchLedger). */
  readonly ledgerEvents: LedgerEventFeed;
  /** PostgreSQL only: the settlement outbox on the store's database. */
  readonly settlementOutbox?: () => import("./adapters/postgres/settlement-outbox.js").PostgresSettlementOutbox;
  close(): Promise<void>;
}

/** The health name of the JetStream relay: NOT_SERVING while it cannot reach JetStream (a standby is SERVING). */
export const NATS_RELAY_HEALTH_NAME = "usdc.mint.v1.NatsRelay";

/** Test-only knobs; production passes none. */
export interface TestHooks {
  /** Stands in for PostgreSQL's now() where key expiry is judged, so a fake clock is the store's clock too. */
  readonly pgNowWallMs?: () => number;
  /** Wraps the JetStream relay's target (to lose publishes on purpose). */
  readonly natsWrapTarget?: import("./workers/nats-relay-wiring.js").TargetWrapper;
}

export async function openAdapters(config: Config, clock: Clock, logger: Logger, hooks: TestHooks = {}, metrics: MetricsSink = noMetrics): Promise<Adapters> {
  let store: ExactlyOnceStore & ApprovalStore;
  let ledger: LedgerStore;
  let idempotency: IdempotencyStore;
  let limiter: RateLimiter;
  const probes: Probe[] = [];
  const closers: (() => Promise<void>)[] = [];
  const description: Record<string, string> = {};
  const metricsSources: { -readonly [K in keyof Adapters["metricsSources"]]: Adapters["metricsSources"][K] } = {};
  let settlementOutbox: Adapters["settlementOutbox"];
  let ledgerEvents: LedgerEventFeed;

  if (config.store === "memory") {
    const memoryLedger = new MemoryLedgerStore({ clock });
    ledger = memoryLedger;
    idempotency = new MemoryIdempotencyStore({ ttlMs: config.idempotencyTtlMs, maxKeys: config.idempotencyMaxKeys, clock });
    const memoryStore = new MemoryExactlyOnceStore(memoryLedger, idempotency, clock, config.auditJournal ? {} : { journal: null });
    store = memoryStore;
    ledgerEvents = memoryStore.events;
    description.ledger = "memory";
    description.idempotency = "memory";
    description.auditJournal = config.auditJournal ? "memory" : "off";
  } else {
    const { openPostgresStores } = await import("./adapters/postgres/index.js");
    const pg = await openPostgresStores({
      url: config.store,
      poolSize: config.pgPoolSize,
      statementTimeoutMs: config.pgStatementTimeoutMs,
      connectTimeoutMs: config.pgConnectTimeoutMs,
      idempotencyTtlMs: config.idempotencyTtlMs,
      auditJournal: config.auditJournal,
      groupCommit: { maxItems: config.pgGroupMax, waitMs: config.pgGroupWaitMs, groupsInFlight: Math.min(config.pgGroupsInFlight, config.pgPoolSize) },
      clock,
      logger,
      ...(hooks.pgNowWallMs === undefined ? {} : { testNowWallMs: hooks.pgNowWallMs }),
      metrics,
    });
    metricsSources.pgPool = () => pg.poolStats();
    store = pg.store;
    ledger = pg.ledger;
    idempotency = pg.idempotency;
    probes.push(pg.probe);
    settlementOutbox = () => pg.settlementOutbox();
    closers.push(() => pg.close());
    const { PostgresLedgerEventFeed } = await import("./adapters/postgres/ledger-events.js");
    const feed = await PostgresLedgerEventFeed.connect({ url: config.store, statementTimeoutMs: config.pgStatementTimeoutMs, connectTimeoutMs: config.pgConnectTimeoutMs });
    ledgerEvents = feed;
    closers.push(() => feed.close());
    description.ledger = "postgres";
    description.idempotency = "postgres";
    description.auditJournal = config.auditJournal ? "postgres (sealed by one replica at a time)" : "off";
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
      metrics,
    });
    limiter = redis;
    // Failing open means Redis being down does not stop minting, so it must not stop serving either.
    if (!config.rateLimitFailOpen) probes.push(redis);
    closers.push(() => redis.close());
    description.limiter = config.rateLimitFailOpen ? "redis (fail open)" : "redis";
  } else {
    const memoryLimiter = new MemoryRateLimiter({ limit: config.rateLimit, windowMs: config.rateWindowMs, clock });
    metricsSources.limiterAccounts = () => memoryLimiter.accountCount();
    limiter = memoryLimiter;
    description.limiter = config.store === "memory" ? "memory" : "memory (per replica: set MINT_REDIS_URL for one global limit)";
  }

  return {
    store,
    ledger,
    idempotency,
    limiter,
    probes,
    description,
    metricsSources,
    ledgerEvents,
    ...(settlementOutbox !== undefined ? { settlementOutbox } : {}),
    async close() {
      for (const c of closers.reverse()) await c();
    },
  };
}

/**
 * The settlement runtime over the store's outbox, when MINT_SETTLEMENT_FILE is set.
 * With metrics on, its series go on the service's registry (one /metrics for both).
 */
async function openSettlement(
  config: Config,
  adapters: Adapters,
  clock: Clock,
  logger: Logger,
  metrics: ServiceMetrics | null,
): Promise<{ runtime: SettlementRuntime; reads: SettlementReads; close(): Promise<void> } | null> {
  const settings = config.settlement;
  if (settings === null) return null;
  const { openSigner, createSettlementRuntime, settlementReads, chainsThatCannotBurn } = await import("./settlement-runtime.js");
  const { createFaultHook } = await import("./workers/settlement-sender.js");
  let outbox;
  let lock;
  let closeLock = async (): Promise<void> => undefined;
  if (adapters.store instanceof MemoryExactlyOnceStore) {
    const { MemorySettlementOutbox, InProcessSenderLock } = await import("./adapters/memory/settlement-outbox.js");
    outbox = new MemorySettlementOutbox(adapters.store.settlementEffects(), adapters.store.settlementObserver());
    adapters.store.attachOutbox(outbox);
    lock = new InProcessSenderLock(new Map());
  } else {
    if (adapters.settlementOutbox === undefined) throw new Error("invariant violated: a PostgreSQL store without a settlement outbox");
    outbox = adapters.settlementOutbox();
    const { PgSenderLock } = await import("./adapters/postgres/settlement-outbox.js");
    const pg = (await import("pg")).default;
    const pgLock = new PgSenderLock(async () => {
      const c = new pg.Client({ connectionString: config.store, connectionTimeoutMillis: config.pgConnectTimeoutMs });
      await c.connect();
      return c;
    });
    lock = pgLock;
    closeLock = () => pgLock.close();
  }
  const signer = openSigner(settings.signer);
  const faultHook = config.testFault === null ? undefined : createFaultHook({ enabled: config.testFaults, point: config.testFault.point, count: config.testFault.count, action: "exit" });
  let settlementMetrics;
  if (metrics !== null) {
    const { SettlementMetrics } = await import("./observability/settlement-metrics.js");
    settlementMetrics = new SettlementMetrics(metrics.registry, { chains: settings.chains.map((c) => c.blockchain), signer: settings.signer.kind });
  }
  const runtime = createSettlementRuntime({
    settings,
    signer,
    outbox,
    lock,
    clock,
    ...(faultHook !== undefined ? { faultHook } : {}),
    ...(settlementMetrics !== undefined ? { metrics: settlementMetrics } : {}),
    onError: (blockchain, err) => logger.warn({ blockchain, err: err instanceof Error ? err.message : String(err) }, "settlement pass failed; retrying"),
    onNotice: (blockchain, message) => logger.warn({ blockchain, notice: message }, "settlement waits or was refused"),
    onWarning: (blockchain, message) => logger.warn({ blockchain, reason: message }, "settlement waits for proof"),
  });
  const settlingOutbox = outbox;
  settlementMetrics?.watch({ backlog: () => settlingOutbox.backlog(), wallMs: () => clock.wallMs(), senders: () => runtime.senders() });
  logger.info({ signer: signer.kind, address: signer.address, chains: settings.chains.map((c) => c.blockchain) }, "settlement enabled");
  const cannotBurn = chainsThatCannotBurn(settings, signer.address);
  if (cannotBurn.length > 0) {
    logger.warn({ chains: cannotBurn, signer: signer.address }, "the treasury is not the signer's address: redemptions on these chains will revert on-chain and be credited back");
  }
  return {
    runtime,
    reads: settlementReads(runtime, outbox),
    async close() {
      await runtime.stop();
      await closeLock();
      await signer.close();
    },
  };
}

export interface App {
  readonly server: RunningServer;
  /** Callers, roles and certificates; `reload()` re-reads them. */
  readonly security: Security;
  /** Re-reads the auth file and the TLS files (SIGHUP); each part that fails keeps its previous version. */
  reload(): ReloadReport;
  readonly core: MintCore;
  readonly adapters: Adapters;
  /** The metrics: null when MINT_METRICS_LISTEN is empty (then nothing records). */
  readonly metrics: ServiceMetrics | null;
  /** host:port the metrics listener bound; null when off. */
  readonly metricsAddress: string | null;
  /** The settlement workers, when MINT_SETTLEMENT_FILE is set. */
  readonly settlement?: SettlementRuntime;
  /** The replica's WatchLedger hub. */
  readonly watch: LedgerWatchHub;
  /** The JetStream relay, when MINT_NATS_URL is set (it publishes only while it holds the stream's lock). */
  readonly natsRelay: import("./workers/nats-relay.js").NatsRelay | null;
  /** Drains, stops the server and closes the adapters; true when calls in flight finished within the grace. */
  shutdown(): Promise<boolean>;
}

/**
 * Starts the metrics listener when MINT_METRICS_LISTEN is set. It binds
 * first, before any store is opened, so that an address that cannot be bound
 * stops the start with one line naming the variable and nothing to undo.
 */
async function startMetrics(config: Config, logger: Logger, security: Security): Promise<{ metrics: ServiceMetrics; listener: RunningMetricsServer } | null> {
  if (config.metricsListen === "") return null;
  const metrics = new ServiceMetrics({ grpcMethods: grpcMethodsOf(MintServiceService) });
  try {
    // HTTPS with the gRPC port's certificate (rotated with it on SIGHUP).
    return { metrics, listener: await startConfiguredMetricsServer(config, metrics, logger, security.certificates) };
  } catch (err: unknown) {
    const why = err instanceof Error ? ((err as { code?: string }).code ?? err.message) : String(err);
    throw new Error(`MINT_METRICS_LISTEN=${config.metricsListen}: cannot listen (${why})`, { cause: err });
  }
}

/** Starts the whole service. `clock` defaults to the system clock (tests pass a fake one). */
export async function startApp(config: Config, logger: Logger, clock: Clock = systemClock, hooks: TestHooks = {}): Promise<App> {
  // First, before any adapter opens: an unusable auth file or certificate stops the start (one line).
  const security = new Security(config);
  const observed = await startMetrics(config, logger, security);
  const metrics = observed?.metrics ?? null;
  const sink: MetricsSink = metrics ?? noMetrics;
  let adapters: Adapters;
  try {
    adapters = await openAdapters(config, clock, logger, hooks, sink);
  } catch (err: unknown) {
    await observed?.listener.close();
    throw err;
  }
  const settlement = await openSettlement(config, adapters, clock, logger, metrics);
  const core = new MintCore({
    ...(settlement !== null ? { settlement: settlement.runtime } : {}),
    store: adapters.store,
    limiter: adapters.limiter,
    clock,
    maxAmountMicros: config.maxAmountMicros,
    maxLockWaiters: config.maxLockWaiters,
    reserveRequired: config.reserveRequired,
    metrics: sink,
    approvals: {
      store: adapters.store,
      thresholdMicros: config.mintApprovalThresholdMicros,
      required: config.mintApprovalsRequired,
      ttlMs: config.mintApprovalTtlMs,
      allowances: config.mintAllowances,
      // Without an auth file every caller is the all-roles development principal.
      selfAllowance: config.authFile === "",
    },
  });

  const stopSweeper = startSweeper({
    idempotency: adapters.idempotency,
    limiter: adapters.limiter,
    expirePending: (limit) => core.expirePending(limit),
    sink,
    logger,
    intervalMs: Math.min(SWEEP_INTERVAL_MS, config.idempotencyTtlMs, config.rateWindowMs),
  });

  // One hub per replica feeds every WatchLedger stream of this replica.
  const watch = new LedgerWatchHub({
    feed: adapters.ledgerEvents,
    clock,
    pollIntervalMs: config.watchPollIntervalMs,
    bufferEvents: config.watchBufferEvents,
    maxWatchers: config.watchMaxWatchers,
    retentionMs: config.watchRetentionMs,
    onError: (err, what) => logger.warn({ err: err instanceof Error ? err.message : String(err), what }, "ledger event feed failed; retrying"),
  });
  let server: RunningServer;
  let natsRelay: RunningRelay | null = null;
  try {
    await watch.start();
    if (config.natsUrl !== "") {
      const { openNatsRelay } = await import("./workers/nats-relay-wiring.js");
      natsRelay = await openNatsRelay(config, adapters.ledgerEvents, clock, logger, metrics, hooks.natsWrapTarget);
    }
    server = await startServer({
      watch,
      ...(metrics === null ? {} : { metrics }),
      core,
      clock,
      logger,
      listen: config.listen,
      maxMessageBytes: config.maxMessageBytes,
      batch: { maxMessageBytes: config.batchMaxMessageBytes, maxItems: config.batchMaxItems },
      shutdownGraceMs: config.shutdownGraceMs,
      maxCallsInFlight: config.maxCallsInFlight,
      maxConcurrentStreams: config.maxConcurrentStreams,
      security,
      devPrincipalHeader: config.devPrincipalHeader,
      reflection: config.reflection,
      probes: adapters.probes,
      // Settlement is not a probe: a chain outage never stops reads and transfers.
      ...(settlement !== null ? { settlement: settlement.reads, settlementHealth: () => settlement.runtime.status() } : {}),
      // The JetStream relay: its own health name; NATS down never makes the service NOT_SERVING.
      ...(natsRelay !== null ? { workerHealth: () => [{ name: NATS_RELAY_HEALTH_NAME, healthy: (natsRelay as RunningRelay).relay.status().state !== "unavailable" }] } : {}),
      closeAdapters: async () => {
        stopSweeper();
        watch.shutdown();
        await watch.idle();
        await natsRelay?.close();
        await settlement?.close();
        await adapters.close();
        // Last, so the final scrape of a draining replica still answers.
        await observed?.listener.close();
      },
    });
  } catch (err: unknown) {
    watch.shutdown();
    await natsRelay?.close();
    await settlement?.close();
    await observed?.listener.close();
    throw err;
  }
  // The worker starts once the server listens (a fault hook may stop the process at once).
  settlement?.runtime.start();
  metrics?.watch({
    ...adapters.metricsSources,
    lockWaiters: () => core.locks.waiting(),
    callsInFlight: () => server.edge.callsInFlight,
    // The estimate where counting would grow with the keys (PostgreSQL): a scrape's cost stays bounded.
    idempotencyKeys: () => (adapters.idempotency.estimatedSize?.() ?? adapters.idempotency.size()),
  });
  return { server, core, adapters, watch, natsRelay: natsRelay?.relay ?? null, metrics, metricsAddress: observed?.listener.address ?? null, security, reload: () => security.reload(), ...(settlement !== null ? { settlement: settlement.runtime } : {}), shutdown: () => server.shutdown() };
}
