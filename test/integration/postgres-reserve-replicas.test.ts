/**
 * Issue 12 across replicas: three PostgreSQL stores (three pools, as three
 * replicas have) on one fresh database. Mints racing to the last micro-USDC
 * of headroom from all three end exactly at the reserve; redemptions and
 * reversals racing them keep supply equal to the ledger's sum; a freeze
 * racing transfers on other replicas leaves each transfer whole or refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresStores, type PostgresStores } from "../../src/adapters/postgres/index.js";
import type { JournalEntry } from "../../src/domain/journal.js";
import { redeemRequest } from "../../src/domain/model.js";
import type { KeyedCall } from "../../src/domain/ports.js";
import { FakeClock } from "../support/fake-clock.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { mintRequest, newKey, newMintId, newTransferId, transferRequest } from "../contract/stores-under-test.js";

const WAIT = { deadlineMs: Number.POSITIVE_INFINITY };
const JOURNAL: JournalEntry = { actor: "test", action: "Test", idempotencyKey: null, request: {}, accounts: [] };

let db: TestDatabase;
const replicas: PostgresStores[] = [];
const clock = new FakeClock();

beforeAll(async () => {
  db = await createTestDatabase();
  for (let i = 0; i < 3; i++) {
    replicas.push(await openPostgresStores({ url: db.url, poolSize: 6, statementTimeoutMs: 10_000, connectTimeoutMs: 5_000, idempotencyTtlMs: 60_000, clock }));
  }
});

afterAll(async () => {
  for (const r of replicas) await r.close();
  await db?.drop();
});

function mintCall(accountId: string, amountMicros: bigint): KeyedCall {
  const key = newKey();
  return {
    scope: "mint",
    key,
    request: mintRequest(accountId, amountMicros),
    effect: { kind: "mint", cmd: { mintId: newMintId(), accountId, amountMicros, blockchain: "ETHEREUM", idempotencyKey: key, createWallMs: clock.wallMs() } },
  };
}

let redemptions = 0;
function redeemCall(accountId: string, amountMicros: bigint): KeyedCall {
  const key = newKey();
  return {
    scope: "redeem",
    key,
    request: redeemRequest(accountId, amountMicros, "BASE"),
    effect: {
      kind: "redeem",
      cmd: { redemptionId: `rdm_R${String(++redemptions).padStart(25, "0")}`, accountId, amountMicros, blockchain: "BASE", idempotencyKey: key, actor: "test", createWallMs: clock.wallMs() },
      journal: JOURNAL,
    },
  };
}

function transferCall(from: string, to: string, amountMicros: bigint): KeyedCall {
  const key = newKey();
  return {
    scope: "transfer",
    key,
    request: transferRequest(from, to, amountMicros),
    effect: { kind: "transfer", cmd: { transferId: newTransferId(), fromAccountId: from, toAccountId: to, amountMicros, idempotencyKey: key, createWallMs: clock.wallMs() } },
  };
}

const at = (i: number): PostgresStores => replicas[i % 3] as PostgresStores;

async function ledgerSum(): Promise<bigint> {
  const res = await db.query<{ s: string }>("SELECT COALESCE(SUM(amount), 0)::text AS s FROM ledger_entries");
  return BigInt(res.rows[0]?.s ?? "0");
}

describe("reserve, redemption and freeze on three PostgreSQL replicas", () => {
  it("120 one-micro mints over three replicas racing for 50 micro-USDC of headroom: exactly 50 pass, supply ends at the reserve", async () => {
    await at(0).store.setReserve(50n, "attest-1", JOURNAL, WAIT);
    const results = await Promise.all(Array.from({ length: 120 }, (_, i) => Promise.resolve(at(i).store.applyOnce(mintCall(`acct-${i % 7}`, 1n), WAIT))));
    expect(results.filter((r) => r.ok)).toHaveLength(50);
    for (const r of results) if (!r.ok) expect(r.error).toMatchObject({ code: "RESERVE_EXCEEDED", headroomMicros: 0n });
    for (const r of replicas) expect(await r.store.getSupply()).toMatchObject({ supplyMicros: 50n, reserveMicros: 50n, headroomMicros: 0n });
    expect(await ledgerSum()).toBe(50n);
  });

  it("mints, redemptions and reversals racing on three replicas: supply equals the ledger's sum and never passes the reserve", async () => {
    await at(1).store.setReserve(10_000n, "attest-2", JOURNAL, WAIT);
    const minted = await Promise.all(Array.from({ length: 30 }, (_, i) => Promise.resolve(at(i).store.applyOnce(mintCall(`mix-${i % 4}`, BigInt(100 + i)), WAIT))));
    const mintIds = minted.flatMap((r) => (r.ok && r.value.stored.scope === "mint" ? [r.value.stored.mint.mintId] : []));
    const ops = Array.from({ length: 90 }, (_, i) => {
      const r = at(i).store;
      if (i % 3 === 0) return Promise.resolve(r.applyOnce(mintCall(`mix-${i % 4}`, BigInt(500 + i)), WAIT));
      if (i % 3 === 1) return Promise.resolve(r.applyOnce(redeemCall(`mix-${i % 4}`, BigInt(50 + i)), WAIT));
      return r.reverseMint(mintIds[i % mintIds.length] as string, "race", clock.wallMs(), WAIT);
    });
    await Promise.all(ops);
    const supply = await at(2).store.getSupply();
    expect(supply.supplyMicros).toBe(await ledgerSum());
    expect(supply.supplyMicros).toBeLessThanOrEqual(10_000n);
    const balances = await db.query<{ s: string }>("SELECT COALESCE(SUM(balance), 0)::text AS s FROM accounts");
    expect(BigInt(balances.rows[0]?.s ?? "0")).toBe(supply.supplyMicros);
  });

  it("a freeze on one replica racing transfers on the other two: each transfer is whole or refused, never half", async () => {
    await at(0).store.setReserve(1_000_000n, "attest-3", JOURNAL, WAIT);
    const senders = Array.from({ length: 20 }, (_, i) => `fz-from-${i}`);
    for (const a of senders) expect(await at(0).store.applyOnce(mintCall(a, 10n), WAIT)).toMatchObject({ ok: true });
    const transfers = senders.map((a, i) => Promise.resolve(at(1 + (i % 2)).store.applyOnce(transferCall(a, "fz-target", 10n), WAIT)));
    const freeze = at(0).store.setFrozen("fz-target", true, "order", JOURNAL, WAIT);
    const [results] = await Promise.all([Promise.all(transfers), freeze]);
    let arrived = 0n;
    for (const [i, r] of results.entries()) {
      const left = await at(0).store.getBalance(senders[i] as string);
      if (r.ok) {
        expect(left).toBe(0n);
        arrived += 10n;
      } else {
        expect(r.error).toEqual({ code: "ACCOUNT_FROZEN", accountId: "fz-target" });
        expect(left).toBe(10n);
      }
    }
    expect(await at(2).store.getAccount("fz-target")).toMatchObject({ frozen: true, balanceMicros: arrived });
    expect(await at(1).store.applyOnce(transferCall(senders[0] as string, "fz-target", 1n), WAIT)).toMatchObject({ ok: false });
  });
});
