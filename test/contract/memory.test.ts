/** Runs the port contracts against the in-process adapters. */
import { MemoryExactlyOnceStore } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { FakeClock } from "../support/fake-clock.js";
import { approvalStoreContract } from "./approval-store.contract.js";
import { exactlyOnceStoreContract } from "./exactly-once-store.contract.js";
import { idempotencyStoreContract } from "./idempotency-store.contract.js";
import { ledgerStoreContract } from "./ledger-store.contract.js";
import { reserveStoreContract } from "./reserve-store.contract.js";
import { MemorySettlementOutbox } from "../../src/adapters/memory/settlement-outbox.js";
import { allowancesContract } from "./allowances.contract.js";
import { expectEveryMoneyRuleCovered } from "./coverage.js";
import { redemptionContract } from "./redemption.contract.js";
import { batchContract } from "./batch.contract.js";
import { CONTRACT_IDEMPOTENCY_TTL_MS, type SettlementStoresUnderTest, type StoresUnderTest } from "./stores-under-test.js";

async function makeMemoryStores(): Promise<StoresUnderTest> {
  const clock = new FakeClock();
  const ledger = new MemoryLedgerStore({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: CONTRACT_IDEMPOTENCY_TTL_MS, maxKeys: 10_000, clock });
  return {
    store: new MemoryExactlyOnceStore(ledger, idempotency, clock),
    ledger,
    idempotency,
    clock,
    async close() {
      await idempotency.close();
      await ledger.close();
    },
  };
}

exactlyOnceStoreContract("memory", makeMemoryStores);
approvalStoreContract("memory", makeMemoryStores);
ledgerStoreContract("memory", makeMemoryStores);
idempotencyStoreContract("memory", makeMemoryStores);
reserveStoreContract("memory", makeMemoryStores);

/** The memory stores with their outbox attached, as the service wires them. */
async function makeMemorySettlementStores(): Promise<SettlementStoresUnderTest> {
  const base = await makeMemoryStores();
  const store = base.store as MemoryExactlyOnceStore;
  const ledger = base.ledger as MemoryLedgerStore;
  const outbox = new MemorySettlementOutbox(store.settlementEffects());
  store.attachOutbox(outbox);
  return {
    ...base,
    outbox,
    async journaled(action) {
      const all = await store.audit.list({ accountId: null, actor: null, fromTimeMs: 0, toTimeMs: Infinity, afterSeq: 0, limit: 10_000 });
      return all.filter((r) => r.action === action).map((r) => ({ actor: r.actor, request: { ...r.request }, result: { ...r.result } }));
    },
    async entries(refId) {
      return ledger.ledgerEntries().filter((e) => e.refId === refId).map((e) => `${e.kind} ${e.amountMicros}`);
    },
  };
}
redemptionContract("memory", makeMemorySettlementStores);
allowancesContract("memory", makeMemorySettlementStores);
batchContract("memory", makeMemorySettlementStores);
expectEveryMoneyRuleCovered("memory");
