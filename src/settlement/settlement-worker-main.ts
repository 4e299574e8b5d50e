/**
 * A process that runs only the settlement workers, against the PostgreSQL
 * store (MINT_STORE=postgres://…): the same configuration as the service
 * (src/config.ts reads it). Any number may run; one sender per chain holds
 * the chain's advisory lock, the others stand by. It opens the PostgreSQL
 * store like the service, so a final settlement and its ledger effect (a
 * mint's credit made available or reversed; a failed burn re-credited)
 * commit together whichever process is the sender.
 *
 * Until the mint path writes settlement rows (issue 7's atomic store), this
 * is also how tests and the local demo run settlement in a real process, and
 * where the test-only fault hook (MINT_TEST_FAULTS=true, MINT_TEST_FAULT)
 * kills the process at `after-sign` or `after-broadcast`.
 *
 * MINT_METRICS_LISTEN (as for the service, with the same rules: TLS and the
 * scrape token off loopback, read at start) serves this process's own
 * `GET /metrics`: the settlement series and Node's defaults. It binds first,
 * so an address that cannot be bound stops the start with one line naming
 * the variable (exit 1) and nothing to undo.
 */
import pg from "pg";
import { collectDefaultMetrics, Registry } from "prom-client";
import { ConfigError, loadConfig } from "../config.js";
import { systemClock } from "../domain/clock.js";
import { createLogger, settleLogs } from "../logger.js";
import { openPostgresStores } from "../adapters/postgres/index.js";
import { ReloadableCertificates } from "../auth/tls.js";
import { startConfiguredMetricsServer, type RunningMetricsServer } from "../observability/metrics-server.js";
import { SettlementMetrics } from "../observability/settlement-metrics.js";
import { PgSenderLock } from "./outbox-postgres.js";
import { createSettlementRuntime, openSigner } from "./runtime.js";
import { createFaultHook } from "./worker.js";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
    if (config.settlement === null) throw new ConfigError("MINT_SETTLEMENT_FILE is required to run the settlement worker");
    if (!config.store.startsWith("postgres")) throw new ConfigError("invalid MINT_STORE: the settlement worker process needs postgres://… (the in-memory store settles in-process)");
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`usdc-mint settlement: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const settings = config.settlement;
  if (settings === null) return;

  let metrics: SettlementMetrics | undefined;
  let listener: RunningMetricsServer | undefined;
  if (config.metricsListen !== "") {
    // A registry of this process's own: the settlement series and Node's defaults, none of the service's.
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    metrics = new SettlementMetrics(registry, { chains: settings.chains.map((c) => c.blockchain), signer: settings.signer.kind });
    try {
      // The same rules as the service's listener: TLS with the service's certificate and the scrape token off loopback.
      const tls = config.tlsCert === "" ? undefined : new ReloadableCertificates({ certFile: config.tlsCert, keyFile: config.tlsKey, clientCaFile: "" });
      listener = await startConfiguredMetricsServer(config, { text: () => registry.metrics(), contentType: registry.contentType }, logger, tls);
    } catch (err) {
      const why = err instanceof Error ? ((err as { code?: string }).code ?? err.message) : String(err);
      process.stderr.write(`usdc-mint settlement: MINT_METRICS_LISTEN=${config.metricsListen}: cannot listen (${why})\n`);
      process.exit(1);
    }
  }

  // The store's own outbox: a final state and the ledger's effect (a mint's
  // credit made available or reversed, a failed burn re-credited, issue 16)
  // commit in one transaction, as in the service. Opening the store applies
  // every pending migration.
  const stores = await openPostgresStores({
    url: config.store,
    poolSize: 4,
    statementTimeoutMs: config.pgStatementTimeoutMs,
    connectTimeoutMs: config.pgConnectTimeoutMs,
    idempotencyTtlMs: config.idempotencyTtlMs,
    auditJournal: config.auditJournal,
    clock: systemClock,
    logger,
  });
  const outbox = stores.settlementOutbox();
  const lock = new PgSenderLock(async () => {
    const c = new pg.Client({ connectionString: config.store, connectionTimeoutMillis: config.pgConnectTimeoutMs });
    await c.connect();
    return c;
  });
  const signer = openSigner(settings.signer);
  const faultHook = config.testFault === null ? undefined : createFaultHook({ enabled: config.testFaults, point: config.testFault.point, count: config.testFault.count, action: "exit" });
  const runtime = createSettlementRuntime({
    settings,
    signer,
    outbox,
    lock,
    clock: systemClock,
    ...(faultHook !== undefined ? { faultHook } : {}),
    ...(metrics !== undefined ? { metrics } : {}),
    onError: (blockchain, err) => logger.warn({ blockchain, err: err instanceof Error ? err.message : String(err) }, "settlement pass failed; retrying"),
    onWarning: (blockchain, message) => logger.warn({ blockchain, reason: message }, "settlement waits for proof"),
  });
  metrics?.watch({ backlog: () => outbox.backlog(), wallMs: () => systemClock.wallMs(), senders: () => runtime.senders() });
  runtime.start();
  const metricsAddress = listener?.address ?? null;
  logger.info({ signer: signer.kind, address: signer.address, chains: settings.chains.map((c) => c.blockchain), metricsAddress }, "settlement worker started");
  // As the service does: the start line (with the metrics address) goes out at any level but silent.
  if (!logger.isLevelEnabled("info") && logger.level !== "silent") {
    process.stdout.write(JSON.stringify({ level: "info", msg: "settlement worker started", metricsAddress }) + "\n");
  }

  const stop = (): void => {
    void (async () => {
      await runtime.stop();
      await lock.close();
      await signer.close();
      await stores.close();
      // Last, so the final scrape of a stopping worker still answers.
      await listener?.close();
      logger.info({}, "settlement worker stopped");
      await settleLogs(logger);
      process.exit(0);
    })();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

void main();
