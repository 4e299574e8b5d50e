import { request } from "node:http";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { noMetrics } from "../../src/domain/ports.js";
import { startMetricsServer } from "../../src/observability/metrics-server.js";
import { GRPC_CODE_NAMES, HANDLING_SECONDS_BUCKETS, ServiceMetrics } from "../../src/observability/metrics.js";
import { parsePromText, sampleValue, type Sample } from "../support/prom-text.js";

const METHODS = [
  { path: "/usdc.mint.v1.MintService/MintUsdc", type: "unary" },
  { path: "/usdc.mint.v1.MintService/Transfer", type: "unary" },
] as const;

function newMetrics(): ServiceMetrics {
  return new ServiceMetrics({ grpcMethods: METHODS, nodeDefaults: false });
}

async function samples(m: ServiceMetrics): Promise<Sample[]> {
  return parsePromText(await m.text());
}

const MINT = { grpc_type: "unary", grpc_service: "usdc.mint.v1.MintService", grpc_method: "MintUsdc" };

describe("gRPC server metrics (go-grpc-prometheus names)", () => {
  it("start every method's series at 0, every code of grpc_server_handled_total included", async () => {
    const s = await samples(newMetrics());
    expect(sampleValue(s, "grpc_server_started_total", MINT)).toBe(0);
    for (const code of GRPC_CODE_NAMES) expect(sampleValue(s, "grpc_server_handled_total", { ...MINT, grpc_code: code })).toBe(0);
    expect(sampleValue(s, "grpc_server_handling_seconds_count", MINT)).toBe(0);
    expect(GRPC_CODE_NAMES).toHaveLength(17);
  });

  it("count started and handled calls by code and put their latency into cumulative buckets", async () => {
    const m = newMetrics();
    const mint = m.grpcMethod("/usdc.mint.v1.MintService/MintUsdc");
    mint.started();
    mint.handled(0, 0.0002);
    mint.started();
    mint.handled(0, 0.003);
    mint.started();
    mint.handled(8, 20); // ResourceExhausted, slower than the last bucket
    const s = await samples(m);
    expect(sampleValue(s, "grpc_server_started_total", MINT)).toBe(3);
    expect(sampleValue(s, "grpc_server_handled_total", { ...MINT, grpc_code: "OK" })).toBe(2);
    expect(sampleValue(s, "grpc_server_handled_total", { ...MINT, grpc_code: "ResourceExhausted" })).toBe(1);
    expect(sampleValue(s, "grpc_server_handled_total", { ...MINT, grpc_method: "Transfer", grpc_code: "OK" })).toBe(0);
    expect(sampleValue(s, "grpc_server_handling_seconds_bucket", { ...MINT, le: "0.0001" })).toBe(0);
    expect(sampleValue(s, "grpc_server_handling_seconds_bucket", { ...MINT, le: "0.00025" })).toBe(1);
    expect(sampleValue(s, "grpc_server_handling_seconds_bucket", { ...MINT, le: "0.005" })).toBe(2);
    expect(sampleValue(s, "grpc_server_handling_seconds_bucket", { ...MINT, le: "10" })).toBe(2);
    expect(sampleValue(s, "grpc_server_handling_seconds_bucket", { ...MINT, le: "+Inf" })).toBe(3);
    expect(sampleValue(s, "grpc_server_handling_seconds_count", MINT)).toBe(3);
    expect(sampleValue(s, "grpc_server_handling_seconds_sum", MINT)).toBeCloseTo(20.0032, 10);
  });

  it("count an unknown status code as Unknown rather than dropping it", async () => {
    const m = newMetrics();
    m.grpcMethod("/usdc.mint.v1.MintService/Transfer").handled(99, 0.001);
    expect(sampleValue(await samples(m), "grpc_server_handled_total", { ...MINT, grpc_method: "Transfer", grpc_code: "Unknown" })).toBe(1);
  });

  it("refuse methods that were not declared (no series appear at run time)", () => {
    const m = newMetrics();
    expect(() => m.grpcMethod("/usdc.mint.v1.MintService/Nope")).toThrow(/no metrics declared/);
    expect(() => new ServiceMetrics({ grpcMethods: [{ path: "MintUsdc", type: "unary" }], nodeDefaults: false })).toThrow(/not a gRPC method path/);
  });

  it("have buckets suited to sub-millisecond calls", () => {
    expect(HANDLING_SECONDS_BUCKETS[0]).toBeLessThanOrEqual(0.0001);
    expect(HANDLING_SECONDS_BUCKETS.filter((b) => b < 0.001).length).toBeGreaterThanOrEqual(3);
  });
});

describe("the service's own metrics", () => {
  it("count every event the sink reports", async () => {
    const m = newMetrics();
    m.moneyMoved("mint", 100_500_000n);
    m.moneyMoved("mint", 1n);
    m.moneyMoved("transfer", 25_000_000n);
    m.moneyMoved("reversal", 7n);
    m.idempotentReplay("mint");
    m.idempotentReplay("transfer");
    m.idempotentReplay("transfer");
    m.rateLimited();
    m.duplicateWaited("mint");
    m.lockWaited(2, true);
    m.lockWaited(30, false);
    m.callShed("overloaded");
    m.callShed("shutting_down");
    m.pgConflict("40P01", false);
    m.pgConflict("40P01", true);
    m.pgConflict("40001", false);
    m.redisCommandError();
    m.sweeperRun(true);
    m.sweeperRun(false);
    const s = await samples(m);
    expect(sampleValue(s, "usdc_mint_minted_micro_usdc_total")).toBe(100_500_001);
    expect(sampleValue(s, "usdc_mint_transferred_micro_usdc_total")).toBe(25_000_000);
    expect(sampleValue(s, "usdc_mint_reversed_micro_usdc_total")).toBe(7);
    expect(sampleValue(s, "usdc_mint_operations_total", { operation: "mint" })).toBe(2);
    expect(sampleValue(s, "usdc_mint_operations_total", { operation: "reversal" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_idempotent_replays_total", { scope: "transfer" })).toBe(2);
    expect(sampleValue(s, "usdc_mint_idempotent_replays_total", { scope: "mint" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_rate_limited_total")).toBe(1);
    expect(sampleValue(s, "usdc_mint_in_flight_duplicates_waited_total", { scope: "mint" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_in_flight_duplicates_waited_total", { scope: "transfer" })).toBe(0);
    expect(sampleValue(s, "usdc_mint_lock_wait_seconds_bucket", { outcome: "acquired", le: "0.0025" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_lock_wait_seconds_bucket", { outcome: "acquired", le: "0.001" })).toBe(0);
    expect(sampleValue(s, "usdc_mint_lock_wait_seconds_sum", { outcome: "timed_out" })).toBeCloseTo(0.03, 10);
    expect(sampleValue(s, "usdc_mint_calls_shed_total", { reason: "overloaded" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_calls_shed_total", { reason: "account_busy" })).toBe(0);
    expect(sampleValue(s, "usdc_mint_pg_deadlocks_total", { outcome: "retried" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_pg_deadlocks_total", { outcome: "gave_up" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_pg_serialization_failures_total", { outcome: "retried" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_redis_command_errors_total")).toBe(1);
    expect(sampleValue(s, "usdc_mint_sweeper_runs_total", { outcome: "ok" })).toBe(1);
    expect(sampleValue(s, "usdc_mint_sweeper_runs_total", { outcome: "failed" })).toBe(1);
  });

  it("keep money totals exact as bigint; the exposition rounds only beyond 2^53 micro-USDC", async () => {
    const m = newMetrics();
    const oneTrillionUsdc = 1_000_000_000_000_000_000n;
    for (let i = 0; i < 3; i++) m.moneyMoved("mint", oneTrillionUsdc);
    m.moneyMoved("mint", 1n);
    const value = sampleValue(await samples(m), "usdc_mint_minted_micro_usdc_total");
    expect(value).toBe(Number(3n * oneTrillionUsdc + 1n));
    expect(Math.abs(value - 3e18) / 3e18).toBeLessThan(1e-15);

    const exact = newMetrics();
    exact.moneyMoved("transfer", 2n ** 53n - 1n);
    expect(sampleValue(await samples(exact), "usdc_mint_transferred_micro_usdc_total")).toBe(2 ** 53 - 1);
  });

  it("read gauges from their sources when scraped, keep the last value when a source fails, and omit unwired ones", async () => {
    const m = newMetrics();
    let keys = 5;
    let failing = false;
    m.watch({
      lockWaiters: () => 3,
      callsInFlight: () => 4,
      idempotencyKeys: () => (failing ? Promise.reject(new Error("PostgreSQL down")) : Promise.resolve(keys)),
      limiterAccounts: () => 9,
      pgPool: () => ({ totalCount: 10, idleCount: 6, waitingCount: 2 }),
    });
    let s = await samples(m);
    expect(sampleValue(s, "usdc_mint_lock_waiters")).toBe(3);
    expect(sampleValue(s, "usdc_mint_calls_in_flight")).toBe(4);
    expect(sampleValue(s, "usdc_mint_idempotency_keys")).toBe(5);
    expect(sampleValue(s, "usdc_mint_limiter_accounts")).toBe(9);
    expect(sampleValue(s, "usdc_mint_pg_pool_connections")).toBe(10);
    expect(sampleValue(s, "usdc_mint_pg_pool_idle_connections")).toBe(6);
    expect(sampleValue(s, "usdc_mint_pg_pool_waiting_requests")).toBe(2);
    keys = 6;
    failing = true;
    s = await samples(m);
    expect(sampleValue(s, "usdc_mint_idempotency_keys")).toBe(5);
    failing = false;
    expect(sampleValue(await samples(m), "usdc_mint_idempotency_keys")).toBe(6);
    expect(() => m.watch({})).toThrow(/once/);

    const bare = newMetrics();
    bare.watch({ lockWaiters: () => 0 });
    const names = new Set((await samples(bare)).map((x) => x.name));
    expect(names.has("usdc_mint_lock_waiters")).toBe(true);
    expect(names.has("usdc_mint_pg_pool_connections")).toBe(false);
  });

  it("have a fixed number of series however many events arrive (bounded cardinality)", async () => {
    const m = newMetrics();
    m.watch({ lockWaiters: () => 1, idempotencyKeys: () => Promise.resolve(1) });
    const before = (await samples(m)).length;
    const mint = m.grpcMethod("/usdc.mint.v1.MintService/MintUsdc");
    for (let i = 0; i < 10_000; i++) {
      mint.started();
      mint.handled(i % 17, (i % 1000) / 1e5);
      m.moneyMoved(i % 2 === 0 ? "mint" : "transfer", BigInt(i));
      m.idempotentReplay(i % 2 === 0 ? "mint" : "transfer");
      m.lockWaited(i % 50, i % 3 !== 0);
      m.callShed(i % 3 === 0 ? "shutting_down" : i % 3 === 1 ? "overloaded" : "account_busy");
    }
    const after = await samples(m);
    expect(after.length).toBe(before);
    // 2 methods: started 2, handled 2 × 17, handling 2 × (16 buckets + Inf + sum + count).
    expect(after.filter((x) => x.name.startsWith("grpc_server_")).length).toBe(2 + 34 + 2 * 19);
  });

  it("use a registry of their own: two instances in one process do not collide", async () => {
    const a = newMetrics();
    const b = newMetrics();
    a.rateLimited();
    expect(sampleValue(await samples(a), "usdc_mint_rate_limited_total")).toBe(1);
    expect(sampleValue(await samples(b), "usdc_mint_rate_limited_total")).toBe(0);
  });

  it("include Node's default metrics unless turned off", async () => {
    const m = new ServiceMetrics({ grpcMethods: METHODS });
    const names = new Set((await samples(m)).map((x) => x.name));
    expect(names.has("process_cpu_user_seconds_total")).toBe(true);
    expect(names.has("nodejs_heap_size_used_bytes")).toBe(true);
  });

  it("noMetrics accepts every event and records nothing", () => {
    expect(() => {
      noMetrics.moneyMoved("mint", 1n);
      noMetrics.lockWaited(1, true);
      noMetrics.sweeperRun(false);
    }).not.toThrow();
  });
});

function get(port: number, path: string, method = "GET"): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the metrics listener", () => {
  it("serves GET /metrics in the text format and 404 elsewhere", async () => {
    const m = newMetrics();
    m.rateLimited();
    const server = await startMetricsServer("127.0.0.1:0", m);
    try {
      expect(server.address).toBe(`127.0.0.1:${server.port}`);
      const ok = await get(server.port, "/metrics");
      expect(ok.status).toBe(200);
      expect(ok.type).toContain("text/plain; version=0.0.4");
      expect(ok.body).toContain("# TYPE usdc_mint_rate_limited_total counter");
      expect(ok.body).toContain("usdc_mint_rate_limited_total 1");
      expect((await get(server.port, "/metrics?x=1")).status).toBe(200);
      expect((await get(server.port, "/")).status).toBe(404);
      expect((await get(server.port, "/metrics/x")).status).toBe(404);
      expect((await get(server.port, "/metrics", "POST")).status).toBe(405);
      const head = await get(server.port, "/metrics", "HEAD");
      expect([head.status, head.body]).toEqual([200, ""]);
    } finally {
      await server.close();
    }
  });

  it("answers 503 when the metrics cannot be produced", async () => {
    const server = await startMetricsServer("127.0.0.1:0", { contentType: "text/plain", text: () => Promise.reject(new Error("boom")) });
    try {
      const r = await get(server.port, "/metrics");
      // A fixed body: why goes to the log, never to whoever scraped.
      expect([r.status, r.body]).toEqual([503, "metrics unavailable; the service logged why\n"]);
    } finally {
      await server.close();
    }
  });

  it("rejects when the address is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startMetricsServer(`127.0.0.1:${port}`, newMetrics())).rejects.toThrow(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });
});
