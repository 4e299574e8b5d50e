/**
 * The ledger stores with their settlement outbox attached, as the service
 * wires them (memory, or PostgreSQL in a fresh database), for tests that run
 * the settlement worker against the ledger's real effects: a mint credited
 * to the pending balance, a redemption debited, each with its outbox row.
 */
import { randomBytes } from "node:crypto";
import { MemoryExactlyOnceStore } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { openPostgresStores } from "../../src/adapters/postgres/index.js";
import type { JournalEntry } from "../../src/domain/journal.js";
import { mintRequest, redeemRequest, type MintRecord, type RedemptionRecord } from "../../src/domain/model.js";
import type { ApprovalStore, ExactlyOnceStore } from "../../src/domain/ports.js";
import { MemorySettlementOutbox } from "../../src/settlement/outbox-memory.js";
import type { SettlementOutbox } from "../../src/settlement/ports.js";
import { FakeClock } from "./fake-clock.js";
import { createTestDatabase } from "./pg-test-database.js";

export interface SettlingStores {
  readonly store: ExactlyOnceStore & ApprovalStore;
  readonly outbox: SettlementOutbox;
  readonly clock: FakeClock;
  close(): Promise<void>;
}

const WAIT = { deadlineMs: Number.POSITIVE_INFINITY };
const newKey = (): string => `key-${randomBytes(8).toString("hex")}`;

export async function memorySettlingStores(): Promise<SettlingStores> {
  const clock = new FakeClock();
  const ledger = new MemoryLedgerStore({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: 60_000, maxKeys: 10_000, clock });
  const store = new MemoryExactlyOnceStore(ledger, idempotency, clock);
  const outbox = new MemorySettlementOutbox(store.settlementEffects());
  store.attachOutbox(outbox);
  return {
    store,
    outbox,
    clock,
    async close() {
      await idempotency.close();
      await ledger.close();
    },
  };
}

export async function postgresSettlingStores(): Promise<SettlingStores> {
  const db = await createTestDatabase();
  const clock = new FakeClock();
  try {
    const stores = await openPostgresStores({
      url: db.url,
      poolSize: 4,
      statementTimeoutMs: 5_000,
      connectTimeoutMs: 5_000,
      idempotencyTtlMs: 60_000,
      clock,
      testNowWallMs: () => clock.wallMs(),
    });
    return {
      store: stores.store,
      outbox: stores.settlementOutbox(),
      clock,
      async close() {
        await stores.close();
        await db.drop();
      },
    };
  } catch (err) {
    await db.drop();
    throw err;
  }
}

export const SETTLING_STORES = [
  ["memory", memorySettlingStores],
  ["postgres", postgresSettlingStores],
] as const;

/** A mint on ETHEREUM that settles on-chain: credited to the pending balance, its settlement PENDING. */
export async function settlingMint(s: SettlingStores, accountId: string, amountMicros: bigint): Promise<MintRecord> {
  const key = newKey();
  const r = await s.store.applyOnce(
    {
      scope: "mint",
      key,
      request: mintRequest(accountId, amountMicros, "ETHEREUM"),
      effect: { kind: "mint", cmd: { mintId: `mint_${key}`, accountId, amountMicros, blockchain: "ETHEREUM", idempotencyKey: key, createWallMs: s.clock.wallMs(), settle: true } },
    },
    WAIT,
  );
  if (!r.ok || r.value.stored.scope !== "mint") throw new Error(`mint failed: ${r.ok ? "not a mint" : r.error.code}`);
  return r.value.stored.mint;
}

/** A plain mint (available at once, nothing to settle), to fund a redemption. */
export async function plainMint(s: SettlingStores, accountId: string, amountMicros: bigint): Promise<void> {
  const key = newKey();
  const r = await s.store.applyOnce(
    {
      scope: "mint",
      key,
      request: mintRequest(accountId, amountMicros, "ETHEREUM"),
      effect: { kind: "mint", cmd: { mintId: `mint_${key}`, accountId, amountMicros, blockchain: "ETHEREUM", idempotencyKey: key, createWallMs: s.clock.wallMs() } },
    },
    WAIT,
  );
  if (!r.ok) throw new Error(`mint failed: ${r.error.code}`);
}

/** A redemption on ETHEREUM that settles as a burn: debited at once, its burn PENDING. */
export async function settlingRedemption(s: SettlingStores, accountId: string, amountMicros: bigint): Promise<RedemptionRecord> {
  const key = newKey();
  const request = redeemRequest(accountId, amountMicros, "ETHEREUM");
  const journal: JournalEntry = { actor: "redeemer", action: "RedeemUsdc", idempotencyKey: key, request, accounts: [accountId] };
  const r = await s.store.applyOnce(
    {
      scope: "redeem",
      key,
      request,
      journal,
      effect: {
        kind: "redeem",
        cmd: { redemptionId: `rdm_${key}`, accountId, amountMicros, blockchain: "ETHEREUM", idempotencyKey: key, actor: "redeemer", createWallMs: s.clock.wallMs() },
        journal,
        settle: true,
      },
    },
    WAIT,
  );
  if (!r.ok || r.value.stored.scope !== "redeem") throw new Error(`redeem failed: ${r.ok ? "not a redemption" : r.error.code}`);
  return r.value.stored.redemption;
}
