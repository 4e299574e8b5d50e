/**
 * The in-process `IdempotencyStore`: one Map of scoped keys to entries that
 * are either in flight (claimed by a running call) or completed (a stored
 * success that replays until its TTL passes). Suits one replica; several
 * replicas need a shared store.
 */
import { assert, UnavailableError } from "../../domain/errors.js";
import { differingFields, fingerprint, parseFingerprint, storedResultId } from "../../domain/model.js";
import type { CanonicalRequest, IdempotencyScope, StoredResult } from "../../domain/model.js";
import type { BeginOutcome, Clock, IdempotencyClaim, IdempotencyStore } from "../../domain/ports.js";
import { fail, ok, type Result } from "../../domain/result.js";

export interface MemoryIdempotencyStoreOptions {
  /** How long a success replays, in monotonic ms counted from its completion (> 0). */
  readonly ttlMs: number;
  /** Most keys held at once, in flight and completed together (an integer, 1 or more). */
  readonly maxKeys: number;
  readonly clock: Clock;
}

/**
 * `retryAfterMs` of IDEMPOTENCY_KEY_IN_USE. The store cannot know how long the
 * first call will still run; a mint or transfer normally settles within a few
 * milliseconds, so 50 ms lets the retry land after it (and replay) without
 * the client spinning.
 */
export const IN_USE_RETRY_AFTER_MS = 50;

/**
 * `retryAfterMs` of IDEMPOTENCY_STORE_FULL when every held key is in flight,
 * so no expiry time is known: in-flight calls settle quickly, one second is a
 * gentle back-off.
 */
export const STORE_FULL_RETRY_AFTER_MS = 1000;

interface InFlightEntry {
  readonly kind: "inFlight";
  readonly fp: string;
  /** Identity of the holder: only this object may complete or release the key. */
  readonly claim: IdempotencyClaim;
  /** Created by the first duplicate that waits and shared by all later ones; resolved when the claim settles. */
  settled: Promise<void> | null;
  wake: (() => void) | null;
}

/** Kept small on purpose (no request object, no closures): the fingerprint also yields the fields. */
interface CompletedEntry {
  readonly kind: "completed";
  readonly fp: string;
  readonly result: StoredResult;
  /** Monotonic ms; the key is expired from this instant on. */
  readonly expiresAtMs: number;
}

type Entry = InFlightEntry | CompletedEntry;

/**
 * Completed entries are (re)inserted at the end of the Map when they complete,
 * and every entry has the same TTL, so the Map's insertion order lists
 * completed entries in expiry order. Sweeping therefore walks from the front
 * and stops at the first live one: O(deleted), plus the in-flight entries it
 * steps over (bounded by the number of concurrent calls).
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly ttlMs: number;
  private readonly maxKeys: number;
  private readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(options: MemoryIdempotencyStoreOptions) {
    assert(Number.isFinite(options.ttlMs) && options.ttlMs > 0, `idempotency TTL must be > 0 ms, got ${options.ttlMs}`);
    assert(Number.isSafeInteger(options.maxKeys) && options.maxKeys >= 1, `idempotency maxKeys must be an integer >= 1, got ${options.maxKeys}`);
    this.ttlMs = options.ttlMs;
    this.maxKeys = options.maxKeys;
    this.clock = options.clock;
  }

  /**
   * Claims the key, replays its stored result, or waits for the call holding
   * it. Failures: IDEMPOTENCY_KEY_REUSED (another request; `fields` sorted),
   * IDEMPOTENCY_KEY_IN_USE (still in flight at `deadlineMs`, a monotonic ms on
   * the clock or Infinity; retry after IN_USE_RETRY_AFTER_MS),
   * IDEMPOTENCY_STORE_FULL (`maxKeys` held after dropping the expired ones).
   * Throws UnavailableError once closed.
   */
  async begin(scope: IdempotencyScope, key: string, request: CanonicalRequest, deadlineMs: number): Promise<Result<BeginOutcome>> {
    assert(!Number.isNaN(deadlineMs), "deadlineMs must be a number or Infinity");
    const mapKey = scopedKey(scope, key);
    const fp = fingerprint(request);
    for (;;) {
      this.assertOpen();
      const entry = this.entries.get(mapKey);
      if (entry !== undefined && entry.kind === "completed") {
        if (this.clock.nowMs() < entry.expiresAtMs) {
          if (entry.fp === fp) return ok({ kind: "replay", result: entry.result });
          return fail({ code: "IDEMPOTENCY_KEY_REUSED", key, fields: differingFields(parseFingerprint(entry.fp), request) });
        }
        // Expired keys are removed, not only hidden; the key is free again.
        this.entries.delete(mapKey);
      } else if (entry !== undefined) {
        if (entry.fp !== fp) {
          return fail({ code: "IDEMPOTENCY_KEY_REUSED", key, fields: differingFields(entry.claim.request, request) });
        }
        if (!(await this.waitForSettle(entry, deadlineMs))) {
          return fail({ code: "IDEMPOTENCY_KEY_IN_USE", key, retryAfterMs: IN_USE_RETRY_AFTER_MS });
        }
        // Settled: completed (replay), released (claim it) or already re-claimed
        // by another waiter (wait again); look again.
        continue;
      }

      if (this.entries.size >= this.maxKeys) {
        this.sweep(Infinity);
        if (this.entries.size >= this.maxKeys) {
          return fail({ code: "IDEMPOTENCY_STORE_FULL", maxKeys: this.maxKeys, retryAfterMs: this.untilFirstExpiryMs() });
        }
      }
      const claim: IdempotencyClaim = { scope, key, request };
      this.entries.set(mapKey, { kind: "inFlight", fp, claim, settled: null, wake: null });
      return ok({ kind: "claimed", claim });
    }
  }

  /**
   * Stores `result` under the claim; it replays for `ttlMs` from now. Throws
   * (a bug) unless `claim` is the one holding its key. A no-op once closed.
   */
  async complete(claim: IdempotencyClaim, result: StoredResult): Promise<void> {
    if (this.closed) return;
    assert(result.scope === claim.scope, `a ${result.scope} result cannot complete a ${claim.scope} key`);
    const mapKey = scopedKey(claim.scope, claim.key);
    const entry = this.entries.get(mapKey);
    assert(entry !== undefined && entry.kind === "inFlight" && entry.claim === claim, `complete() of a claim that is not in flight (key ${claim.key})`);
    // Re-inserted at the end to keep completed entries in expiry order.
    this.entries.delete(mapKey);
    this.entries.set(mapKey, { kind: "completed", fp: entry.fp, result, expiresAtMs: this.clock.nowMs() + this.ttlMs });
    entry.wake?.();
  }

  /**
   * Frees the key without storing anything and wakes its waiters. A no-op when
   * `claim` no longer holds the key (already completed or released), so
   * cleanup paths may call it unconditionally without ever freeing a key that
   * another call holds.
   */
  async release(claim: IdempotencyClaim): Promise<void> {
    const mapKey = scopedKey(claim.scope, claim.key);
    const entry = this.entries.get(mapKey);
    if (entry === undefined || entry.kind !== "inFlight" || entry.claim !== claim) return;
    this.entries.delete(mapKey);
    entry.wake?.();
  }

  /**
   * Deletes a completed key (expired or not) so it may be used again. A no-op
   * when absent, and also when in flight: an in-flight entry belongs to a
   * call still running (a new use of the key after an earlier forget or
   * expiry), and deleting it would let a second call claim the same key at
   * once and break the first call's complete().
   */
  async forget(scope: IdempotencyScope, key: string, resultId: string): Promise<void> {
    const mapKey = scopedKey(scope, key);
    const entry = this.entries.get(mapKey);
    if (entry?.kind === "completed" && storedResultId(entry.result) === resultId) this.entries.delete(mapKey);
  }

  /** Deletes up to `maxKeys` expired keys, oldest first; returns how many. */
  async sweepExpired(maxKeys: number): Promise<number> {
    return this.sweep(maxKeys);
  }

  /** Keys held, in flight and completed, expired ones not yet swept included. */
  async size(): Promise<number> {
    return this.entries.size;
  }

  /**
   * Drops every key and wakes the waiters, whose begin() then throws
   * UnavailableError (as does any later begin). Shutdown drains calls before
   * closing adapters, so holders finishing later are ignored, not failed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const inFlight: InFlightEntry[] = [];
    for (const entry of this.entries.values()) if (entry.kind === "inFlight") inFlight.push(entry);
    this.entries.clear();
    for (const entry of inFlight) entry.wake?.();
  }

  private sweep(maxKeys: number): number {
    const nowMs = this.clock.nowMs();
    let deleted = 0;
    // Deleting the entry just visited is safe during Map iteration.
    for (const [mapKey, entry] of this.entries) {
      if (deleted >= maxKeys) break;
      if (entry.kind === "inFlight") continue;
      if (nowMs < entry.expiresAtMs) break;
      this.entries.delete(mapKey);
      deleted++;
    }
    return deleted;
  }

  /** Ms until the first completed key expires (called right after a sweep, so > 0). */
  private untilFirstExpiryMs(): number {
    for (const entry of this.entries.values()) {
      if (entry.kind === "completed") return entry.expiresAtMs - this.clock.nowMs();
    }
    return STORE_FULL_RETRY_AFTER_MS;
  }

  /**
   * Resolves true when the entry settles (completed or released), false when
   * `deadlineMs` comes first. All waiters share the entry's one promise; each
   * holds only its own deadline timer, cancelled when the entry settles.
   */
  private waitForSettle(entry: InFlightEntry, deadlineMs: number): Promise<boolean> {
    const delayMs = deadlineMs - this.clock.nowMs();
    if (delayMs <= 0) return Promise.resolve(false);
    if (entry.settled === null) {
      entry.settled = new Promise<void>((resolve) => {
        entry.wake = resolve;
      });
    }
    const settled = entry.settled;
    if (delayMs === Infinity) return settled.then(() => true);
    return new Promise<boolean>((resolve) => {
      const cancel = this.clock.setTimer(delayMs, () => resolve(false));
      void settled.then(() => {
        cancel();
        resolve(true);
      });
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new UnavailableError("the idempotency store is closed (shutting down)");
  }
}

/** Scopes keys per RPC; NUL cannot occur in a key (printable ASCII only). */
function scopedKey(scope: IdempotencyScope, key: string): string {
  return scope + "\u0000" + key;
}
