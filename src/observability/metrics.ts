/**
 * The service's Prometheus metrics, on prom-client with a Registry of its own
 * (never the global one, so several servers in one process, as in the tests,
 * never collide).
 *
 * - gRPC server series under go-grpc-prometheus's names, so existing
 *   dashboards and alerts work: `grpc_server_started_total`,
 *   `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}`
 *   (codes spelled as Go spells them: `OK`, `InvalidArgument`, ...) and the
 *   `grpc_server_handling_seconds` histogram, with buckets from 100 µs.
 * - The service's own under `usdc_mint_`: money moved, replays, rate-limit
 *   refusals, duplicates waited, lock waits, calls shed, PostgreSQL lost
 *   races, Redis errors, sweeper runs (recorded through the `MetricsSink`
 *   port), and gauges read when Prometheus scrapes (keys held, limiter
 *   accounts, lock waiters, calls in flight, the PostgreSQL pool).
 * - Node's default metrics (`process_*`, `nodejs_*`).
 *
 * Every label value comes from a closed list declared here (no account ids,
 * keys or messages), so the number of series is fixed when the process starts.
 */
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { IdempotencyScope } from "../domain/model.js";
import type { MetricsSink, MoneyOperation, PgConflictState, ShedReason } from "../domain/ports.js";
import { combinations, FastBigCounter, FastCounter, FastHistogram, type BigCounterCell, type CounterCell, type HistogramCell } from "./fast-metrics.js";

/** gRPC status codes by number, as go-grpc-prometheus labels them (Go's `codes.Code.String()`). */
export const GRPC_CODE_NAMES = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
] as const;

/**
 * Latency buckets in seconds. An uncontended call takes 50–500 µs in the
 * process, so the buckets start at 100 µs; they reach 10 s for calls that
 * wait on a busy PostgreSQL or a long deadline.
 */
export const HANDLING_SECONDS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** A gRPC method the server exposes, as `/package.Service/Method`. */
export interface GrpcMethodSpec {
  readonly path: string;
  readonly type: "unary" | "client_stream" | "server_stream" | "bidi_stream";
}

/** The handles one method's calls record through; resolve once per method, not per call. */
export class GrpcMethodMetrics {
  constructor(
    private readonly startedCell: CounterCell,
    private readonly handledCells: readonly CounterCell[],
    private readonly seconds: HistogramCell,
  ) {}

  /** A call arrived. */
  started(): void {
    this.startedCell.inc();
  }

  /** A call was answered with gRPC status `code` (0..16) after `seconds`. */
  handled(code: number, seconds: number): void {
    (this.handledCells[code] ?? this.handledCells[2])?.inc();
    this.seconds.observe(seconds);
  }
}

/** Gauges read at scrape time; each is optional (a PostgreSQL pool exists only with MINT_STORE=postgres). */
export interface MetricsSources {
  /** Calls waiting for an account lock (a call waiting for two counts twice). */
  readonly lockWaiters?: () => number;
  readonly callsInFlight?: () => number;
  /** Idempotency keys held (in flight or stored). May query the store. */
  readonly idempotencyKeys?: () => Promise<number>;
  /** Accounts with rate-limiter state in this process (the in-memory limiter; Redis keeps its own). */
  readonly limiterAccounts?: () => number;
  readonly pgPool?: () => { readonly totalCount: number; readonly idleCount: number; readonly waitingCount: number };
}

const SCOPES: readonly IdempotencyScope[] = ["mint", "transfer", "redeem"];
const SHED_REASONS: readonly ShedReason[] = ["shutting_down", "overloaded", "account_busy"];

/** The batch RPCs whose items are counted one by one. */
export type BatchMethod = "BatchMint" | "BatchTransfer";
const BATCH_METHODS: readonly BatchMethod[] = ["BatchMint", "BatchTransfer"];

export interface ServiceMetricsOptions {
  /** The methods whose calls are counted; only these get series. */
  readonly grpcMethods: readonly GrpcMethodSpec[];
  /** Node's default metrics (default true); tests that count series turn them off. */
  readonly nodeDefaults?: boolean;
}

export class ServiceMetrics implements MetricsSink {
  readonly registry = new Registry();
  private readonly grpcByPath = new Map<string, GrpcMethodMetrics>();
  private readonly money: Record<MoneyOperation, BigCounterCell>;
  private readonly operations: Record<MoneyOperation, CounterCell>;
  private readonly replays: Record<IdempotencyScope, CounterCell>;
  private readonly duplicates: Record<IdempotencyScope, CounterCell>;
  private readonly rateLimitedCell: CounterCell;
  private readonly lockWait: { readonly acquired: HistogramCell; readonly timedOut: HistogramCell };
  private readonly shed: Record<ShedReason, CounterCell>;
  private readonly pgConflicts: Record<PgConflictState, { readonly retried: CounterCell; readonly gaveUp: CounterCell }>;
  private readonly redisErrors: CounterCell;
  private readonly sweeps: { readonly ok: CounterCell; readonly failed: CounterCell };
  /** Items of BatchMint / BatchTransfer by their own outcome (a batch itself is one call of grpc_server_handled_total). */
  private readonly batchItems: Record<BatchMethod, readonly CounterCell[]>;
  private watched = false;

  constructor(options: ServiceMetricsOptions) {
    const r = this.registry;
    this.defineGrpc(options.grpcMethods);

    const moneyCounter = (what: string, help: string): BigCounterCell =>
      new FastBigCounter(`usdc_mint_${what}_micro_usdc_total`, help, [{}], r).cell();
    this.money = {
      mint: moneyCounter("minted", "micro-USDC minted into accounts (replays not counted)"),
      transfer: moneyCounter("transferred", "micro-USDC moved between accounts (replays not counted)"),
      reversal: moneyCounter("reversed", "micro-USDC taken back by reversing mints (ReconcileMint)"),
    };
    const ops = new FastCounter("usdc_mint_operations_total", "Effects applied (not replayed), by operation", combinations({ operation: ["mint", "transfer", "reversal"] }), r);
    this.operations = { mint: ops.cell({ operation: "mint" }), transfer: ops.cell({ operation: "transfer" }), reversal: ops.cell({ operation: "reversal" }) };

    const replays = new FastCounter("usdc_mint_idempotent_replays_total", "Keyed calls answered from the key's stored result", combinations({ scope: SCOPES }), r);
    this.replays = { mint: replays.cell({ scope: "mint" }), transfer: replays.cell({ scope: "transfer" }), redeem: replays.cell({ scope: "redeem" }) };
    const dups = new FastCounter(
      "usdc_mint_in_flight_duplicates_waited_total",
      "Calls that found a call with the same idempotency key in flight and waited for it",
      combinations({ scope: SCOPES }),
      r,
    );
    this.duplicates = { mint: dups.cell({ scope: "mint" }), transfer: dups.cell({ scope: "transfer" }), redeem: dups.cell({ scope: "redeem" }) };
    this.rateLimitedCell = new FastCounter("usdc_mint_rate_limited_total", "Mints refused by the per-account rate limit", [{}], r).cell();

    const lockWait = new FastHistogram(
      "usdc_mint_lock_wait_seconds",
      "Time calls waited for an account lock that another call held (uncontended takes are not observed); outcome timed_out: the deadline passed first",
      combinations({ outcome: ["acquired", "timed_out"] }),
      r,
      HANDLING_SECONDS_BUCKETS,
    );
    this.lockWait = { acquired: lockWait.cell({ outcome: "acquired" }), timedOut: lockWait.cell({ outcome: "timed_out" }) };

    const shed = new FastCounter("usdc_mint_calls_shed_total", "Calls refused UNAVAILABLE before doing anything, by reason", combinations({ reason: SHED_REASONS }), r);
    this.shed = { shutting_down: shed.cell({ reason: "shutting_down" }), overloaded: shed.cell({ reason: "overloaded" }), account_busy: shed.cell({ reason: "account_busy" }) };

    const conflictCounter = (name: string, help: string): { retried: CounterCell; gaveUp: CounterCell } => {
      const c = new FastCounter(name, help, combinations({ outcome: ["retried", "gave_up"] }), r);
      return { retried: c.cell({ outcome: "retried" }), gaveUp: c.cell({ outcome: "gave_up" }) };
    };
    this.pgConflicts = {
      "40P01": conflictCounter("usdc_mint_pg_deadlocks_total", "PostgreSQL transactions that hit a deadlock (40P01): retried, or given up (the call failed UNAVAILABLE)"),
      "40001": conflictCounter(
        "usdc_mint_pg_serialization_failures_total",
        "PostgreSQL transactions that hit a serialization failure (40001): retried, or given up (the call failed UNAVAILABLE)",
      ),
    };
    this.redisErrors = new FastCounter("usdc_mint_redis_command_errors_total", "Redis commands of the rate limiter that failed (connection, timeout, script)", [{}], r).cell();
    const sweeps = new FastCounter("usdc_mint_sweeper_runs_total", "Runs of the sweeper of expired keys and idle limiter state, by outcome", combinations({ outcome: ["ok", "failed"] }), r);
    this.sweeps = { ok: sweeps.cell({ outcome: "ok" }), failed: sweeps.cell({ outcome: "failed" }) };
    const items = new FastCounter(
      "usdc_mint_batch_items_total",
      "Items of BatchMint and BatchTransfer calls, by the gRPC code of each item's own result (OK: applied or replayed); the batches themselves are calls of grpc_server_handled_total",
      combinations({ grpc_method: BATCH_METHODS, grpc_code: GRPC_CODE_NAMES }),
      r,
    );
    const itemCells = (grpc_method: BatchMethod): CounterCell[] => GRPC_CODE_NAMES.map((grpc_code) => items.cell({ grpc_method, grpc_code }));
    this.batchItems = { BatchMint: itemCells("BatchMint"), BatchTransfer: itemCells("BatchTransfer") };

    if (options.nodeDefaults ?? true) collectDefaultMetrics({ register: r });
  }

  private defineGrpc(methods: readonly GrpcMethodSpec[]): void {
    const r = this.registry;
    const parsed = methods.map((m) => {
      const match = /^\/([^/]+)\/([^/]+)$/.exec(m.path);
      if (match === null) throw new Error(`not a gRPC method path: ${m.path}`);
      return { path: m.path, type: m.type, service: match[1] as string, method: match[2] as string };
    });
    // go-grpc-prometheus's names, help texts and labels. The series are the
    // methods served (times the 17 codes for handled), all present from the
    // start at 0, as go-grpc-prometheus's InitializeMetrics makes them, so a
    // rate() over a code that has not happened yet is 0 rather than absent.
    const sets = parsed.map((p) => ({ grpc_type: p.type, grpc_service: p.service, grpc_method: p.method }));
    const started = new FastCounter("grpc_server_started_total", "Total number of RPCs started on the server.", sets, r);
    const handled = new FastCounter(
      "grpc_server_handled_total",
      "Total number of RPCs completed on the server, regardless of success or failure.",
      sets.flatMap((l) => GRPC_CODE_NAMES.map((grpc_code) => ({ ...l, grpc_code }))),
      r,
    );
    const seconds = new FastHistogram(
      "grpc_server_handling_seconds",
      "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
      sets,
      r,
      HANDLING_SECONDS_BUCKETS,
    );
    parsed.forEach((p, i) => {
      const l = sets[i] as (typeof sets)[number];
      this.grpcByPath.set(
        p.path,
        new GrpcMethodMetrics(started.cell(l), GRPC_CODE_NAMES.map((grpc_code) => handled.cell({ ...l, grpc_code })), seconds.cell(l)),
      );
    });
  }

  /** The handles for one method; throws for a method not declared at construction. */
  grpcMethod(path: string): GrpcMethodMetrics {
    const m = this.grpcByPath.get(path);
    if (m === undefined) throw new Error(`no metrics declared for gRPC method ${path}`);
    return m;
  }

  /** Registers the gauges read at scrape time. Call once, at wiring. */
  watch(sources: MetricsSources): void {
    if (this.watched) throw new Error("ServiceMetrics.watch may be called once");
    this.watched = true;
    const r = this.registry;
    const gauge = (name: string, help: string, read: (() => number) | undefined): void => {
      if (read === undefined) return;
      new Gauge({ name, help, registers: [r], collect() { this.set(read()); } });
    };
    gauge("usdc_mint_lock_waiters", "Calls waiting for an account lock now (a call waiting for two accounts counts twice)", sources.lockWaiters);
    gauge("usdc_mint_calls_in_flight", "Calls running in this process now", sources.callsInFlight);
    gauge("usdc_mint_limiter_accounts", "Accounts with rate-limiter state in this process (in-memory limiter only)", sources.limiterAccounts);
    const keys = sources.idempotencyKeys;
    if (keys !== undefined) {
      new Gauge({
        name: "usdc_mint_idempotency_keys",
        help: "Idempotency keys held (in flight or stored, expired ones not yet swept included)",
        registers: [r],
        async collect() {
          // A store that cannot count now (PostgreSQL down) leaves the last
          // value: the rest of the page is what an operator needs in an outage.
          const n = await keys().catch(() => undefined);
          if (n !== undefined) this.set(n);
        },
      });
    }
    const pool = sources.pgPool;
    if (pool !== undefined) {
      gauge("usdc_mint_pg_pool_connections", "PostgreSQL connections open in this replica's pool", () => pool().totalCount);
      gauge("usdc_mint_pg_pool_idle_connections", "PostgreSQL connections open and idle in the pool", () => pool().idleCount);
      gauge("usdc_mint_pg_pool_waiting_requests", "Requests waiting for a pooled PostgreSQL connection", () => pool().waitingCount);
    }
  }

  /** The text exposition format (what GET /metrics answers). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // MetricsSink: each is a field increment on a handle resolved above.

  moneyMoved(operation: MoneyOperation, amountMicros: bigint): void {
    this.money[operation].add(amountMicros);
    this.operations[operation].inc();
  }

  idempotentReplay(scope: IdempotencyScope): void {
    this.replays[scope].inc();
  }

  rateLimited(): void {
    this.rateLimitedCell.inc();
  }

  duplicateWaited(scope: IdempotencyScope): void {
    this.duplicates[scope].inc();
  }

  lockWaited(waitMs: number, acquired: boolean): void {
    (acquired ? this.lockWait.acquired : this.lockWait.timedOut).observe(waitMs / 1000);
  }

  callShed(reason: ShedReason): void {
    this.shed[reason].inc();
  }

  pgConflict(state: PgConflictState, gaveUp: boolean): void {
    const c = this.pgConflicts[state];
    (gaveUp ? c.gaveUp : c.retried).inc();
  }

  redisCommandError(): void {
    this.redisErrors.inc();
  }

  /** One item of a batch call ended with gRPC status `code` (0..16; 0 = applied or replayed). */
  batchItem(method: BatchMethod, code: number): void {
    (this.batchItems[method][code] ?? this.batchItems[method][2])?.inc();
  }

  sweeperRun(ok: boolean): void {
    (ok ? this.sweeps.ok : this.sweeps.failed).inc();
  }
}
