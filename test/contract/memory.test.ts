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
import { CONTRACT_IDEMPOTENCY_TTL_MS, type StoresUnderTest } from "./stores-under-test.js";

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
