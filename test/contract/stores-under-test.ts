/**
 * What the contract suites need from an adapter, and the core's protocol for
 * using a claim, written once so both suites drive every adapter the same way:
 * begin → (claimed) ledger call → complete on success, release on failure.
 */
import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import type { Blockchain, CanonicalRequest, MintRecord, StoredResult, TransferRecord } from "../../src/domain/model.js";
import type { ApprovalStore, ExactlyOnceStore, IdempotencyClaim, IdempotencyStore, LedgerStore } from "../../src/domain/ports.js";
import type { Failure } from "../../src/domain/errors.js";
import type { SettlementOutbox } from "../../src/settlement/ports.js";
import type { FakeClock } from "../support/fake-clock.js";

/**
 * The TTL every adapter under contract must be configured with (the suites
 * move the fake clock around it).
 */
export const CONTRACT_IDEMPOTENCY_TTL_MS = 60_000;

export interface StoresUnderTest {
  /** The exactly-once port built from `ledger` and `idempotency`. */
  readonly store: ExactlyOnceStore & ApprovalStore;
  readonly ledger: LedgerStore;
  readonly idempotency: IdempotencyStore;
  /** The clock both stores were built with. */
  readonly clock: FakeClock;
  close(): Promise<void>;
}

/** Builds fresh, empty stores for one test. */
export type MakeStores = () => Promise<StoresUnderTest>;

/** The stores with their settlement outbox attached, as the service wires them when a chain settles on-chain. */
export interface SettlementStoresUnderTest extends StoresUnderTest {
  /** The store's outbox, its final steps wired to the store's settlement effects. */
  readonly outbox: SettlementOutbox;
  /** The journal's records (sealed or not) with `action`, oldest first. */
  journaled(action: string): Promise<{ actor: string; request: Record<string, unknown>; result: Record<string, unknown> }[]>;
  /** The ledger's entries of `refId`, oldest first, as "kind amount". */
  entries(refId: string): Promise<string[]>;
}

export type MakeSettlementStores = () => Promise<SettlementStoresUnderTest>;

export const NO_DEADLINE = Number.POSITIVE_INFINITY;

const ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

function randomId(prefix: string): string {
  const bytes = randomBytes(26);
  let out = prefix;
  for (const b of bytes) out += ID_ALPHABET[b % 32];
  return out;
}

export const newMintId = (): string => randomId("mint_");
export const newTransferId = (): string => randomId("xfr_");
export const newKey = (): string => randomId("key-");

export function mintRequest(accountId: string, amountMicros: bigint, blockchain: Blockchain = "ETHEREUM"): CanonicalRequest {
  return { account_id: accountId, amount: amountMicros.toString(), blockchain };
}

export function transferRequest(fromAccountId: string, toAccountId: string, amountMicros: bigint): CanonicalRequest {
  return { from_account_id: fromAccountId, to_account_id: toAccountId, amount: amountMicros.toString() };
}

/** Claims a key that must be free, or fails the test. */
export async function claimFree(
  s: StoresUnderTest,
  scope: "mint" | "transfer",
  key: string,
  request: CanonicalRequest,
): Promise<IdempotencyClaim> {
  const r = await s.idempotency.begin(scope, key, request, NO_DEADLINE);
  if (!r.ok) throw new Error(`expected ${scope}/${key} to be claimed, got ${r.error.code}`);
  if (r.value.kind !== "claimed") throw new Error(`expected ${scope}/${key} to be claimed, got a replay`);
  return r.value.claim;
}

/** Applies a mint on a claim, then completes (success) or releases (failure) it, as the core does. */
export async function applyMint(
  s: StoresUnderTest,
  claim: IdempotencyClaim,
  args: { accountId: string; amountMicros: bigint; blockchain?: Blockchain },
  deadlineMs = NO_DEADLINE,
): Promise<{ ok: true; mint: MintRecord } | { ok: false; error: Failure }> {
  const r = await s.ledger.mint(
    {
      mintId: newMintId(),
      accountId: args.accountId,
      amountMicros: args.amountMicros,
      blockchain: args.blockchain ?? "ETHEREUM",
      idempotencyKey: claim.key,
      createWallMs: s.clock.wallMs(),
    },
    claim,
    deadlineMs,
  );
  if (!r.ok) {
    await s.idempotency.release(claim);
    return { ok: false, error: r.error };
  }
  await s.idempotency.complete(claim, { scope: "mint", mint: r.value });
  return { ok: true, mint: r.value };
}

/** Applies a transfer on a claim, then completes or releases it. */
export async function applyTransfer(
  s: StoresUnderTest,
  claim: IdempotencyClaim,
  args: { from: string; to: string; amountMicros: bigint },
  deadlineMs = NO_DEADLINE,
): Promise<{ ok: true; transfer: TransferRecord } | { ok: false; error: Failure }> {
  const r = await s.ledger.transfer(
    {
      transferId: newTransferId(),
      fromAccountId: args.from,
      toAccountId: args.to,
      amountMicros: args.amountMicros,
      idempotencyKey: claim.key,
      createWallMs: s.clock.wallMs(),
    },
    claim,
    deadlineMs,
  );
  if (!r.ok) {
    await s.idempotency.release(claim);
    return { ok: false, error: r.error };
  }
  await s.idempotency.complete(claim, { scope: "transfer", transfer: r.value });
  return { ok: true, transfer: r.value };
}

/** A whole mint call with a fresh key, which must succeed. */
export async function mintNow(s: StoresUnderTest, accountId: string, amountMicros: bigint, key = newKey()): Promise<MintRecord> {
  const claim = await claimFree(s, "mint", key, mintRequest(accountId, amountMicros));
  const r = await applyMint(s, claim, { accountId, amountMicros });
  if (!r.ok) throw new Error(`mint failed: ${r.error.code}`);
  return r.mint;
}

/** A whole transfer call with a fresh key; returns the ledger's outcome. */
export async function transferNow(
  s: StoresUnderTest,
  from: string,
  to: string,
  amountMicros: bigint,
  key = newKey(),
): Promise<{ ok: true; transfer: TransferRecord } | { ok: false; error: Failure }> {
  const claim = await claimFree(s, "transfer", key, transferRequest(from, to, amountMicros));
  return applyTransfer(s, claim, { from, to, amountMicros });
}

export function expectReplayOf(outcome: Awaited<ReturnType<IdempotencyStore["begin"]>>, expected: StoredResult): void {
  expect(outcome.ok).toBe(true);
  if (!outcome.ok) return;
  expect(outcome.value.kind).toBe("replay");
  if (outcome.value.kind !== "replay") return;
  expect(outcome.value.result).toEqual(expected);
}

/** Real (not fake-clock) milliseconds, for letting another connection reach its lock wait. */
export function realSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Tracks whether a promise has settled, without awaiting it. */
export function track<T>(p: Promise<T>): { readonly settled: () => boolean; readonly promise: Promise<T> } {
  let done = false;
  const promise = p.finally(() => {
    done = true;
  });
  // The test awaits `promise` itself; this only keeps a test that fails
  // before then from also reporting an unhandled rejection.
  promise.catch(() => undefined);
  return { settled: () => done, promise };
}
