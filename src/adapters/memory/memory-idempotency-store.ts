/**
 * The in-process `IdempotencyStore`: per scope, a Map of keys in flight
 * (claimed by a running call) and a Map of completed keys (a stored success
 * that replays until its TTL passes). Suits one replica; several replicas
 * need a shared store.
 */
import { KEY_IN_USE_RETRY_AFTER_MS, STORE_FULL_RETRY_AFTER_MS } from "../../domain/limits.js";
import { assert, UnavailableError } from "../../domain/errors.js";
import { differingFields, requestOfRecord, sameRequest, storedResultId } from "../../domain/model.js";
import type { CanonicalRequest, IdempotencyScope, MintRecord, RedemptionRecord, StoredResult, TransferRecord } from "../../domain/model.js";
import type { BeginOutcome, Clock, IdempotencyClaim, IdempotencyStore } from "../../domain/ports.js";
import { fail, ok, type Result } from "../../domain/result.js";

export interface MemoryIdempotencyStoreOptions {
  /** How long a success replays, in monotonic ms counted from its completion (> 0). */
  readonly ttlMs: number;
  /** Most keys held at once, in flight and completed together (an integer, 1 or more). */
  readonly maxKeys: number;
  readonly clock: Clock;
}

interface InFlightEntry {
  /** Identity of the holder: only this object may complete or release the key. */
  readonly claim: IdempotencyClaim;
  /** Created by the first duplicate that waits and shared by all later ones; resolved when the claim settles. */
  settled: Promise<void> | null;
  wake: (() => void) | null;
}

/**
 * Kept small on purpose: the key string (the Map's key) and the record are
 * the ones the ledger holds anyway, and the request is not kept when it is
 * the one the record answers (`requestOfRecord`, always so for the core's
 * calls), so a key adds little more than this object. No fingerprint string
 * is built: requests are compared field by field, which is what fingerprint
 * equality means.
 */
interface CompletedEntry {
  /** The claim's request; null when it equals `requestOfRecord(record)`. */
  readonly request: CanonicalRequest | null;
  /** The stored result's record; the scope (which KeySpace) says which kind. */
  readonly record: MintRecord | TransferRecord | RedemptionRecord;
  /** Monotonic ms; the key is expired from this instant on. */
  readonly expiresAtMs: number;
}

/**
 * The keys of one scope. Keys in flight and completed keys live in separate
 * Maps: a completed key is appended to `completed` when it completes, and
 * every key has the same TTL, so each `completed` Map's insertion order is
 * its expiry order. Sweeping walks the fronts of the scopes' `completed` Maps
 * (oldest first across both) and stops at the first live key: O(deleted).
 * Keys are the caller's strings as they are (no scope prefix to concatenate).
 */
class KeySpace {
  readonly inFlight = new Map<string, InFlightEntry>();
  readonly completed = new Map<string, CompletedEntry>();

  constructor(readonly scope: IdempotencyScope) {}

  /** The stored result of a completed entry of this scope. */
  result(entry: CompletedEntry): StoredResult {
    if (this.scope === "redeem") return { scope: "redeem", redemption: entry.record as RedemptionRecord };
    return this.scope === "mint"
      ? { scope: "mint", mint: entry.record as MintRecord }
      : { scope: "transfer", transfer: entry.record as TransferRecord };
  }
}

function recordOf(result: StoredResult): MintRecord | TransferRecord | RedemptionRecord {
  if (result.scope === "redeem") return result.redemption;
  return result.scope === "mint" ? result.mint : result.transfer;
}

/** `claimNow`'s answer when a call with the same key and request is in flight. */
export const KEY_BUSY = "busy";

export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly ttlMs: number;
  private readonly maxKeys: number;
  private readonly clock: Clock;
  private readonly mintKeys = new KeySpace("mint");
  private readonly transferKeys = new KeySpace("transfer");
  /** RedeemUsdc keys (already scoped to the caller by the core). */
  private readonly redeemKeys = new KeySpace("redeem");
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
   * the clock or Infinity; retry after KEY_IN_USE_RETRY_AFTER_MS),
   * IDEMPOTENCY_STORE_FULL (`maxKeys` held after dropping the expired ones).
   * Throws UnavailableError once closed.
   */
  async begin(scope: IdempotencyScope, key: string, request: CanonicalRequest, deadlineMs: number): Promise<Result<BeginOutcome>> {
    assert(!Number.isNaN(deadlineMs), "deadlineMs must be a number or Infinity");
    for (;;) {
      const found = this.claimNow(scope, key, request);
      if (found !== KEY_BUSY) {
        if (found.ok && found.value.kind === "claimed") this.hold(found.value.claim);
        return found;
      }
      const flying = this.space(scope).inFlight.get(key) as InFlightEntry;
      if (!(await this.waitForSettle(flying, deadlineMs))) {
        return fail({ code: "IDEMPOTENCY_KEY_IN_USE", key, retryAfterMs: KEY_IN_USE_RETRY_AFTER_MS });
      }
      // Settled: completed (replay), released (claim it) or already re-claimed
      // by another waiter (wait again); look again.
    }
  }

  /**
   * `begin` without waiting, for a caller that completes or releases the
   * claim in the same synchronous stretch (the memory exactly-once store):
   * the key's one look-up. KEY_BUSY when a call holding the key with the same
   * request is in flight (then `begin` waits). The claim is not entered in
   * the in-flight table: nothing can look at the key before the stretch ends,
   * and a caller that must wait first enters it with `hold`.
   */
  claimNow(scope: IdempotencyScope, key: string, request: CanonicalRequest): Result<BeginOutcome> | typeof KEY_BUSY {
    this.assertOpen();
    const space = this.space(scope);
    const done = space.completed.get(key);
    if (done !== undefined) {
      if (this.clock.nowMs() < done.expiresAtMs) {
        const stored = done.request ?? requestOfRecord(done.record);
        if (sameRequest(stored, request)) return ok({ kind: "replay", result: space.result(done) });
        return fail({ code: "IDEMPOTENCY_KEY_REUSED", key, fields: differingFields(stored, request) });
      }
      // Expired keys are removed, not only hidden; the key is free again.
      space.completed.delete(key);
    } else if (space.inFlight.size !== 0) {
      const flying = space.inFlight.get(key);
      if (flying !== undefined) {
        if (!sameRequest(flying.claim.request, request)) {
          return fail({ code: "IDEMPOTENCY_KEY_REUSED", key, fields: differingFields(flying.claim.request, request) });
        }
        return KEY_BUSY;
      }
    }
    if (this.keyCount() >= this.maxKeys) {
      this.sweep(Infinity);
      if (this.keyCount() >= this.maxKeys) {
        return fail({ code: "IDEMPOTENCY_STORE_FULL", maxKeys: this.maxKeys, retryAfterMs: this.untilFirstExpiryMs() });
      }
    }
    return ok({ kind: "claimed", claim: { scope, key, request } });
  }

  /** Enters a claim made by `claimNow` in the in-flight table, before its holder waits for anything. */
  hold(claim: IdempotencyClaim): void {
    this.space(claim.scope).inFlight.set(claim.key, { claim, settled: null, wake: null });
  }

  /**
   * Stores `result` under the claim; it replays for `ttlMs` from now. Throws
   * (a bug) unless `claim` is the one holding its key. A no-op once closed.
   */
  async complete(claim: IdempotencyClaim, result: StoredResult): Promise<void> {
    this.completeNow(claim, result);
  }

  private completeNow(claim: IdempotencyClaim, result: StoredResult): void {
    if (this.closed) return;
    const space = this.space(claim.scope);
    const entry = space.inFlight.get(claim.key);
    assert(entry !== undefined && entry.claim === claim, `complete() of a claim that is not in flight (key ${claim.key})`);
    space.inFlight.delete(claim.key);
    this.store(space, claim, result);
    entry.wake?.();
  }

  /**
   * `complete` for a claim from `claimNow` never entered with `hold`, in the
   * stretch that made it: the key's one write. Throws (a bug) when the key is
   * held or stored meanwhile, which that stretch rules out.
   */
  storeNow(claim: IdempotencyClaim, result: StoredResult): void {
    if (this.closed) return;
    const space = this.space(claim.scope);
    assert(!space.inFlight.has(claim.key) && !space.completed.has(claim.key), `storeNow() of a key another call holds (key ${claim.key})`);
    this.store(space, claim, result);
  }

  private store(space: KeySpace, claim: IdempotencyClaim, result: StoredResult): void {
    assert(result.scope === claim.scope, `a ${result.scope} result cannot complete a ${claim.scope} key`);
    const record = recordOf(result);
    const request = sameRequest(requestOfRecord(record), claim.request) ? null : claim.request;
    // Appended at the end, which keeps completed keys in expiry order.
    space.completed.set(claim.key, { request, record, expiresAtMs: this.clock.nowMs() + this.ttlMs });
  }

  /**
   * Frees the key without storing anything and wakes its waiters. A no-op when
   * `claim` no longer holds the key (already completed or released), so
   * cleanup paths may call it unconditionally without ever freeing a key that
   * another call holds.
   */
  async release(claim: IdempotencyClaim): Promise<void> {
    const space = this.space(claim.scope);
    const entry = space.inFlight.get(claim.key);
    if (entry === undefined || entry.claim !== claim) return;
    space.inFlight.delete(claim.key);
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
    const space = this.space(scope);
    const entry = space.completed.get(key);
    if (entry !== undefined && storedResultId(space.result(entry)) === resultId) space.completed.delete(key);
  }

  /** Deletes up to `maxKeys` expired keys, oldest first; returns how many. */
  async sweepExpired(maxKeys: number): Promise<number> {
    return this.sweep(maxKeys);
  }

  /** Keys held, in flight and completed, expired ones not yet swept included. */
  async size(): Promise<number> {
    return this.keyCount();
  }

  /**
   * Drops every key and wakes the waiters, whose begin() then throws
   * UnavailableError (as does any later begin). Shutdown drains calls before
   * closing adapters, so holders finishing later are ignored, not failed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const inFlight = [...this.mintKeys.inFlight.values(), ...this.transferKeys.inFlight.values(), ...this.redeemKeys.inFlight.values()];
    for (const space of [this.mintKeys, this.transferKeys, this.redeemKeys]) {
      space.inFlight.clear();
      space.completed.clear();
    }
    for (const entry of inFlight) entry.wake?.();
  }

  private space(scope: IdempotencyScope): KeySpace {
    if (scope === "redeem") return this.redeemKeys;
    return scope === "mint" ? this.mintKeys : this.transferKeys;
  }

  private keyCount(): number {
    return (
      this.mintKeys.inFlight.size +
      this.mintKeys.completed.size +
      this.transferKeys.inFlight.size +
      this.transferKeys.completed.size +
      this.redeemKeys.inFlight.size +
      this.redeemKeys.completed.size
    );
  }

  /** Deletes up to `maxKeys` expired completed keys, the one expiring first first, across both scopes. */
  private sweep(maxKeys: number): number {
    const nowMs = this.clock.nowMs();
    const mints = this.mintKeys.completed;
    const transfers = this.transferKeys.completed;
    // Deleting the entry just visited is safe during Map iteration.
    const mintIt = mints.entries();
    const transferIt = transfers.entries();
    let m = mintIt.next();
    let t = transferIt.next();
    let deleted = 0;
    while (deleted < maxKeys) {
      if (!m.done && (t.done || m.value[1].expiresAtMs <= t.value[1].expiresAtMs)) {
        if (nowMs < m.value[1].expiresAtMs) break;
        mints.delete(m.value[0]);
        m = mintIt.next();
      } else if (!t.done) {
        if (nowMs < t.value[1].expiresAtMs) break;
        transfers.delete(t.value[0]);
        t = transferIt.next();
      } else {
        break;
      }
      deleted++;
    }
    // Redemption keys are few: their own front is swept with what is left of
    // the budget (still oldest first within the scope, still O(deleted)).
    for (const [key, entry] of this.redeemKeys.completed) {
      if (deleted >= maxKeys || nowMs < entry.expiresAtMs) break;
      this.redeemKeys.completed.delete(key);
      deleted++;
    }
    return deleted;
  }

  /** Ms until the first completed key expires (called right after a sweep, so > 0). */
  private untilFirstExpiryMs(): number {
    let first = Infinity;
    for (const space of [this.mintKeys, this.transferKeys, this.redeemKeys]) {
      for (const entry of space.completed.values()) {
        first = Math.min(first, entry.expiresAtMs);
        break;
      }
    }
    return first === Infinity ? STORE_FULL_RETRY_AFTER_MS : first - this.clock.nowMs();
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
