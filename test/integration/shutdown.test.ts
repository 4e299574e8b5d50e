/**
 * Graceful shutdown and process behaviour: in-process (health goes
 * NOT_SERVING, new calls UNAVAILABLE, the call in flight finishes) and as a
 * real subprocess (`node --import tsx src/main.ts`): SIGTERM with calls in
 * flight drains and exits 0, the grace period bounds the drain, invalid
 * configuration stops the start with one line naming the variable, and
 * --help lists every setting with its default.
 */
import { connect as http2Connect, type ClientHttp2Session } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as Wire, HealthClient, type HealthCheckResponse } from "../../gen/grpc/health/v1/health.js";
import { Blockchain, MintServiceClient, MintUsdcRequest } from "../../gen/usdc/mint/v1/mint.js";
import { decodeError, startTestServer } from "../support/test-server.js";
import { killIfRunning, listening, logLines, spawnService, type ServiceProcess } from "../support/service-process.js";
import { callerFor, rpc, waitFor } from "./helpers.js";


/** Reads a server stream one message at a time; "end" once it finishes. */
function reader(stream: grpc.ClientReadableStream<HealthCheckResponse>): () => Promise<Wire | "end"> {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<HealthCheckResponse>;
  return async () => {
    const next = await it.next();
    return next.done === true ? "end" : next.value.status;
  };
}

describe("in-process shutdown", () => {
  it("health NOT_SERVING, new calls UNAVAILABLE, the call in flight completes, shutdown resolves true", async () => {
    const s = await startTestServer();
    const r = rpc(s.call);
    const health = new HealthClient(s.address, grpc.credentials.createInsecure());
    try {
      await r.mint("sd-a", "10", "fund");
      const watch = health.watch({ service: "usdc.mint.v1.MintService" });
      watch.on("error", () => {});
      const next = reader(watch);
      expect(await next()).toBe(Wire.SERVING);

      const release = await s.app.core.locks.acquire(["sd-a"], Infinity);
      const inFlight = r.transfer("sd-a", "sd-b", "4", "in-flight");
      await waitFor(() => s.app.server.edge.callsInFlight === 1, "the transfer to be in flight");

      const stopping = s.app.shutdown();
      expect(await next()).toBe(Wire.NOT_SERVING);
      expect(await next()).toBe("end");

      // A new call is refused: by the draining edge (with our ErrorInfo) or,
      // once the listener has closed, by the transport; UNAVAILABLE either way.
      const refused = await r.getBalance("sd-a").then(
        () => null,
        (e: unknown) => e as grpc.ServiceError,
      );
      expect(refused).not.toBeNull();
      expect(grpc.status[refused?.code ?? 0]).toBe("UNAVAILABLE");
      try {
        expect(decodeError(refused).reason).toBe("SHUTTING_DOWN");
      } catch {
        // Transport-level refusal: no details to check.
      }

      // The in-flight call is still waiting; the drain waits for it.
      let stopped = false;
      void stopping.then(() => (stopped = true));
      await new Promise((res) => setTimeout(res, 50));
      expect(stopped).toBe(false);

      release?.();
      const done = await inFlight;
      expect([done.replayed, done.transfer?.amount]).toEqual([false, "4"]);
      expect(await stopping).toBe(true);
      expect(await s.app.adapters.ledger.getBalance("sd-b")).toBe(4_000_000n);
    } finally {
      health.close();
      await s.stop();
    }
  });

  it("the grace period bounds the drain: a call stuck past it does not hold shutdown, which resolves false", async () => {
    const s = await startTestServer({ MINT_SHUTDOWN_GRACE: "100ms" });
    const r = rpc(s.call);
    try {
      await r.mint("grace-a", "10", "fund");
      const release = await s.app.core.locks.acquire(["grace-a"], Infinity);
      const stuck = r.transfer("grace-a", "grace-b", "4", "stuck").then(
        () => "ok",
        (e: unknown) => grpc.status[(e as grpc.ServiceError).code],
      );
      await waitFor(() => s.app.server.edge.callsInFlight === 1, "the transfer to be in flight");
      const started = Date.now();
      expect(await s.app.shutdown()).toBe(false);
      expect(Date.now() - started).toBeGreaterThanOrEqual(90);
      expect(Date.now() - started).toBeLessThan(5_000);
      // Forced down: the caller was not left hanging.
      expect(["UNAVAILABLE", "CANCELLED", "INTERNAL"]).toContain(await stuck);
      release?.();
    } finally {
      await s.stop();
    }
  });
});

// ---------------------------------------------------------------- subprocess

/** A real service process; the helpers live in test/support/service-process.ts. */
type Proc = ServiceProcess;
const cleanup = killIfRunning;

/** Opens a raw HTTP/2 gRPC call to MintUsdc and writes only the first `sentBytes` of its framed request. */
async function partialMint(address: string, req: Parameters<typeof MintUsdcRequest.encode>[0], sentBytes: number) {
  const session = http2Connect(`http://${address}`);
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": "/usdc.mint.v1.MintService/MintUsdc",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  const body = Buffer.from(MintUsdcRequest.encode(req).finish());
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  stream.write(frame.subarray(0, sentBytes));
  await new Promise<void>((res, rej) => {
    session.once("remoteSettings", () => res());
    setTimeout(() => rej(new Error("no HTTP/2 session")), 5_000).unref();
  });
  const grpcStatus = new Promise<string>((res) => {
    stream.on("trailers", (t) => res(String(t["grpc-status"])));
    stream.on("response", (h) => {
      if (h["grpc-status"] !== undefined) res(String(h["grpc-status"]));
    });
    stream.on("close", () => res("closed without status"));
  });
  stream.resume();
  return {
    session,
    grpcStatus,
    finish: () => stream.end(frame.subarray(sentBytes)),
  };
}

describe("subprocess", () => {
  it("SIGTERM with ~200 mints in flight: every call ends OK or UNAVAILABLE, exit 0, logs stopped", async () => {
    const p = spawnService({ MINT_LISTEN: "127.0.0.1:0", MINT_RATE_LIMIT: "1000000" });
    try {
      const address = await listening(p);
      expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(address).not.toBe("127.0.0.1:0");
      const client = new MintServiceClient(address, grpc.credentials.createInsecure());
      const r = rpc(callerFor(client));
      // One call first, so the connection is up and the server surely serves.
      expect((await r.mint("warm", "1", "warm")).replayed).toBe(false);

      // 200 callers mint back to back, so calls are in flight at every
      // moment; SIGTERM lands in the middle of that load. Each caller stops
      // at its first failure (the server refusing new calls).
      let oks = 0;
      let sendSignal: () => void = () => {};
      const loadUp = new Promise<void>((res) => (sendSignal = res));
      const outcomesOf = async (w: number): Promise<string[]> => {
        const seen: string[] = [];
        for (let i = 0; ; i++) {
          try {
            await r.mint(`acct-${w % 20}`, "1.5", `k-${w}-${i}`, Blockchain.BLOCKCHAIN_BASE);
            seen.push("OK");
            if (++oks === 400) sendSignal();
          } catch (e) {
            seen.push(grpc.status[(e as grpc.ServiceError).code] ?? String(e));
            return seen;
          }
        }
      };
      const calls = Array.from({ length: 200 }, (_, w) => outcomesOf(w));
      await loadUp;
      p.child.kill("SIGTERM");
      const outcomes = (await Promise.all(calls)).flat();
      const counts: Record<string, number> = {};
      for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
      expect(Object.keys(counts).filter((c) => c !== "OK" && c !== "UNAVAILABLE")).toEqual([]);
      expect(counts.OK ?? 0).toBeGreaterThanOrEqual(400);
      expect(counts.UNAVAILABLE ?? 0).toBeGreaterThan(0);

      const exit = await p.exited;
      client.close();
      expect(exit).toEqual({ code: 0, signal: null });
      const logs = logLines(p.stdout());
      expect(logs.some((l) => l.msg === "draining" && l.signal === "SIGTERM")).toBe(true);
      const stopped = logs.find((l) => l.msg === "stopped");
      expect(stopped).toBeDefined();
      expect(stopped?.drained).toBe(true);
      expect(p.stderr()).toBe("");
    } finally {
      cleanup(p);
    }
  });

  it("a call still arriving at SIGTERM holds the drain until it ends; then the process exits 0, drained", async () => {
    const p = spawnService({ MINT_LISTEN: "127.0.0.1:0" });
    let session: ClientHttp2Session | undefined;
    try {
      const address = await listening(p);
      const raw = await partialMint(address, { accountId: "raw", amount: "1", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: "raw" }, 8);
      session = raw.session;
      await new Promise((res) => setTimeout(res, 50));
      p.child.kill("SIGTERM");
      await waitFor(() => logLines(p.stdout()).some((l) => l.msg === "draining"), "the draining line");
      // Draining, but not done: the open call holds it.
      await new Promise((res) => setTimeout(res, 100));
      expect(p.child.exitCode).toBeNull();
      expect(logLines(p.stdout()).some((l) => l.msg === "stopped")).toBe(false);
      raw.finish();
      // It is answered (OK, or UNAVAILABLE since it became a call only after the drain began).
      expect(["0", "14"]).toContain(await raw.grpcStatus);
      expect(await p.exited).toEqual({ code: 0, signal: null });
      expect(logLines(p.stdout()).find((l) => l.msg === "stopped")?.drained).toBe(true);
    } finally {
      session?.destroy();
      cleanup(p);
    }
  });

  it("SIGTERM or SIGINT sent the instant the listening line appears still drains and exits 0", async () => {
    // Regression: the line used to be printed before the signal handlers were
    // installed, so a prompt signal killed the process (no drain, no exit 0).
    const runs = (["SIGTERM", "SIGINT", "SIGTERM", "SIGINT"] as const).map(async (signal) => {
      const p = spawnService({ MINT_LISTEN: "127.0.0.1:0" });
      try {
        p.child.stdout?.on("data", () => {
          if (p.stdout().includes('"msg":"listening"') && p.child.signalCode === null && !p.child.killed) p.child.kill(signal);
        });
        const exit = await p.exited;
        return { signal, exit, stopped: logLines(p.stdout()).some((l) => l.msg === "stopped") };
      } finally {
        cleanup(p);
      }
    });
    for (const run of await Promise.all(runs)) {
      expect(run, run.signal).toEqual({ signal: run.signal, exit: { code: 0, signal: null }, stopped: true });
    }
  });

  it("SIGTERM exits 0 promptly even when whoever read the logs has gone (stdout a closed pipe)", async () => {
    // Regression: pino flushes stdout synchronously at exit and sonic-boom
    // retried the EPIPE of the last line forever, so the process hung after
    // "draining" instead of exiting (README Serving: "the process exits 0").
    const p = spawnService({ MINT_LISTEN: "127.0.0.1:0" });
    try {
      await listening(p);
      p.child.stdout?.destroy();
      const started = Date.now();
      p.child.kill("SIGTERM");
      const exit = await Promise.race([p.exited, new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 10_000))]);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      cleanup(p);
    }
  });

  it("MINT_SHUTDOWN_GRACE bounds the drain: a call that never completes is cut off after the grace and the process still exits 0", async () => {
    const p = spawnService({ MINT_LISTEN: "127.0.0.1:0", MINT_SHUTDOWN_GRACE: "300ms" });
    let session: ClientHttp2Session | undefined;
    try {
      const address = await listening(p);
      // A raw HTTP/2 call whose request message never finishes arriving: the
      // server cannot complete it, so only the grace period ends the drain.
      session = http2Connect(`http://${address}`);
      session.on("error", () => {});
      const stream = session.request({
        ":method": "POST",
        ":path": "/usdc.mint.v1.MintService/MintUsdc",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      const header = Buffer.from([0, 0, 0, 0, 100]); // uncompressed, 100 bytes promised
      stream.write(Buffer.concat([header, Buffer.alloc(10)]));
      await new Promise<void>((res, rej) => {
        stream.once("response", () => res());
        session?.once("remoteSettings", () => res());
        setTimeout(() => rej(new Error("no HTTP/2 session")), 5_000).unref();
      });
      // Give the server a moment to register the stream before the signal.
      await new Promise((res) => setTimeout(res, 50));

      const signalled = Date.now();
      p.child.kill("SIGTERM");
      const exit = await p.exited;
      const tookMs = Date.now() - signalled;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(tookMs).toBeGreaterThanOrEqual(250);
      expect(tookMs).toBeLessThan(5_000);
      const stopped = logLines(p.stdout()).find((l) => l.msg === "stopped");
      expect(stopped?.drained).toBe(false);
    } finally {
      session?.destroy();
      cleanup(p);
    }
  });
});

describe.concurrent("configuration", () => {
  // One process each, so only a few: the config reader's unit tests cover the
  // grammar of every setting; these check what the process does with an error.
  it.each([
    ["MINT_RATE_LIMIT", "abc"],
    ["MINT_SHUTDOWN_GRACE", "forever"],
  ])("%s=%j stops the start with one stderr line naming it, non-zero exit", async (name, value) => {
    const p = spawnService({ MINT_LISTEN: "127.0.0.1:0", [name]: value });
    try {
      const exit = await p.exited;
      expect(exit.code).not.toBe(0);
      expect(exit.code).not.toBeNull();
      const lines = p.stderr().trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(name);
      expect(lines[0]).toContain(value);
      expect(p.stdout()).not.toContain("listening");
    } finally {
      cleanup(p);
    }
  });

  it("a bad flag value names the flag", async () => {
    const p = spawnService({ MINT_LISTEN: "127.0.0.1:0" }, ["--rate-limit=abc"]);
    try {
      expect((await p.exited).code).not.toBe(0);
      const lines = p.stderr().trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain("--rate-limit");
    } finally {
      cleanup(p);
    }
  });

  it("--help lists every MINT_ variable of API.md with its default and exits 0", async () => {
    const p = spawnService({}, ["--help"]);
    try {
      expect((await p.exited).code).toBe(0);
      const help = p.stdout();
      for (const [name, def] of [
        ["MINT_LISTEN", "127.0.0.1:50051"],
        ["MINT_RATE_LIMIT", "10"],
        ["MINT_RATE_WINDOW", "1s"],
        ["MINT_IDEMPOTENCY_TTL", "24h"],
        ["MINT_MAX_AMOUNT", "1000000000000"],
        ["MINT_SHUTDOWN_GRACE", "10s"],
      ] as const) {
        const line = help.split("\n").find((l) => l.includes(name));
        expect(line, name).toBeDefined();
        expect(line).toContain(def);
      }
      // Every variable the service reads appears, each with a default.
      const vars = help.match(/MINT_[A-Z_]+/g) ?? [];
      expect(vars.length).toBeGreaterThanOrEqual(6);
      for (const v of vars) expect(help.split("\n").find((l) => l.includes(v))).toMatch(/default/);
      expect(p.stderr()).toBe("");
    } finally {
      cleanup(p);
    }
  });
});
