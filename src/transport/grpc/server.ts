/**
 * Builds and runs the gRPC server: MintService, grpc.health.v1 and server
 * reflection (v1 and v1alpha, from the descriptor set `buf build` writes).
 * Shutdown goes in order: health NOT_SERVING, refuse new calls, let calls in
 * flight finish within the grace period, then force, then close the adapters.
 */
import * as grpc from "@grpc/grpc-js";
import { MintServiceService } from "../../../gen/usdc/mint/v1/mint.js";
import type { Clock } from "../../domain/clock.js";
import type { MintCore } from "../../domain/mint-core.js";
import type { Probe } from "../../domain/ports.js";
import type { Logger } from "../../logger.js";
import type { ServiceMetrics } from "../../observability/metrics.js";
import type { Security } from "../../auth/security.js";
import { reloadableServerCredentials } from "../../auth/tls.js";
import { identifyCall } from "./auth-check.js";
import { Edge } from "./edge.js";
import { HealthService, OVERALL_SERVICE } from "./health.js";
import { mintServiceHandlers } from "./mint-handlers.js";
import { batchHandlers } from "./batch-handlers.js";
import { CappedServer } from "./message-caps.js";
import { watchLedgerHandler } from "./watch-handler.js";
import type { LedgerWatchHub } from "../../domain/ledger-watch-hub.js";
import type { SettlementReads } from "../../domain/settlement/reads.js";
import { addReflection, loadDescriptorSet, REFLECTION_SERVICES, type ReflectionHandle } from "./reflection.js";
import { failureToStatus } from "./status.js";

export const MINT_SERVICE_NAME = "usdc.mint.v1.MintService";
/** The batch RPCs' paths: they take MINT_BATCH_MAX_MESSAGE_BYTES, every other method MINT_MAX_MESSAGE_BYTES. */
const BATCH_PATHS: ReadonlySet<string> = new Set([`/${MINT_SERVICE_NAME}/BatchMint`, `/${MINT_SERVICE_NAME}/BatchTransfer`]);
const DEFAULT_BATCH_MAX_MESSAGE_BYTES = 1024 * 1024;
const DEFAULT_BATCH_MAX_ITEMS = 1000;
const HEALTH_SERVICE_NAME = "grpc.health.v1.Health";

/**
 * The health name of one chain's settlement, reported apart from
 * the server's own status so a chain outage never stops reads and transfers
 * (a load balancer watching "" or MintService keeps sending traffic).
 */
export function settlementHealthName(blockchain: string): string {
  return `usdc.mint.v1.Settlement.${blockchain}`;
}

export interface ServerOptions {
  readonly core: MintCore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** host:port; port 0 picks a free one. */
  readonly listen: string;
  /** Largest request message of every method but the batch ones, in bytes (checked per method: message-caps.ts). */
  readonly maxMessageBytes: number;
  /** BatchMint / BatchTransfer: their own message cap and most items (defaults: 1 MiB, 1000). */
  readonly batch?: { readonly maxMessageBytes: number; readonly maxItems: number };
  /** How long calls in flight may run after shutdown begins. */
  readonly shutdownGraceMs: number;
  /** Backing stores to watch; health is NOT_SERVING while any is unhealthy. */
  readonly probes?: readonly Probe[];
  /** Settlement reads for Mint.settlement and ReconcileChain; absent without settlement. */
  readonly settlement?: SettlementReads;
  /** Per chain, whether its settlement worker is healthy (its own health names; never the server's status). */
  readonly settlementHealth?: () => readonly { readonly blockchain: string; readonly healthy: boolean }[];
  /** Other workers beside the service (the JetStream relay): each its own health name, never the server's status. */
  readonly workerHealth?: () => readonly { readonly name: string; readonly healthy: boolean }[];
  /** How often probes run, in ms (default 2000). */
  readonly probeIntervalMs?: number;
  /** Most calls in flight at once; more are refused UNAVAILABLE (OVERLOADED). */
  readonly maxCallsInFlight: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
  readonly maxConcurrentStreams: number;
  /** Counts and times MintService calls (the edge's metrics link); absent when metrics are off. */
  readonly metrics?: ServiceMetrics;
  /** Authentication, roles and the TLS certificates. */
  readonly security: Security;
  /** Who may use server reflection. */
  readonly reflection: "public" | "authenticated" | "off";
  /** Honour the x-mint-dev-principal header (a development stand-in for authentication; loopback only). */
  readonly devPrincipalHeader?: boolean;
  /** The replica's WatchLedger hub; absent: WatchLedger is UNIMPLEMENTED. */
  readonly watch?: LedgerWatchHub;
  /** Closes the adapters, after the server has stopped. */
  readonly closeAdapters?: () => Promise<void>;
}

export interface RunningServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** host:port actually bound. */
  readonly address: string;
  readonly health: HealthService;
  readonly edge: Edge;
  /**
   * Drains and stops: NOT_SERVING, new calls UNAVAILABLE, calls in flight get
   * the grace period, then the server is forced down and adapters closed.
   * Resolves with whether the drain finished within the grace period.
   */
  shutdown(): Promise<boolean>;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const batch = opts.batch ?? { maxMessageBytes: DEFAULT_BATCH_MAX_MESSAGE_BYTES, maxItems: DEFAULT_BATCH_MAX_ITEMS };
  const server = new CappedServer((path) => (BATCH_PATHS.has(path) ? batch.maxMessageBytes : opts.maxMessageBytes), {
    // The transport's cap is the largest method cap; each method checks its own (message-caps.ts).
    "grpc.max_receive_message_length": Math.max(opts.maxMessageBytes, batch.maxMessageBytes),
    "grpc.max_send_message_length": 16 * 1024 * 1024,
    // Idle callers are told to go away rather than held forever.
    "grpc.max_connection_idle_ms": 5 * 60_000,
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    // A connection may not open more streams than this at once; the rest of
    // the bound on work is the edge's cap on calls in flight.
    "grpc.max_concurrent_streams": opts.maxConcurrentStreams,
    // grpc.enable_channelz stays on although no channelz service is served:
    // grpc-js (1.14) tracks sessions for forceShutdown only through channelz,
    // so with it off a forced shutdown leaves stuck calls' connections open.
  });
  const edge = new Edge({
    clock: opts.clock,
    logger: opts.logger,
    maxCallsInFlight: opts.maxCallsInFlight,
    security: opts.security,
    devPrincipalHeader: opts.devPrincipalHeader === true,
    ...(opts.metrics === undefined ? {} : { metrics: { sink: opts.metrics, service: MINT_SERVICE_NAME } }),
  });
  const settlementHealth = opts.settlementHealth;
  const settlementNames = (settlementHealth?.() ?? []).map((s) => settlementHealthName(s.blockchain));
  const workerHealth = opts.workerHealth;
  const workerNames = (workerHealth?.() ?? []).map((w) => w.name);
  const sideNames = [...settlementNames, ...workerNames];
  const health = new HealthService([MINT_SERVICE_NAME, ...sideNames]);
  const batchOptions = { maxItems: batch.maxItems, ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }), ...(opts.settlement === undefined ? {} : { settlement: opts.settlement }) };
  server.addService(MintServiceService, { ...mintServiceHandlers(opts.core, edge, opts.settlement), ...batchHandlers(opts.core, edge, batchOptions), watchLedger: watchLedgerHandler(opts.watch, opts.security, opts.logger) });
  health.addTo(server);
  // Reflection describes the API, not money; "authenticated" still keeps it from strangers.
  const security = opts.security;
  const reflection: ReflectionHandle =
    opts.reflection === "off"
      ? { shutdown: () => {} }
      : addReflection(server, loadDescriptorSet(), [MINT_SERVICE_NAME, HEALTH_SERVICE_NAME, ...REFLECTION_SERVICES], {
          onInternalError: (err) => opts.logger.error({ err }, "reflection failed"),
          admit:
            opts.reflection === "public"
              ? undefined
              : (call) => {
                  const who = identifyCall(security, call.metadata, call);
                  return who.ok ? undefined : failureToStatus({ code: "UNAUTHENTICATED", rpc: "ServerReflectionInfo", reason: who.reason, message: who.message });
                },
        });

  // Plaintext, or TLS whose certificates a SIGHUP can replace (src/auth/tls.ts).
  const credentials = security.certificates === undefined ? grpc.ServerCredentials.createInsecure() : reloadableServerCredentials(security.certificates);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(opts.listen, credentials, (err, p) => (err ? reject(err) : resolve(p)));
  });
  const host = opts.listen.slice(0, opts.listen.lastIndexOf(":"));
  const address = `${host}:${port}`;

  // Health follows the probes: a store that cannot be reached makes the
  // replica NOT_SERVING until it comes back by itself.
  let probeTimer: NodeJS.Timeout | undefined;
  const probes = opts.probes ?? [];
  const runProbes = async (): Promise<void> => {
    const results = await Promise.all(probes.map((p) => p.healthy().catch(() => false)));
    const healthy = results.every(Boolean);
    const status = healthy ? "SERVING" : "NOT_SERVING";
    if (sideNames.length === 0) {
      health.setAll(status);
      return;
    }
    health.setStatus(OVERALL_SERVICE, status);
    health.setStatus(MINT_SERVICE_NAME, status);
    for (const s of settlementHealth?.() ?? []) health.setStatus(settlementHealthName(s.blockchain), s.healthy ? "SERVING" : "NOT_SERVING");
    for (const w of workerHealth?.() ?? []) health.setStatus(w.name, w.healthy ? "SERVING" : "NOT_SERVING");
  };
  if (probes.length > 0 || sideNames.length > 0) {
    await runProbes();
    probeTimer = setInterval(() => void runProbes(), opts.probeIntervalMs ?? 2000);
    probeTimer.unref();
  } else {
    health.setAll("SERVING");
  }

  let stopping: Promise<boolean> | undefined;
  const shutdown = (): Promise<boolean> => {
    stopping ??= (async () => {
      if (probeTimer !== undefined) clearInterval(probeTimer);
      health.setAll("NOT_SERVING");
      edge.startDraining();
      // Streams never end by themselves: each ends now, with its resume cursor.
      opts.watch?.shutdown();
      health.shutdown();
      reflection.shutdown();
      // Drain first, with the listener still open: calls arriving now get a
      // rich UNAVAILABLE (SHUTTING_DOWN) from the edge and retry elsewhere,
      // instead of a bare connection refusal. Then close the transport.
      const graceEndsAt = Date.now() + opts.shutdownGraceMs;
      let graceTimer: NodeJS.Timeout | undefined;
      const idle = await Promise.race([
        edge.idle().then(() => true),
        new Promise<boolean>((resolve) => {
          graceTimer = setTimeout(() => resolve(false), opts.shutdownGraceMs);
        }),
      ]);
      clearTimeout(graceTimer);
      const drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(
          () => {
            server.forceShutdown();
            resolve(false);
          },
          Math.max(0, graceEndsAt - Date.now()),
        );
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve(idle);
        });
      });
      // tryShutdown can report done while our handlers still run (a client
      // that went away); let them finish before the stores close under them.
      await Promise.race([edge.idle(), new Promise((r) => setTimeout(r, Math.min(1000, opts.shutdownGraceMs)).unref())]);
      await opts.closeAdapters?.();
      return drained;
    })();
    return stopping;
  };

  return { port, address, health, edge, shutdown };
}
