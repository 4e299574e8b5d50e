/**
 * Starts the JetStream relay when MINT_NATS_URL is set: its lock (PostgreSQL
 * advisory lock on the store's database, or in-process for a memory store),
 * its JetStream target, its metrics. The relay runs beside the service:
 * NATS being down never stops a call, only the relay (which retries).
 */
import type { Config } from "../config.js";
import type { Clock } from "../domain/clock.js";
import type { FeedPosition, LedgerEventFeed } from "../domain/ledger-events.js";
import type { Logger } from "../logger.js";
import type { ServiceMetrics } from "../observability/metrics.js";
import { JetStreamTarget, type RelayTarget } from "../adapters/nats/jetstream-target.js";
import { NatsRelay } from "./nats-relay.js";
import { InProcessRelayLock, PgRelayLock, type RelayLock } from "./nats-relay-lock.js";

export interface RunningRelay {
  readonly relay: NatsRelay;
  close(): Promise<void>;
}

/** Test-only: wraps the JetStream target (to lose publishes on purpose). */
export type TargetWrapper = (target: RelayTarget) => RelayTarget;

export async function openNatsRelay(
  config: Config,
  feed: LedgerEventFeed,
  clock: Clock,
  logger: Logger,
  metrics: ServiceMetrics | null,
  wrapTarget?: TargetWrapper,
): Promise<RunningRelay | null> {
  if (config.natsUrl === "") return null;
  let lock: RelayLock;
  let countAfter: ((p: FeedPosition, cap: number) => Promise<number>) | undefined;
  let closeExtra = async (): Promise<void> => undefined;
  if (config.store === "memory") {
    lock = new InProcessRelayLock(config.natsStream);
    // Memory positions are the append counter.
    countAfter = async (p, cap) => Math.min(cap, Math.max(0, Number((await feed.head()).a - p.a)));
  } else {
    const pg = (await import("pg")).default;
    lock = new PgRelayLock(async () => {
      const c = new pg.Client({ connectionString: config.store, connectionTimeoutMillis: config.pgConnectTimeoutMs, application_name: "usdc-mint-service nats relay lock" });
      await c.connect();
      return c;
    }, config.natsStream);
    const pool = new pg.Pool({
      connectionString: config.store,
      max: 1,
      idleTimeoutMillis: 10_000,
      statement_timeout: config.pgStatementTimeoutMs,
      connectionTimeoutMillis: config.pgConnectTimeoutMs,
      application_name: "usdc-mint-service nats relay lag",
    });
    pool.on("error", () => undefined);
    countAfter = async (p, cap) => {
      const res = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM (SELECT 1 FROM ledger_events WHERE (xid, ord) > ($1::bigint, $2::bigint) LIMIT $3) AS t", [p.a.toString(), p.b.toString(), cap]);
      return res.rows[0]?.n ?? 0;
    };
    closeExtra = () => pool.end();
  }
  const jetStream = new JetStreamTarget({
    url: config.natsUrl,
    credsFile: config.natsCredsFile,
    user: config.natsUser,
    passwordFile: config.natsPasswordFile,
    stream: config.natsStream,
    subjectPrefix: config.natsSubjectPrefix,
    maxAgeMs: config.natsMaxAgeMs,
    duplicateWindowMs: config.natsDuplicateWindowMs,
    replicas: config.natsReplicas,
    publishTimeoutMs: config.natsPublishTimeoutMs,
  });
  const target = wrapTarget === undefined ? jetStream : wrapTarget(jetStream);
  let lastWarn = "";
  const relay = new NatsRelay({
    feed,
    target,
    lock,
    clock,
    pollIntervalMs: config.store === "memory" ? 1_000 : config.watchPollIntervalMs,
    windowEvents: config.natsPublishWindow,
    countAfter,
    onError: (err, what) => {
      const msg = err instanceof Error ? err.message : String(err);
      // One line per distinct failure, not one per retry.
      if (msg === lastWarn) return;
      lastWarn = msg;
      logger.warn({ err: msg, what, stream: config.natsStream }, "NATS relay: publishing paused; retrying");
    },
    onRecovered: () => {
      lastWarn = "";
      logger.info({ stream: config.natsStream }, "NATS relay: publishing again");
    },
    onMissed: (from, to) => logger.error({ from: `${from.a}.${from.b}`, to: `${to.a}.${to.b}`, stream: config.natsStream }, "NATS relay: the event feed deleted events before they were published (MINT_WATCH_RETENTION)"),
  });
  if (metrics !== null) {
    const { registerNatsRelayMetrics } = await import("../observability/nats-relay-metrics.js");
    registerNatsRelayMetrics(metrics.registry, () => relay.status());
  }
  relay.start();
  logger.info({ stream: config.natsStream, subjects: `${config.natsSubjectPrefix}.>` }, "NATS relay enabled");
  return {
    relay,
    async close() {
      await relay.stop();
      await closeExtra();
    },
  };
}
