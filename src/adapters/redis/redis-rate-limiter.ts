/**
 * The shared rate limiter: a sliding-window log per account in Redis, so every
 * replica of the service counts against one limit. It implements the same
 * `RateLimiter` port as the in-process limiter and is chosen at wiring when
 * MINT_REDIS_URL is set.
 *
 * Each decision is one Lua script (EVALSHA through ioredis `defineCommand`),
 * so the trim, the count and the add happen atomically on the server, and the
 * time comes from Redis `TIME`: replicas never compare their own clocks.
 */
import type { AdapterLogger } from "../../logger.js";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { RedisOptions } from "ioredis";
import { systemClock, type Clock } from "../../domain/clock.js";
import { UnavailableError, assert } from "../../domain/errors.js";
import { noMetrics, type LimitDecision, type MetricsSink, type Probe, type RateLimiter } from "../../domain/ports.js";

export interface RedisRateLimiterOptions {
  /** redis:// or rediss:// URL, e.g. `redis://127.0.0.1:6379/0`. */
  readonly url: string;
  /** Mints per account per window (a positive integer). */
  readonly limit: number;
  /** Sliding window length in milliseconds (a positive integer). */
  readonly windowMs: number;
  /**
   * When Redis cannot answer: false throws `UnavailableError` (the call is
   * refused UNAVAILABLE); true lets the mint through and logs at error level.
   */
  readonly failOpen: boolean;
  /** Prepended to every key; keys are `${keyPrefix}rl:{accountId}`. Default "usdc-mint:". */
  readonly keyPrefix?: string;
  readonly logger?: AdapterLogger;
  /** Hears every failed acquisition command (connection down, timeout, script error). */
  readonly metrics?: MetricsSink;
  /** Longest wait for one Redis reply before the call counts as unavailable. Default 500 ms. */
  readonly commandTimeoutMs?: number;
  /** Longest wait for the first connection (and for each TCP connect). Default 2000 ms. */
  readonly connectTimeoutMs?: number;
  /** Shortest gap between two repeated log lines about Redis failures. Default 5000 ms. */
  readonly logIntervalMs?: number;
  /** Paces the log lines only; the window itself runs on Redis server time. */
  readonly clock?: Clock;
}

export interface RedisRateLimiter extends RateLimiter, Probe {
  /** The key holding `accountId`'s window, for operators and tests. */
  keyOf(accountId: string): string;
}

const DEFAULT_KEY_PREFIX = "usdc-mint:";
const DEFAULT_COMMAND_TIMEOUT_MS = 500;
const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;
const DEFAULT_LOG_INTERVAL_MS = 5_000;
/** Reconnect backoff cap: short, so a restarted Redis is used again within seconds. */
const MAX_RECONNECT_DELAY_MS = 2_000;

/**
 * KEYS[1]: the account's sorted set (score = admission time in µs of Redis time).
 * ARGV: limit, window in µs, window in ms, a suffix unique to this call.
 * Returns {1, 0} when admitted, {0, retryAfterMs} when refused.
 *
 * Numbers pass through string.format('%d') because Lua 5.1 prints large
 * numbers in %.14g, which would round a microsecond timestamp (~1.8e15).
 * A member that scores exactly now - window has left the window, so a retry
 * after ceil((oldest + window - now) / 1000) ms is admitted. Refusals write
 * nothing; the set never holds more than `limit` members.
 */
const ACQUIRE_LUA = `
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2])
local window_ms = tonumber(ARGV[3])
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now_us - window_us))
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  local now_str = string.format('%d', now_us)
  redis.call('ZADD', KEYS[1], now_str, now_str .. ':' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window_ms)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local retry_ms = math.ceil((tonumber(oldest[2]) + window_us - now_us) / 1000)
-- A Redis clock stepped back could leave the oldest member in the future;
-- never ask a caller to wait longer than one window, nor less than 1 ms.
if retry_ms > window_ms then retry_ms = window_ms end
if retry_ms < 1 then retry_ms = 1 end
return {0, retry_ms}
`;

interface LimiterCommands {
  usdcMintRateAcquire(key: string, limit: number, windowUs: number, windowMs: number, memberSuffix: string): Promise<unknown>;
}

/**
 * Connects to Redis (in the background; the factory never blocks) and returns
 * the limiter. `tryAcquire` throws `UnavailableError` when Redis is down,
 * times out or fails, unless `failOpen`; `healthy` never throws.
 */
export function createRedisRateLimiter(options: RedisRateLimiterOptions): RedisRateLimiter {
  const { url, limit, windowMs, failOpen } = options;
  assert(Number.isSafeInteger(limit) && limit >= 1, `rate limit must be a positive integer, got ${limit}`);
  assert(Number.isSafeInteger(windowMs) && windowMs >= 1, `rate window must be a positive integer of ms, got ${windowMs}`);
  const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const logger = options.logger;
  const metrics = options.metrics ?? noMetrics;
  const clock = options.clock ?? systemClock;
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const logIntervalMs = options.logIntervalMs ?? DEFAULT_LOG_INTERVAL_MS;

  const redisOptions: RedisOptions = {
    // Without the offline queue a call made while disconnected fails at once
    // instead of waiting; and a queued acquisition would otherwise be sent
    // after reconnecting, counting a mint whose caller was already refused.
    enableOfflineQueue: false,
    // Same reason for commands in flight when the connection drops: reject
    // them now (0 retries) rather than resend them later.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    // A reply that never comes (a hung server, a black-holed network) must
    // not hold a mint call; a command that times out may still have counted,
    // which only errs towards refusing.
    commandTimeout: commandTimeoutMs,
    connectTimeout: connectTimeoutMs,
    // Keep reconnecting forever, with a short capped backoff, so the limiter
    // heals by itself when Redis returns.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times - 1, 16), MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 100),
    connectionName: "usdc-mint-rate-limiter",
  };
  const redis = new Redis(url, redisOptions) as Redis & LimiterCommands;
  redis.defineCommand("usdcMintRateAcquire", { numberOfKeys: 1, lua: ACQUIRE_LUA });

  // The first connection may still be in progress when the first call comes:
  // calls wait for it (at most `connectTimeoutMs`) instead of failing for
  // lack of an offline queue. Once it is settled nothing waits any more.
  let initialConnect: Promise<void> | null = new Promise<void>((resolve, reject) => {
    const cancelTimer = clock.setTimer(connectTimeoutMs, () => settle(new Error(`no connection to Redis within ${connectTimeoutMs} ms`)));
    const onReady = (): void => settle(null);
    const onError = (err: unknown): void => settle(err);
    const onEnd = (): void => settle(new Error("Redis connection closed"));
    function settle(err: unknown): void {
      cancelTimer();
      redis.off("ready", onReady);
      redis.off("error", onError);
      redis.off("end", onEnd);
      initialConnect = null;
      if (err === null) resolve();
      else reject(err);
    }
    redis.once("ready", onReady);
    redis.once("error", onError);
    redis.once("end", onEnd);
  });
  // Rejections are reported by the calls that await it; none must go unhandled.
  initialConnect.catch(() => undefined);

  // Redis errors repeat on every reconnect attempt and on every refused call;
  // one line per interval (with the count of the silenced ones) is enough.
  const connectionLog = new LogPacer(clock, logIntervalMs);
  const failOpenLog = new LogPacer(clock, logIntervalMs);
  redis.on("error", (err: unknown) => {
    const silenced = connectionLog.take();
    if (silenced !== null) logger?.warn({ err, silenced }, "rate limiter: Redis connection error");
  });

  const instanceId = randomBytes(6).toString("hex");
  let seq = 0;
  let closed = false;

  async function connected(): Promise<void> {
    if (initialConnect !== null) await initialConnect;
  }

  function keyOf(accountId: string): string {
    // The braces make the account id a hash tag: in Redis Cluster each
    // account's window lives whole on one slot.
    return `${keyPrefix}rl:{${accountId}}`;
  }

  async function tryAcquire(accountId: string): Promise<LimitDecision> {
    let reply: unknown;
    try {
      if (closed) throw new Error("rate limiter is closed");
      await connected();
      // instanceId + sequence keeps members unique across replicas and across
      // calls admitted in the same microsecond.
      reply = await redis.usdcMintRateAcquire(keyOf(accountId), limit, windowMs * 1000, windowMs, `${instanceId}:${++seq}`);
    } catch (err: unknown) {
      metrics.redisCommandError();
      if (failOpen) {
        const silenced = failOpenLog.take();
        if (silenced !== null) {
          logger?.error({ err, accountId, silenced }, "rate limiter: Redis unavailable; FAILING OPEN, mints are not rate limited");
        }
        return { allowed: true };
      }
      throw new UnavailableError(`rate limiter unavailable: ${messageOf(err)}`, { cause: err });
    }
    // Outside the try: a malformed reply is a bug (INTERNAL), never a reason
    // to fail open.
    return decisionOf(reply);
  }

  /**
   * Removes the account's newest member (highest score), atomically on the
   * server. Best effort: if Redis cannot be reached the slot stays counted,
   * which only errs towards refusing, and the caller's own error stands.
   */
  async function giveBack(accountId: string): Promise<void> {
    if (closed) return;
    try {
      await connected();
      await redis.zpopmax(keyOf(accountId));
    } catch (err: unknown) {
      const silenced = connectionLog.take();
      if (silenced !== null) logger?.warn({ err, accountId, silenced }, "rate limiter: could not give a slot back");
    }
  }

  async function healthy(): Promise<boolean> {
    if (closed) return false;
    try {
      await connected();
      return (await redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    if (redis.status === "ready") {
      try {
        // QUIT lets replies in flight arrive first.
        await redis.quit();
        return;
      } catch {
        // Fall through: drop the socket.
      }
    }
    redis.disconnect();
  }

  return {
    limit,
    windowMs,
    tryAcquire,
    giveBack,
    // Keys carry a PEXPIRE of one window, so Redis drops idle accounts itself.
    sweepIdle: () => Promise.resolve(0),
    healthy,
    close,
    keyOf,
  };
}

function decisionOf(reply: unknown): LimitDecision {
  assert(Array.isArray(reply) && reply.length === 2, `unexpected rate limiter reply ${JSON.stringify(reply)}`);
  const [admitted, retryAfterMs] = reply as [unknown, unknown];
  if (admitted === 1) return { allowed: true };
  assert(
    admitted === 0 && typeof retryAfterMs === "number" && Number.isSafeInteger(retryAfterMs) && retryAfterMs >= 1,
    `unexpected rate limiter reply ${JSON.stringify(reply)}`,
  );
  return { allowed: false, retryAfterMs };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Lets one log line through per interval; counts the ones it holds back. */
class LogPacer {
  private lastMs = -Infinity;
  private silenced = 0;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
  ) {}

  /** Null when the line should be dropped; else how many were dropped since the last one. */
  take(): number | null {
    const now = this.clock.nowMs();
    if (now - this.lastMs < this.intervalMs) {
      this.silenced++;
      return null;
    }
    this.lastMs = now;
    const silenced = this.silenced;
    this.silenced = 0;
    return silenced;
  }
}
