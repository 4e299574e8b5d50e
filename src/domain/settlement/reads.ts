/** What the gRPC handlers read of settlement: Mint.settlement, Redemption.settlement and ReconcileChain. */
import type { Blockchain } from "../model.js";
import type { ChainSettlement, Settlement, SettlementOutbox } from "./ports.js";
import { reconcileChain, type ChainReport } from "./reconcile.js";

/** The chains that settle, and each one's client (the settlement runtime). */
export interface SettlingChains {
  required(blockchain: Blockchain): boolean;
  chain(blockchain: Blockchain): ChainSettlement | undefined;
}

/** What the gRPC handlers read of settlement (Mint.settlement, ReconcileChain). */
export interface SettlementReads {
  required(blockchain: Blockchain): boolean;
  /** The settlements of these mints that exist (a mint without one is NOT_REQUIRED), in one outbox lookup. */
  getMany(mintIds: readonly string[]): Promise<Map<string, Settlement>>;
  /** null when the chain does not settle. Throws ChainUnavailableError when the node cannot be reached. */
  reconcile(blockchain: Blockchain): Promise<ChainReport | null>;
}

export function settlementReads(runtime: SettlingChains, outbox: SettlementOutbox & { list(blockchain: Blockchain): Promise<Settlement[]> | Settlement[] }): SettlementReads {
  return {
    required: (b) => runtime.required(b),
    // One batch per page (one query in PostgreSQL), not one lookup per mint.
    getMany: (mintIds) => outbox.getMany(mintIds),
    async reconcile(b) {
      const chain = runtime.chain(b);
      if (chain === undefined) return null;
      return reconcileChain(chain, await outbox.list(b));
    },
  };
}
