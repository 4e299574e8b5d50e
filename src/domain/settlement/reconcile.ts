/**
 * Chain reconciliation. Compares one chain with the ledger: the
 * token's totalSupply() and the treasury's balance against the CONFIRMED
 * mints minus the CONFIRMED burns (redemptions), and looks every final
 * settlement's transaction up to find those whose on-chain state differs
 * from the ledger's. Read-only.
 */
import type { Blockchain } from "../model.js";
import type { ChainSettlement, Hex, Settlement, SettlementKind, SettlementState } from "./ports.js";

export interface SettlementDifference {
  /** The mint or redemption; empty for an on-chain mint or burn the ledger does not know. */
  readonly settlementId: string;
  /** "mint" or "burn", also for an unknown on-chain one. */
  readonly kind: SettlementKind;
  /** null for an on-chain mint or burn the ledger does not know. */
  readonly ledgerState: SettlementState | null;
  /** What the chain shows, in words. */
  readonly chainState: string;
  /** The transaction looked up; null when none. */
  readonly txHash: Hex | null;
}

export interface ChainReport {
  readonly blockchain: Blockchain;
  readonly agree: boolean;
  readonly totalSupplyMicros: bigint;
  readonly treasuryBalanceMicros: bigint;
  /** CONFIRMED mints − CONFIRMED burns: what totalSupply() and the treasury balance must both be. */
  readonly confirmedSumMicros: bigint;
  readonly headBlock: bigint;
  readonly differences: readonly SettlementDifference[];
}

/** Lookups run a few at a time: the node is shared with the worker. */
const LOOKUP_BATCH = 16;

/**
 * `settlements`: every settlement of the chain in the ledger. PENDING and
 * SUBMITTED ones are in flight (the worker owns them) and are not compared;
 * CONFIRMED must be mined successfully; FAILED must not be mined successfully.
 * Throws ChainUnavailableError when the node cannot be reached.
 */
export async function reconcileChain(chain: ChainSettlement, settlements: readonly Settlement[]): Promise<ChainReport> {
  const [headBlock, totalSupplyMicros, treasuryBalanceMicros] = await Promise.all([chain.headBlock(), chain.totalSupply(), chain.treasuryBalance()]);
  let confirmedSumMicros = 0n;
  const final = settlements.filter((s) => s.state === "CONFIRMED" || s.state === "FAILED");
  for (const s of final) if (s.state === "CONFIRMED") confirmedSumMicros += s.kind === "burn" ? -s.amountMicros : s.amountMicros;
  const differences: SettlementDifference[] = [];
  for (let i = 0; i < final.length; i += LOOKUP_BATCH) {
    const found = await Promise.all(final.slice(i, i + LOOKUP_BATCH).map((s) => compare(chain, s, headBlock)));
    for (const d of found) if (d !== null) differences.push(d);
  }
  // Mints and burns on-chain that no settlement of the ledger signed (behind the service's back).
  const ours = new Set<string>();
  for (const s of settlements) for (const t of s.txs) ours.add(t.hash.toLowerCase());
  if (chain.treasuryMints !== undefined) {
    for (const m of await chain.treasuryMints()) {
      if (ours.has(m.hash.toLowerCase())) continue;
      differences.push({ settlementId: "", kind: "mint", ledgerState: null, chainState: `minted ${m.amountMicros} micro-USDC to the treasury in block ${m.blockNumber}; no settlement in the ledger`, txHash: m.hash });
    }
  }
  if (chain.treasuryBurns !== undefined) {
    for (const b of await chain.treasuryBurns()) {
      if (ours.has(b.hash.toLowerCase())) continue;
      differences.push({ settlementId: "", kind: "burn", ledgerState: null, chainState: `burned ${b.amountMicros} micro-USDC from the treasury in block ${b.blockNumber}; no settlement in the ledger`, txHash: b.hash });
    }
  }
  const agree = differences.length === 0 && totalSupplyMicros === confirmedSumMicros && treasuryBalanceMicros === confirmedSumMicros;
  return { blockchain: chain.blockchain, agree, totalSupplyMicros, treasuryBalanceMicros, confirmedSumMicros, headBlock, differences };
}

async function compare(chain: ChainSettlement, s: Settlement, head: bigint): Promise<SettlementDifference | null> {
  const differs = (chainState: string, txHash: Hex | null): SettlementDifference => ({ settlementId: s.settlementId, kind: s.kind, ledgerState: s.state, chainState, txHash });
  if (s.state === "CONFIRMED") {
    const hash = s.minedHash;
    if (hash === null) return differs("no mined transaction recorded", null);
    const l = await chain.lookup(hash, head);
    if (l.kind === "mined" && l.status === "success") return null;
    return differs(l.kind === "mined" ? `reverted in block ${l.blockNumber}` : l.kind === "pending" ? "in the pool, not mined" : "not on the chain", hash);
  }
  // FAILED: none of its transactions may have minted (or, for a redemption, burned).
  for (const tx of s.txs) {
    const l = await chain.lookup(tx.hash, head);
    if (l.kind === "mined" && l.status === "success") return differs(`${s.kind === "burn" ? "burned" : "minted"} in block ${l.blockNumber}`, tx.hash);
  }
  return null;
}
