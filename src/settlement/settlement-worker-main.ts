/**
 * A process that runs only the settlement workers, against the PostgreSQL
 * store (MINT_STORE=postgres://…): the same configuration as the service
 * (src/config.ts reads it). Any number may run; one sender per chain holds
 * the chain's advisory lock, the others stand by.
 *
 * Until the mint path writes settlement rows (issue 7's atomic store), this
 * is also how tests and the local demo run settlement in a real process, and
 * where the test-only fault hook (MINT_TEST_FAULTS=true, MINT_TEST_FAULT)
 * kills the process at `after-sign` or `after-broadcast`.
 */
import pg from "pg";
import { ConfigError, loadConfig } from "../config.js";
import { systemClock } from "../domain/clock.js";
import { createLogger } from "../logger.js";
import { runMigrations } from "../adapters/postgres/migrations.js";
import { PgSenderLock, PostgresSettlementOutbox, SETTLEMENT_MIGRATIONS } from "./outbox-postgres.js";
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

  const migrator = new pg.Client({ connectionString: config.store });
  await migrator.connect();
  try {
    await runMigrations(migrator, logger, SETTLEMENT_MIGRATIONS);
  } finally {
    await migrator.end();
  }
  const pool = new pg.Pool({ connectionString: config.store, max: 4, connectionTimeoutMillis: config.pgConnectTimeoutMs, statement_timeout: config.pgStatementTimeoutMs });
  pool.on("error", (err) => logger.warn({ err }, "idle PostgreSQL connection failed"));
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
    outbox: new PostgresSettlementOutbox(pool),
    lock,
    clock: systemClock,
    ...(faultHook !== undefined ? { faultHook } : {}),
    onError: (blockchain, err) => logger.warn({ blockchain, err: err instanceof Error ? err.message : String(err) }, "settlement pass failed; retrying"),
  });
  runtime.start();
  logger.info({ signer: signer.kind, address: signer.address, chains: settings.chains.map((c) => c.blockchain) }, "settlement worker started");

  const stop = (): void => {
    void (async () => {
      await runtime.stop();
      await lock.close();
      await signer.close();
      await pool.end();
      logger.info({}, "settlement worker stopped");
      logger.flush();
      process.exit(0);
    })();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

void main();
