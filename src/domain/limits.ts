/**
 * Constants that several parts of the service must agree on, in one place.
 *
 * The retry delays are what RetryInfo tells a refused caller to wait. A mint
 * or transfer holds a key or an account lock for milliseconds, so 50 ms lets a
 * retry land after the call in the way (and replay, or take the lock) without
 * hammering; a whole process at its cap of calls in flight drains more slowly.
 */

/** RetryInfo of IDEMPOTENCY_KEY_IN_USE: a call with the same key is still running. */
export const KEY_IN_USE_RETRY_AFTER_MS = 50;

/** RetryInfo of ACCOUNT_BUSY: too many calls already wait for one account's lock. */
export const ACCOUNT_BUSY_RETRY_AFTER_MS = 50;

/** RetryInfo of OVERLOADED: the process runs its maximum of calls in flight. */
export const OVERLOADED_RETRY_AFTER_MS = 100;

/** RetryInfo of STORE_BUSY: every pooled store connection stayed busy until the caller's deadline. */
export const STORE_BUSY_RETRY_AFTER_MS = 100;

/**
 * RetryInfo of IDEMPOTENCY_STORE_FULL when every held key is in flight, so no
 * expiry time is known: in-flight calls settle quickly, one second is a gentle
 * back-off.
 */
export const STORE_FULL_RETRY_AFTER_MS = 1000;

/**
 * Most expired idempotency keys one sweep deletes. The sweeper repeats while a
 * sweep fills a whole batch, so every store must cap a batch at this same size
 * (a store capping lower would stop the sweeper after one short batch).
 */
export const SWEEP_BATCH_KEYS = 10_000;
