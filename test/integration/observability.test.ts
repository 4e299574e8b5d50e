/**
 * Metrics and request ids through the real server and the generated client:
 * every series moves after the calls that should move it, label values stay
 * bounded whatever the accounts, the metrics listener follows
 * MINT_METRICS_LISTEN, and every call's request id reaches its trailers, its
 * error's ErrorInfo and its log lines.
 */
import { request } from "node:http";
import { createServer } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, MintServiceClient, type MintUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { parsePromText, sampleValue, type Sample } from "../support/prom-text.js";
import { decodeError, expectError, startTestServer, type TestServer } from "../support/test-server.js";
import { memoryLogger, rpc, waitFor } from "./helpers.js";

const { status: Code } = grpc;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MINT = { grpc_type: "unary", grpc_service: "usdc.mint.v1.MintService", grpc_method: "MintUsdc" };

function scrape(address: string): Promise<{ status: number; body: string }> {
  const cut = address.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    const req = request({ host: address.slice(0, cut), port: Number(address.slice(cut + 1)), path: "/metrics", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function samplesOf(s: TestServer): Promise<Sample[]> {
  const address = s.app.metricsAddress;
  if (address === null) throw new Error("metrics are off");
  const r = await scrape(address);
  expect(r.status).toBe(200);
  return parsePromText(r.body);
}

/** A unary call through the generated client with metadata; resolves with the outcome and the trailers. */
function callWithMetadata(
  client: MintServiceClient,
  req: object,
  metadata: grpc.Metadata,
  deadlineMs?: number,
): Promise<{ err: grpc.ServiceError | null; trailers: grpc.Metadata }> {
  return new Promise((resolve) => {
    let err: grpc.ServiceError | null = null;
    const options: grpc.CallOptions = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
    const call = client.mintUsdc(req as never, metadata, options, (e: grpc.ServiceError | null, _res?: MintUsdcResponse) => {
      err = e;
    });
    call.on("status", (s: grpc.StatusObject) => setImmediate(() => resolve({ err, trailers: s.metadata })));
  });
}

describe("metrics through the real server", () => {
  let s: TestServer;

  beforeAll(async () => {
    s = await startTestServer({
      MINT_METRICS_LISTEN: "127.0.0.1:0",
      // A limiter that cannot reach Redis (port 1 refuses): every mint is a Redis command error.
      MINT_REDIS_URL: "redis://127.0.0.1:1",
    });
  });

  afterAll(async () => {
    await s?.stop();
  });

  it("start with every series present (gRPC ones at 0) and a metrics listener on the address asked for", async () => {
    expect(s.app.metricsAddress).toMatch(/^127\.0\.0\.1:[0-9]+$/);
    const samples = await samplesOf(s);
    for (const method of ["MintUsdc", "Transfer", "GetBalance", "GetMint", "ListMints", "ReconcileMint"]) {
      expect(sampleValue(samples, "grpc_server_handled_total", { ...MINT, grpc_method: method, grpc_code: "OK" })).toBe(0);
    }
    const names = new Set(samples.map((x) => x.name));
    for (const name of [
      "usdc_mint_pg_deadlocks_total",
      "usdc_mint_pg_serialization_failures_total",
      "usdc_mint_idempotency_keys",
      "usdc_mint_lock_waiters",
      "usdc_mint_calls_in_flight",
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect(names, name).toContain(name);
    }
    // The Redis limiter keeps no per-account state here; the PostgreSQL pool exists only with PostgreSQL.
    expect(names.has("usdc_mint_limiter_accounts")).toBe(false);
    expect(names.has("usdc_mint_pg_pool_connections")).toBe(false);
  });

  it("count Redis command errors (the limiter cannot reach Redis and fails closed)", async () => {
    const r = rpc(s.call);
    const e = await expectError(r.mint("redis-x", "1", "redis-1"));
    expect([Code[e.code], e.reason]).toEqual(["UNAVAILABLE", "STORE_UNAVAILABLE"]);
    const samples = await samplesOf(s);
    expect(sampleValue(samples, "usdc_mint_redis_command_errors_total")).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, "grpc_server_handled_total", { ...MINT, grpc_code: "Unavailable" })).toBe(1);
  });
});

describe("metrics of the core's events", () => {
  let s: TestServer;

  beforeAll(async () => {
    s = await startTestServer({
      MINT_METRICS_LISTEN: "127.0.0.1:0",
      MINT_RATE_LIMIT: "3",
      MINT_RATE_WINDOW: "1h",
      MINT_MAX_LOCK_WAITERS: "2",
      MINT_MAX_CALLS_IN_FLIGHT: "3",
    });
  });

  afterAll(async () => {
    await s?.stop();
  });

  it("move after the calls that should move them", async () => {
    const r = rpc(s.call);
    const minted = await r.mint("m-a", "100.5", "mk-1");
    await r.mint("m-a", "100.5", "mk-1"); // replay
    await r.mint("m-a", "0.000001", "mk-2");
    await r.mint("m-a", "1", "mk-3");
    const limited = await expectError(r.mint("m-a", "1", "mk-4"));
    expect(limited.reason).toBe("RATE_LIMITED");
    await r.reconcile(minted.mint!.mintId, "chain tx failed"); // frees mk-1
    await r.transfer("m-a", "m-b", "0.5", "tk-1");
    await r.transfer("m-a", "m-b", "0.5", "tk-1"); // replay
    expect(await r.balance("m-a")).toBe("0.500001");

    // Hold m-x's lock: two calls with one key queue for it (the second a duplicate in flight),
    // a third on m-x is shed ACCOUNT_BUSY, one on held m-y fills the in-flight cap, and one more
    // call anywhere is shed OVERLOADED.
    const holdX = await s.app.core.locks.acquire(["m-x"], Infinity);
    const holdY = await s.app.core.locks.acquire(["m-y"], Infinity);
    const first = r.mint("m-x", "2", "dup-1");
    const second = r.mint("m-x", "2", "dup-1");
    await waitFor(() => s.app.server.edge.callsInFlight === 2, "two calls waiting for m-x");
    const busy = await expectError(r.mint("m-x", "3", "busy-1"));
    expect(busy.reason).toBe("ACCOUNT_BUSY");
    const third = r.mint("m-y", "4", "y-1");
    await waitFor(() => s.app.server.edge.callsInFlight === 3, "three calls in flight");
    const waiting = await samplesOf(s);
    expect(sampleValue(waiting, "usdc_mint_lock_waiters")).toBe(3);
    expect(sampleValue(waiting, "usdc_mint_calls_in_flight")).toBe(3);
    const overloaded = await expectError(r.getBalance("m-z"));
    expect(overloaded.reason).toBe("OVERLOADED");
    holdX?.();
    holdY?.();
    expect([(await first).replayed, (await second).replayed, (await third).replayed]).toEqual([false, true, false]);
    // A call whose deadline passes while it waits for a lock.
    const holdT = await s.app.core.locks.acquire(["m-t"], Infinity);
    const late = await expectError(r.mint("m-t", "1", "t-1", Blockchain.BLOCKCHAIN_BASE, 1_000));
    expect(late.code).toBe(Code.DEADLINE_EXCEEDED);
    holdT?.();
    await waitFor(async () => sampleValue(await samplesOf(s), "usdc_mint_sweeper_runs_total", { outcome: "ok" }) >= 1, "a sweeper run");

    const m = await samplesOf(s);
    expect(sampleValue(m, "usdc_mint_minted_micro_usdc_total")).toBe(100_500_000 + 1 + 1_000_000 + 2_000_000 + 4_000_000);
    expect(sampleValue(m, "usdc_mint_transferred_micro_usdc_total")).toBe(500_000);
    expect(sampleValue(m, "usdc_mint_reversed_micro_usdc_total")).toBe(100_500_000);
    expect(sampleValue(m, "usdc_mint_operations_total", { operation: "mint" })).toBe(5);
    expect(sampleValue(m, "usdc_mint_operations_total", { operation: "transfer" })).toBe(1);
    expect(sampleValue(m, "usdc_mint_operations_total", { operation: "reversal" })).toBe(1);
    expect(sampleValue(m, "usdc_mint_idempotent_replays_total", { scope: "mint" })).toBe(2);
    expect(sampleValue(m, "usdc_mint_idempotent_replays_total", { scope: "transfer" })).toBe(1);
    expect(sampleValue(m, "usdc_mint_rate_limited_total")).toBe(1);
    expect(sampleValue(m, "usdc_mint_in_flight_duplicates_waited_total", { scope: "mint" })).toBe(1);
    expect(sampleValue(m, "usdc_mint_lock_wait_seconds_count", { outcome: "acquired" })).toBe(3);
    expect(sampleValue(m, "usdc_mint_lock_wait_seconds_count", { outcome: "timed_out" })).toBe(1);
    expect(sampleValue(m, "usdc_mint_calls_shed_total", { reason: "account_busy" })).toBe(1);
    expect(sampleValue(m, "usdc_mint_calls_shed_total", { reason: "overloaded" })).toBe(1);
    expect(sampleValue(m, "usdc_mint_lock_waiters")).toBe(0);
    // mk-2, mk-3, tk-1, dup-1, y-1: mk-1 was freed by the reversal; refused and shed calls hold none.
    expect(sampleValue(m, "usdc_mint_idempotency_keys")).toBe(5);
    expect(sampleValue(m, "usdc_mint_limiter_accounts")).toBeGreaterThanOrEqual(1);
    // gRPC: 10 MintUsdc: 7 OK (a replay and the duplicate included), 1 rate limited, 1 shed (Unavailable), 1 past its deadline.
    expect(sampleValue(m, "grpc_server_handled_total", { ...MINT, grpc_code: "OK" })).toBe(7);
    expect(sampleValue(m, "grpc_server_handled_total", { ...MINT, grpc_code: "ResourceExhausted" })).toBe(1);
    expect(sampleValue(m, "grpc_server_handled_total", { ...MINT, grpc_code: "Unavailable" })).toBe(1);
    expect(sampleValue(m, "grpc_server_handled_total", { ...MINT, grpc_code: "DeadlineExceeded" })).toBe(1);
    expect(sampleValue(m, "grpc_server_handled_total", { ...MINT, grpc_method: "GetBalance", grpc_code: "Unavailable" })).toBe(1);
    expect(sampleValue(m, "grpc_server_started_total", MINT)).toBe(10);
    expect(sampleValue(m, "grpc_server_handling_seconds_count", MINT)).toBe(10);
    expect(sampleValue(m, "grpc_server_handling_seconds_bucket", { ...MINT, le: "+Inf" })).toBe(10);

    // Draining: calls are shed as shutting_down.
    s.app.server.edge.startDraining();
    expect((await expectError(r.getBalance("m-a"))).reason).toBe("SHUTTING_DOWN");
    expect(sampleValue(await samplesOf(s), "usdc_mint_calls_shed_total", { reason: "shutting_down" })).toBe(1);
  });
});

describe("label cardinality", () => {
  it("stays fixed however many accounts and keys the calls use", async () => {
    const s = await startTestServer({ MINT_METRICS_LISTEN: "127.0.0.1:0", MINT_RATE_LIMIT: "1" });
    try {
      const r = rpc(s.call);
      const before = (await samplesOf(s)).filter((x) => !/^(process|nodejs)_/.test(x.name));
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 150; i++) {
        calls.push(r.mint(`card-${i}`, "1", `card-key-${i}`));
        calls.push(r.mint(`card-${i}`, "1", `card-key-b-${i}`).catch(() => undefined)); // rate limited
        calls.push(r.transfer(`card-${i}`, `card-other-${i}`, "0.5", `card-t-${i}`).catch(() => undefined));
        calls.push(r.getBalance(`card-${i}`));
        calls.push(r.getMint(`mint_unknown${i}`).catch(() => undefined));
      }
      await Promise.all(calls);
      const after = (await samplesOf(s)).filter((x) => !/^(process|nodejs)_/.test(x.name));
      expect(after.length).toBe(before.length);
      const labelValues = after.flatMap((x) => Object.values(x.labels));
      expect(labelValues.filter((v) => v.includes("card") || v.includes("mint_unknown"))).toEqual([]);
      expect(sampleValue(after, "grpc_server_started_total", MINT)).toBe(300);
    } finally {
      await s.stop();
    }
  });
});

describe("the metrics listener", () => {
  it("is off by default: nothing listens and nothing records", async () => {
    const s = await startTestServer();
    try {
      expect([s.app.metricsAddress, s.app.metrics]).toEqual([null, null]);
      expect((await rpc(s.call).mint("off-a", "1", "off-1")).replayed).toBe(false);
    } finally {
      await s.stop();
    }
  });

  it("that cannot bind stops the start with one line naming MINT_METRICS_LISTEN, before any store is opened", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const config = loadConfig([], { MINT_LISTEN: "127.0.0.1:0", MINT_LOG_LEVEL: "silent", MINT_METRICS_LISTEN: `127.0.0.1:${port}` });
      const { logger } = memoryLogger();
      const err = await startApp(config, logger).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toBe(`MINT_METRICS_LISTEN=127.0.0.1:${port}: cannot listen (EADDRINUSE)`);
    } finally {
      blocker.close();
    }
  });

  it("answers its last scrape while the server drains, then closes", async () => {
    const s = await startTestServer({ MINT_METRICS_LISTEN: "127.0.0.1:0" });
    const address = s.app.metricsAddress as string;
    expect((await scrape(address)).status).toBe(200);
    await s.stop();
    await expect(scrape(address)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe("request ids", () => {
  let app: App;
  let client: MintServiceClient;
  let lines: () => string[];

  beforeAll(async () => {
    const mem = memoryLogger();
    lines = mem.lines;
    app = await startApp(loadConfig([], { MINT_LISTEN: "127.0.0.1:0", MINT_LOG_LEVEL: "info", MINT_RATE_LIMIT: "1" }), mem.logger);
    client = new MintServiceClient(app.server.address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await app?.shutdown();
  });

  const mintReq = (accountId: string, amount: string, idempotencyKey: string): object => ({ accountId, amount, blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey });

  it("echo the caller's id in the trailers of a success", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "caller-req-1");
    const { err, trailers } = await callWithMetadata(client, mintReq("rid-a", "1", "rid-1"), md);
    expect(err).toBeNull();
    expect(trailers.get("x-request-id")).toEqual(["caller-req-1"]);
  });

  it("are generated (a new UUID each call) when the caller sends none or an invalid one", async () => {
    const a = await callWithMetadata(client, mintReq("rid-b", "1", "rid-2"), new grpc.Metadata());
    const b = await callWithMetadata(client, mintReq("rid-c", "1", "rid-3"), new grpc.Metadata());
    const bad = new grpc.Metadata();
    bad.set("x-request-id", "has spaces and is not an id");
    const c = await callWithMetadata(client, mintReq("rid-d", "1", "rid-4"), bad);
    const ids = [a, b, c].map((x) => x.trailers.get("x-request-id"));
    for (const id of ids) {
      expect(id).toHaveLength(1);
      expect(id[0]).toMatch(UUID);
    }
    expect(new Set(ids.map((x) => x[0])).size).toBe(3);
  });

  it("reach an error's ErrorInfo and trailers and every log line of the call", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "caller-req-err");
    const { err } = await callWithMetadata(client, mintReq("rid-e", "-1", "rid-5"), md);
    const e = decodeError(err);
    expect([Code[e.code], e.reason, e.requestId]).toEqual(["INVALID_ARGUMENT", "INVALID_AMOUNT", "caller-req-err"]);
    expect(e.metadata).toEqual({ field: "amount" });
    await waitFor(() => lines().some((l) => l.includes("caller-req-err")), "the call's log line");
    const logged = lines()
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.requestId === "caller-req-err");
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ msg: "call failed", rpc: "MintUsdc", code: "INVALID_ARGUMENT", reason: "INVALID_AMOUNT" });
  });

  it("of generated ids also reach the error and its log line", async () => {
    await callWithMetadata(client, mintReq("rid-f", "1", "rid-6"), new grpc.Metadata());
    const { err } = await callWithMetadata(client, mintReq("rid-f", "1", "rid-7"), new grpc.Metadata()); // rate limited
    const e = decodeError(err);
    expect(e.reason).toBe("RATE_LIMITED");
    expect(e.requestId).toMatch(UUID);
    expect(e.metadata).toEqual({ account_id: "rid-f", limit: "1", window_ms: "1000" });
    await waitFor(() => lines().some((l) => l.includes(e.requestId as string)), "the call's log line");
  });
});
