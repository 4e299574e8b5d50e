/**
 * The in-process `ExactlyOnceStore`, built from the memory ledger and the
 * memory key store. Atomicity comes from a gate per idempotency key: a keyed
 * call holds its key's gate from the look-up to the stored result, and a
 * reversal holds the mint's key gate from the reversal to freeing the key, so
 * nothing (a same-key retry, a reconcile) ever sees the ledger and the key
 * disagree. Calls queued on a gate wait holding nothing else.
 */
import type { Clock } from "../../domain/clock.js";
import { markNotApplied, type Failure } from "../../domain/errors.js";
import { differingFields, sameRequest, type AccountState, type CanonicalRequest, type IdempotencyScope, type MintRecord, type RedemptionRecord, type StoredResult, type SupplyState } from "../../domain/model.js";
import type { JournalEntry } from "../../domain/journal.js";
import type { Effect, ExactlyOnceStore, IdempotencyClaim, IdempotencyStore, KeyedCall, LedgerStore, ListMintsQuery, Wait } from "../../domain/ports.js";
import { fail, ok, type Result } from "../../domain/result.js";
import { KEY_IN_USE_RETRY_AFTER_MS } from "../../domain/limits.js";

/** Who holds a key's gate, and who waits behind it. */
interface Gate {
  /** The holder's request; null for a reversal (which never conflicts with a retry of its own mint). */
  readonly request: CanonicalRequest | null;
  /** Woken when the holder leaves (each then tries again); null until someone waits, so the uncontended path allocates no promise. */
  waiters: (() => void)[] | null;
}

export const CANCELLED_WHILE_WAITING: Failure = { code: "CANCELLED", message: "the call was cancelled while it waited; nothing was applied" };

export class MemoryExactlyOnceStore implements ExactlyOnceStore {
  private readonly gates = new Map<string, Gate>();

  constructor(
    readonly ledger: LedgerStore,
    readonly keys: IdempotencyStore,
    private readonly clock: Clock,
  ) {}

  async applyOnce(call: KeyedCall, wait: Wait): Promise<Result<{ stored: StoredResult; replayed: boolean }>> {
    // The uncontended path takes the gate without a promise turn.
    const entered = (wait.signal?.aborted !== true ? this.tryTake(call.scope, call.key, call.request) : null) ?? (await this.enter(call.scope, call.key, call.request, wait));
    if (!entered.ok) return entered;
    try {
      const begun = await this.keys.begin(call.scope, call.key, call.request, wait.deadlineMs);
      if (!begun.ok) return begun;
      if (begun.value.kind === "replay") return ok({ stored: begun.value.result, replayed: true });
      const claim = begun.value.claim;
      let stored: StoredResult | null = null;
      try {
        if (wait.signal?.aborted === true) return fail(CANCELLED_WHILE_WAITING);
        if (call.admit !== undefined) {
          const admitted = await call.admit();
          if (!admitted.ok) return admitted;
        }
        const applied = await this.apply(call.effect, claim, wait.deadlineMs);
        if (!applied.ok) return applied;
        stored = applied.value;
        await this.keys.complete(claim, stored);
        return ok({ stored, replayed: false });
      } finally {
        if (stored === null) await this.keys.release(claim);
      }
    } finally {
      entered.value();
    }
  }

  async reverseMint(mintId: string, reason: string, wallMs: number, wait: Wait): Promise<Result<MintRecord>> {
    const mint = await this.ledger.getMint(mintId);
    if (mint === null) return fail({ code: "MINT_NOT_FOUND", mintId });
    const entered = await this.enter("mint", mint.idempotencyKey, null, wait);
    if (!entered.ok) return entered;
    try {
      const reversed = await this.ledger.reverseMint(mintId, reason, wallMs, wait.deadlineMs);
      if (reversed.ok) await this.keys.forget("mint", reversed.value.idempotencyKey, reversed.value.mintId);
      return reversed;
    } finally {
      entered.value();
    }
  }

  getBalance(accountId: string): Promise<bigint> {
    return this.ledger.getBalance(accountId);
  }

  getMint(mintId: string): Promise<MintRecord | null> {
    return this.ledger.getMint(mintId);
  }

  listMints(query: ListMintsQuery): Promise<MintRecord[]> {
    return this.ledger.listMints(query);
  }

  // Issue 12. The memory ledger applies each of these synchronously, so each
  // is atomic against every mint, transfer and redemption in flight.
  setReserve(reserveMicros: bigint, attestationRef: string, journal: JournalEntry, wait: Wait): Promise<Result<SupplyState>> {
    return this.ledger.setReserve(reserveMicros, attestationRef, journal, wait.deadlineMs);
  }

  getSupply(): Promise<SupplyState> {
    return this.ledger.getSupply();
  }

  setFrozen(accountId: string, frozen: boolean, reason: string, journal: JournalEntry, wait: Wait): Promise<Result<AccountState>> {
    return this.ledger.setFrozen(accountId, frozen, reason, journal, wait.deadlineMs);
  }

  getAccount(accountId: string): Promise<AccountState> {
    return this.ledger.getAccount(accountId);
  }

  getRedemption(redemptionId: string): Promise<RedemptionRecord | null> {
    return this.ledger.getRedemption(redemptionId);
  }

  listRedemptions(query: ListMintsQuery): Promise<{ redemption: RedemptionRecord; seq: number }[]> {
    return this.ledger.listRedemptions(query);
  }

  /** The memory ledger is atomic per call: when it throws, nothing was applied. */
  private async apply(effect: Effect, claim: IdempotencyClaim, deadlineMs: number): Promise<Result<StoredResult>> {
    try {
      if (effect.kind === "mint") {
        const r = await this.ledger.mint(effect.cmd, claim, deadlineMs, effect.reserveRequired === true);
        return r.ok ? ok({ scope: "mint", mint: r.value }) : r;
      }
      if (effect.kind === "redeem") {
        const r = await this.ledger.redeem(effect.cmd, claim, deadlineMs, effect.journal);
        return r.ok ? ok({ scope: "redeem", redemption: r.value }) : r;
      }
      const r = await this.ledger.transfer(effect.cmd, claim, deadlineMs);
      return r.ok ? ok({ scope: "transfer", transfer: r.value }) : r;
    } catch (err) {
      throw markNotApplied(err);
    }
  }

  /**
   * Takes the key's gate, waiting behind its holder until the deadline
   * (IDEMPOTENCY_KEY_IN_USE) or the signal (CANCELLED). A different request
   * holding the key is IDEMPOTENCY_KEY_REUSED at once. Returns the leave
   * function.
   */
  /** Takes the key's gate when it is free; null when it is held. */
  private tryTake(scope: IdempotencyScope, key: string, request: CanonicalRequest | null): Result<() => void> | null {
    const gateKey = `${scope}\u0000${key}`;
    if (this.gates.has(gateKey)) return null;
    const gate: Gate = { request, waiters: null };
    this.gates.set(gateKey, gate);
    return ok(() => {
      this.gates.delete(gateKey);
      if (gate.waiters !== null) for (const wake of gate.waiters) wake();
    });
  }

  private async enter(scope: IdempotencyScope, key: string, request: CanonicalRequest | null, wait: Wait): Promise<Result<() => void>> {
    const gateKey = `${scope}\u0000${key}`;
    for (;;) {
      if (wait.signal?.aborted === true) return fail(CANCELLED_WHILE_WAITING);
      const held = this.gates.get(gateKey);
      if (held === undefined) return this.tryTake(scope, key, request) as Result<() => void>;
      if (request !== null && held.request !== null && !sameRequest(held.request, request)) {
        return fail({ code: "IDEMPOTENCY_KEY_REUSED", key, fields: differingFields(held.request, request) });
      }
      const outcome = await this.waitFor(held, wait);
      if (outcome === "deadline") return fail({ code: "IDEMPOTENCY_KEY_IN_USE", key, retryAfterMs: KEY_IN_USE_RETRY_AFTER_MS });
      if (outcome === "aborted") return fail(CANCELLED_WHILE_WAITING);
    }
  }

  private waitFor(gate: Gate, wait: Wait): Promise<"left" | "deadline" | "aborted"> {
    const delayMs = wait.deadlineMs - this.clock.nowMs();
    if (delayMs <= 0) return Promise.resolve("deadline");
    return new Promise((resolve) => {
      let settled = false;
      const cancelTimer = delayMs === Infinity ? () => undefined : this.clock.setTimer(delayMs, () => done("deadline"));
      const onAbort = (): void => done("aborted");
      wait.signal?.addEventListener("abort", onAbort, { once: true });
      function done(how: "left" | "deadline" | "aborted"): void {
        if (settled) return;
        settled = true;
        cancelTimer();
        wait.signal?.removeEventListener("abort", onAbort);
        resolve(how);
      }
      (gate.waiters ??= []).push(() => done("left"));
    });
  }
}
