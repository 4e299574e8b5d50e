/**
 * The Redis rate limiter against a real Redis (127.0.0.1:6379). Windows run on
 * Redis server time, so the few waits here are real but short (a 200 ms
 * window). Every key lives under a prefix unique to this run and is deleted
 * afterwards.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createRedisRateLimiter,
  type RedisRateLimiter,
  type RedisRateLimiterOptions,
} from "../../src/adapters/redis/redis-rate-limiter.js";
import type { AdapterLogger } from "../../src/logger.js";
import { FakeClock } from "../support/fake-clock.js";

const REDIS_URL = process.env["MINT_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379";
const RUN_PREFIX = `test:rl:${process.pid}:${randomBytes(4).toString("hex")}:`;
/** Port 1 is privileged and unused: connecting is refused at once. */
const CLOSED_URL = "redis://127.0.0.1:1";

// A pino Logger must fit the limiter's logger type (checked by tsc only).
type PinoFits = Logger extends AdapterLogger ? true : never;
const pinoFits: PinoFits = true;

let admin: Redis;
const opened: RedisRateLimiter[] = [];
let testSeq = 0;

/** A limiter whose keys are unique to this test, closed after it. */
function limiter(overrides: Partial<RedisRateLimiterOptions> = {}): RedisRateLimiter {
  const l = createRedisRateLimiter({
    url: REDIS_URL,
    limit: 10,
    windowMs: 1000,
    failOpen: false,
    keyPrefix: `${RUN_PREFIX}${testSeq}:`,
    ...overrides,
  });
  opened.push(l);
  return l;
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Redis server time in microseconds. */
async function redisNowUs(): Promise<number> {
  const [s, us] = (await admin.time()) as [string | number, string | number];
  return Number(s) * 1_000_000 + Number(us);
}

/** Records log lines so tests can count them. */
function recordingLogger(): AdapterLogger & { errors: { obj: object; msg: string }[]; warns: { obj: object; msg: string }[] } {
  const errors: { obj: object; msg: string }[] = [];
  const warns: { obj: object; msg: string }[] = [];
  return {
    errors,
    warns,
    info: () => {},
    error: (obj, msg) => errors.push({ obj, msg }),
    warn: (obj, msg) => warns.push({ obj, msg }),
  };
}

/**
 * A TCP proxy in front of the real Redis that a test can freeze (requests are
 * held back, as by a hung server, and delivered in order on thaw) or take
 * down and bring back (as a restart).
 */
class ChaosProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly held: { upstream: net.Socket; data: Buffer }[] = [];
  private frozen = false;
  port = 0;

  freeze(): void {
    this.frozen = true;
  }

  /** Delivers the held requests, in order, and lets new ones through. */
  thaw(): void {
    this.frozen = false;
    for (const { upstream, data } of this.held.splice(0)) upstream.write(data);
  }

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(6379, "127.0.0.1");
      this.sockets.add(client).add(upstream);
      client.on("data", (data) => {
        if (this.frozen) this.held.push({ upstream, data });
        else upstream.write(data);
      });
      upstream.on("data", (d) => client.write(d));
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("close", drop).on("error", drop);
      upstream.on("close", drop).on("error", drop);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Closes the listener and every connection: Redis looks gone. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
}

async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleepMs(20);
  }
}

beforeAll(async () => {
  admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  await admin.ping();
});

afterEach(async () => {
  testSeq++;
  await Promise.all(opened.splice(0).map((l) => l.close()));
});

afterAll(async () => {
  let cursor = "0";
  do {
    const [next, keys] = await admin.scan(cursor, "MATCH", `${RUN_PREFIX}*`, "COUNT", 1000);
    if (keys.length > 0) await admin.del(...keys);
    cursor = next;
  } while (cursor !== "0");
  await admin.quit();
});

describe("redis rate limiter: the sliding window", () => {
  it("allows `limit` calls, then refuses with 0 < retryAfterMs <= windowMs", async () => {
    expect(pinoFits).toBe(true);
    const l = limiter({ limit: 10, windowMs: 1000 });
    expect(l.limit).toBe(10);
    expect(l.windowMs).toBe(1000);
    for (let i = 0; i < 10; i++) expect(await l.tryAcquire("acct-a")).toEqual({ allowed: true });
    const refused = await l.tryAcquire("acct-a");
    expect(refused.allowed).toBe(false);
    if (refused.allowed) return;
    expect(Number.isInteger(refused.retryAfterMs)).toBe(true);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(1000);
  });

  it("returns the exact delay until the oldest mint leaves the window (Redis time, rounded up to ms)", async () => {
    const l = limiter({ limit: 2, windowMs: 1000 });
    await l.tryAcquire("acct-exact");
    await sleepMs(30);
    await l.tryAcquire("acct-exact");
    const [, oldestScore] = (await admin.zrange(l.keyOf("acct-exact"), "0", "0", "WITHSCORES")) as [string, string];
    const oldestUs = Number(oldestScore);
    const beforeUs = await redisNowUs();
    const refused = await l.tryAcquire("acct-exact");
    const afterUs = await redisNowUs();
    expect(refused.allowed).toBe(false);
    if (refused.allowed) return;
    // The script read TIME somewhere between the two reads.
    expect(refused.retryAfterMs).toBeGreaterThanOrEqual(Math.ceil((oldestUs + 1_000_000 - afterUs) / 1000));
    expect(refused.retryAfterMs).toBeLessThanOrEqual(Math.ceil((oldestUs + 1_000_000 - beforeUs) / 1000));
    // The oldest of two, taken ~30 ms apart, decides; not the newest.
    expect(refused.retryAfterMs).toBeLessThan(1000 - 20);
  });

  it("admits again after exactly retryAfterMs, and refusals in between do not count", async () => {
    const l = limiter({ limit: 3, windowMs: 200 });
    for (let i = 0; i < 3; i++) expect((await l.tryAcquire("acct-wait")).allowed).toBe(true);
    let refused = await l.tryAcquire("acct-wait");
    // Several refusals: had any of them counted, the set would still be full
    // when the oldest admission leaves.
    for (let i = 0; i < 5; i++) refused = await l.tryAcquire("acct-wait");
    expect(refused.allowed).toBe(false);
    if (refused.allowed) return;
    expect(await admin.zcard(l.keyOf("acct-wait"))).toBe(3);
    await sleepMs(refused.retryAfterMs);
    expect(await l.tryAcquire("acct-wait")).toEqual({ allowed: true });
  });

  it("a refusal adds nothing to the account's window", async () => {
    const l = limiter({ limit: 2, windowMs: 1000 });
    await l.tryAcquire("acct-nocount");
    await l.tryAcquire("acct-nocount");
    const key = l.keyOf("acct-nocount");
    const membersBefore = await admin.zrange(key, "0", "-1");
    for (let i = 0; i < 20; i++) expect((await l.tryAcquire("acct-nocount")).allowed).toBe(false);
    expect(await admin.zrange(key, "0", "-1")).toEqual(membersBefore);
  });

  it("keeps accounts independent", async () => {
    const l = limiter({ limit: 3, windowMs: 1000 });
    for (let i = 0; i < 3; i++) await l.tryAcquire("acct-full");
    expect((await l.tryAcquire("acct-full")).allowed).toBe(false);
    for (let i = 0; i < 3; i++) expect(await l.tryAcquire("acct-other")).toEqual({ allowed: true });
    expect((await l.tryAcquire("acct-other")).allowed).toBe(false);
  });

  it("admits exactly `limit` of 50 concurrent calls for one account", async () => {
    const l = limiter({ limit: 10, windowMs: 1000 });
    const decisions = await Promise.all(Array.from({ length: 50 }, () => Promise.resolve(l.tryAcquire("acct-burst"))));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    for (const d of decisions) if (!d.allowed) expect(d.retryAfterMs).toBeGreaterThan(0);
    // Members are unique even when admitted in the same microsecond.
    expect(await admin.zcard(l.keyOf("acct-burst"))).toBe(10);
  });

  it("enforces one global limit across two instances (two connections)", async () => {
    const keyPrefix = `${RUN_PREFIX}${testSeq}:shared:`;
    const a = limiter({ limit: 10, windowMs: 1000, keyPrefix });
    const b = limiter({ limit: 10, windowMs: 1000, keyPrefix });
    const calls = Array.from({ length: 15 }, (_, i) => Promise.resolve((i % 2 === 0 ? a : b).tryAcquire("acct-global")));
    const decisions = await Promise.all(calls);
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    expect((await a.tryAcquire("acct-global")).allowed).toBe(false);
    expect((await b.tryAcquire("acct-global")).allowed).toBe(false);
  });

  it("puts a TTL of one window on each key, so idle accounts disappear by themselves", async () => {
    const l = limiter({ limit: 5, windowMs: 200 });
    await l.tryAcquire("acct-ttl");
    const key = l.keyOf("acct-ttl");
    expect(key).toBe(`${RUN_PREFIX}${testSeq}:rl:{acct-ttl}`);
    const pttl = await admin.pttl(key);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(200);
    expect(await l.sweepIdle()).toBe(0);
    await sleepMs(250);
    expect(await admin.exists(key)).toBe(0);
  });

  it("rejects a limit or window that is not a positive integer", () => {
    expect(() => createRedisRateLimiter({ url: REDIS_URL, limit: 0, windowMs: 1000, failOpen: false })).toThrow(/limit/);
    expect(() => createRedisRateLimiter({ url: REDIS_URL, limit: 10, windowMs: 0.5, failOpen: false })).toThrow(/window/);
  });
});

describe("redis rate limiter: when Redis cannot answer", () => {
  it("is healthy when Redis answers", async () => {
    const l = limiter();
    expect(await l.healthy()).toBe(true);
  });

  it("fails closed with UnavailableError when Redis is unreachable, and is not healthy", async () => {
    const log = recordingLogger();
    const l = limiter({ url: CLOSED_URL, failOpen: false, logger: log });
    await expect(l.tryAcquire("acct-down")).rejects.toMatchObject({ code: "UNAVAILABLE", name: "UnavailableError" });
    await expect(l.tryAcquire("acct-down")).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(await l.healthy()).toBe(false);
    expect(log.errors).toHaveLength(0);
  });

  it("fails open when asked: allows and logs at error level, once per interval", async () => {
    const clock = new FakeClock();
    const log = recordingLogger();
    const l = limiter({ url: CLOSED_URL, failOpen: true, logger: log, clock, logIntervalMs: 5000 });
    for (let i = 0; i < 3; i++) expect(await l.tryAcquire("acct-open")).toEqual({ allowed: true });
    expect(log.errors).toHaveLength(1);
    expect(log.errors[0]?.msg).toMatch(/FAILING OPEN/);
    await clock.advance(5000);
    expect(await l.tryAcquire("acct-open")).toEqual({ allowed: true });
    expect(log.errors).toHaveLength(2);
    expect(log.errors[1]?.obj).toMatchObject({ silenced: 2 });
    expect(await l.healthy()).toBe(false);
  });

  it("times out a call to a Redis that does not reply, and stays usable once it replies again", async () => {
    const proxy = new ChaosProxy();
    await proxy.start();
    try {
      const l = limiter({ url: proxy.url, limit: 2, windowMs: 1000, commandTimeoutMs: 150 });
      expect(await l.tryAcquire("acct-hang")).toEqual({ allowed: true });
      proxy.freeze();
      const start = performance.now();
      await expect(l.tryAcquire("acct-hang")).rejects.toMatchObject({ code: "UNAVAILABLE" });
      expect(performance.now() - start).toBeLessThan(1000);
      proxy.thaw();
      // The timed-out call reached Redis late and counted: a timeout can only
      // err towards refusing, never towards admitting too many.
      expect((await l.tryAcquire("acct-hang")).allowed).toBe(false);
      expect(await admin.zcard(l.keyOf("acct-hang"))).toBe(2);
      expect(await l.healthy()).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it("times out the first connection when the handshake never completes", async () => {
    const proxy = new ChaosProxy();
    proxy.freeze();
    await proxy.start();
    try {
      const l = limiter({ url: proxy.url, connectTimeoutMs: 200 });
      const start = performance.now();
      await expect(l.tryAcquire("acct-handshake")).rejects.toMatchObject({ code: "UNAVAILABLE" });
      expect(performance.now() - start).toBeLessThan(1500);
      expect(await l.healthy()).toBe(false);
    } finally {
      await proxy.stop();
    }
  });

  it("fails fast while Redis is gone and reconnects by itself when it returns", async () => {
    const proxy = new ChaosProxy();
    await proxy.start();
    try {
      const l = limiter({ url: proxy.url, limit: 5, windowMs: 60_000, commandTimeoutMs: 2000 });
      expect(await l.tryAcquire("acct-restart")).toEqual({ allowed: true });
      await proxy.stop();
      await until(async () => !(await l.healthy()), 2000);
      // Let the reconnect backoff grow to several hundred ms. With no offline
      // queue each refusal comes now, not at the next reconnect attempt nor
      // after the 2 s command timeout.
      await sleepMs(600);
      const start = performance.now();
      for (let i = 0; i < 3; i++) {
        await expect(l.tryAcquire("acct-restart")).rejects.toMatchObject({ code: "UNAVAILABLE" });
      }
      expect(performance.now() - start).toBeLessThan(250);
      await proxy.start();
      await until(() => l.healthy(), 5000);
      expect(await l.tryAcquire("acct-restart")).toEqual({ allowed: true });
      // The refused call was not queued and replayed: two admissions counted.
      expect(await admin.zcard(l.keyOf("acct-restart"))).toBe(2);
    } finally {
      await proxy.stop();
    }
  });

  it("refuses UNAVAILABLE after close and reports unhealthy", async () => {
    const l = limiter();
    expect((await l.tryAcquire("acct-closed")).allowed).toBe(true);
    await l.close();
    await l.close();
    await expect(l.tryAcquire("acct-closed")).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(await l.healthy()).toBe(false);
  });
});
