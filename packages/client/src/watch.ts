/**
 * watchLedger: the ledger's events as an async iterator that resumes by
 * itself. It keeps the cursor of the last event it handed out (or the start
 * cursor the server sends first), and when the stream ends for a reason that
 * is not the caller's (a replica shutting down, a connection lost, the
 * consumer falling behind the server's bound, a replica at its watcher
 * limit) it opens the stream again from that cursor, on another replica when
 * there is one, after a jittered backoff. Every event comes once, in order.
 *
 *   for await (const e of client.watchLedger({ accounts: ["alice"], kinds: ["MINT_COMPLETED"] })) { ... }
 *
 * It ends (throws MintServiceError) on what a retry cannot fix: a cursor
 * too old (FAILED_PRECONDITION CURSOR_EXPIRED, `metadata.oldest_cursor`) or
 * of another feed (CURSOR_FROM_OTHER_EPOCH), bad input, missing credentials
 * or permissions. Leaving the loop (break, return, `signal`) closes the stream.
 */
import type * as grpc from "@grpc/grpc-js";
import { Blockchain as WireBlockchain, LedgerEventKind as WireKind, MintStatus as WireMintStatus, SettlementKind as WireSettlementKind, SettlementState as WireSettlementState, type LedgerEvent as WireEvent } from "../gen/usdc/mint/v1/mint.js";
import type { EndpointPool } from "./endpoints.js";
import { MintServiceError, toMintServiceError } from "./errors.js";
import { backoffMs, DEFAULT_RETRY_POLICY } from "./retry.js";
import type { BlockchainName, MintStatusName, SettlementStateName } from "./types.js";

/** Every kind of event WatchLedger sends, in the order the proto declares them. */
export const LEDGER_EVENT_KINDS = [
  "MINT_CREATED",
  "MINT_PENDING_APPROVAL",
  "MINT_APPROVED",
  "MINT_REJECTED",
  "MINT_COMPLETED",
  "MINT_REVERSED",
  "SETTLEMENT_SUBMITTED",
  "SETTLEMENT_CONFIRMED",
  "SETTLEMENT_FAILED",
  "TRANSFER",
  "REDEMPTION",
  "REDEMPTION_RECREDITED",
  "ACCOUNT_FROZEN",
  "ACCOUNT_UNFROZEN",
  "RESERVE_SET",
  "ALLOWANCE_SET",
] as const;

/** An event's kind; "UNRECOGNIZED" for a kind newer than this SDK. */
export type LedgerEventKindName = (typeof LEDGER_EVENT_KINDS)[number] | "UNRECOGNIZED";

/** A chain's name as the SDK spells it, or "UNSPECIFIED" / "UNRECOGNIZED". */
export type LedgerEventChain = BlockchainName | "UNSPECIFIED" | "UNRECOGNIZED";

/** What `MintClient.watchLedger` streams and how it resumes. */
export interface WatchLedgerInput {
  /** A cursor to resume after; "oldest" for the oldest event kept; absent for events from now on. */
  readonly from?: string;
  /** Only events touching one of these accounts. */
  readonly accounts?: readonly string[];
  /** Only these kinds. */
  readonly kinds?: readonly LedgerEventKindName[];
  /** Ends the iteration (and the stream) when aborted. */
  readonly signal?: AbortSignal;
  /** Called before each resume (for logs and metrics). */
  readonly onResume?: (e: { readonly error: MintServiceError; readonly cursor: string; readonly delayMs: number }) => void;
}

/** A mint's step: created, pending approval, approved, rejected, completed or reversed. */
export interface LedgerMintEvent {
  /** The mint's id. */
  mintId: string;
  /** The credited account. */
  accountId: string;
  /** The mint's amount, a decimal string of USDC. */
  amount: string;
  /** The chain the mint is for. */
  blockchain: LedgerEventChain;
  /** The mint's status after this step. */
  status: MintStatusName;
  /** Approvals counted so far. */
  approvals: number;
  /** Approvals the mint needs (0: none). */
  approvalsRequired: number;
  /** MINT_APPROVED: who approved; MINT_REJECTED: who rejected (`sweeper` for an expiry). */
  actor: string;
  /** MINT_REJECTED, MINT_REVERSED: why. */
  reason: string;
}

/** A settlement's step on-chain: submitted, confirmed or failed. */
export interface LedgerSettlementEvent {
  /** The mint id or redemption id. */
  settlementId: string;
  /** A mint on-chain, or a burn of a redemption. */
  kind: "MINT" | "BURN" | "UNSPECIFIED";
  /** The account of the mint or redemption. */
  accountId: string;
  /** The settling chain. */
  blockchain: LedgerEventChain;
  /** The amount settled, a decimal string of USDC. */
  amount: string;
  /** The settlement's state after this step. */
  state: SettlementStateName;
  /** The transaction's nonce. */
  nonce: number;
  /** SUBMITTED: the signed transaction's hash; CONFIRMED/FAILED: the mined one. */
  txHash: string;
  /** CONFIRMED/FAILED: the block it was mined in (0 when not mined). */
  blockNumber: number;
  /** FAILED: why. */
  error: string;
}

/** A transfer between two accounts. */
export interface LedgerTransferEvent {
  /** The transfer's id. */
  transferId: string;
  /** The debited account. */
  fromAccountId: string;
  /** The credited account. */
  toAccountId: string;
  /** The amount, a decimal string of USDC. */
  amount: string;
}

/** A redemption (money out of circulation), or its re-credit after a failed burn. */
export interface LedgerRedemptionEvent {
  /** The redemption's id. */
  redemptionId: string;
  /** The debited (or re-credited) account. */
  accountId: string;
  /** The amount, a decimal string of USDC. */
  amount: string;
  /** The chain redeemed from. */
  blockchain: LedgerEventChain;
  /** REDEMPTION_RECREDITED: why the burn failed. */
  reason: string;
}

/** An account frozen or unfrozen. */
export interface LedgerFreezeEvent {
  /** The account. */
  accountId: string;
  /** Whether it is frozen after this event. */
  frozen: boolean;
  /** Why it was frozen (empty on unfreeze). */
  reason: string;
}

/** The reserve set (it caps the supply). */
export interface LedgerReserveEvent {
  /** The new reserve, a decimal string of USDC. */
  reserve: string;
  /** The auditor's attestation it was set from. */
  attestationRef: string;
}

/** A minter's allowance set by a manager. */
export interface LedgerAllowanceEvent {
  /** The minter. */
  principal: string;
  /** What is left of its allowance, a decimal string of USDC. */
  allowance: string;
}

/** One event of the ledger, as WatchLedger sends it; exactly one payload field is set, by kind. */
export interface LedgerEvent {
  /** Stable and unique: the same event always has the same id. */
  readonly eventId: string;
  /** Pass as `from` to resume after this event. */
  readonly cursor: string;
  /** What happened. */
  readonly kind: LedgerEventKindName;
  /** When the change was made (wall clock of the replica or worker that made it). */
  readonly time: Date | undefined;
  /** The accounts it touches (none for reserve and allowance events). */
  readonly accountIds: readonly string[];
  /** Set for the MINT_* kinds. */
  readonly mint?: LedgerMintEvent;
  /** Set for the SETTLEMENT_* kinds. */
  readonly settlement?: LedgerSettlementEvent;
  /** Set for TRANSFER. */
  readonly transfer?: LedgerTransferEvent;
  /** Set for REDEMPTION and REDEMPTION_RECREDITED. */
  readonly redemption?: LedgerRedemptionEvent;
  /** Set for ACCOUNT_FROZEN and ACCOUNT_UNFROZEN. */
  readonly freeze?: LedgerFreezeEvent;
  /** Set for RESERVE_SET. */
  readonly reserve?: LedgerReserveEvent;
  /** Set for ALLOWANCE_SET. */
  readonly allowance?: LedgerAllowanceEvent;
}

function strip(name: string | undefined, prefix: string): string {
  if (name === undefined) return "UNRECOGNIZED";
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

const chain = (w: WireBlockchain): BlockchainName | "UNSPECIFIED" | "UNRECOGNIZED" => strip(WireBlockchain[w], "BLOCKCHAIN_") as BlockchainName;

/** The SDK's form of a WatchLedger event from the wire. */
export function ledgerEventFromWire(w: WireEvent): LedgerEvent {
  const out: { -readonly [K in keyof LedgerEvent]: LedgerEvent[K] } = {
    eventId: w.eventId,
    cursor: w.cursor,
    kind: strip(WireKind[w.kind], "LEDGER_EVENT_KIND_") as LedgerEventKindName,
    time: w.time,
    accountIds: [...w.accountIds],
  };
  if (w.mint !== undefined) out.mint = { ...w.mint, blockchain: chain(w.mint.blockchain), status: strip(WireMintStatus[w.mint.status], "MINT_STATUS_") as MintStatusName };
  if (w.settlement !== undefined) {
    out.settlement = {
      ...w.settlement,
      kind: strip(WireSettlementKind[w.settlement.kind], "SETTLEMENT_KIND_") as "MINT" | "BURN",
      blockchain: chain(w.settlement.blockchain),
      state: strip(WireSettlementState[w.settlement.state], "SETTLEMENT_STATE_") as SettlementStateName,
    };
  }
  if (w.transfer !== undefined) out.transfer = { ...w.transfer };
  if (w.redemption !== undefined) out.redemption = { ...w.redemption, blockchain: chain(w.redemption.blockchain) };
  if (w.freeze !== undefined) out.freeze = { ...w.freeze };
  if (w.reserve !== undefined) out.reserve = { ...w.reserve };
  if (w.allowance !== undefined) out.allowance = { ...w.allowance };
  return out;
}

function kindToWire(name: string): number {
  const value = (WireKind as unknown as Record<string, number | undefined>)[`LEDGER_EVENT_KIND_${name.toUpperCase()}`];
  // An unknown name goes as UNSPECIFIED, which the service refuses INVALID_ARGUMENT.
  return typeof value === "number" && value > 0 ? value : WireKind.LEDGER_EVENT_KIND_UNSPECIFIED;
}

/** Whether a stream that ended with `e` may be opened again from the cursor. */
export function resumable(e: MintServiceError): boolean {
  switch (e.code) {
    case "UNAVAILABLE":
    case "DEADLINE_EXCEEDED":
    case "UNKNOWN":
      return true;
    case "RESOURCE_EXHAUSTED":
      return e.reason === "CONSUMER_TOO_SLOW" || e.reason === "WATCHERS_LIMIT";
    case "INTERNAL":
      // A stream reset by a GOAWAY; an INTERNAL with our ErrorInfo is a bug in the service.
      return !e.hasErrorInfo;
    // The cursor is too old or of another feed, the request is wrong, or the caller may not: a retry changes nothing.
    case "OK":
    case "CANCELLED":
    case "INVALID_ARGUMENT":
    case "NOT_FOUND":
    case "ALREADY_EXISTS":
    case "PERMISSION_DENIED":
    case "FAILED_PRECONDITION":
    case "ABORTED":
    case "OUT_OF_RANGE":
    case "UNIMPLEMENTED":
    case "DATA_LOSS":
    case "UNAUTHENTICATED":
      return false;
  }
}

function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** The iterator behind `MintClient.watchLedger`. */
export async function* watchLedger(pool: EndpointPool, metadata: () => grpc.Metadata, input: WatchLedgerInput = {}): AsyncGenerator<LedgerEvent, void, undefined> {
  const signal = input.signal;
  let cursor = input.from === "oldest" ? "" : (input.from ?? "");
  let fromOldest = input.from === "oldest";
  const accountIds = [...(input.accounts ?? [])];
  const kinds = (input.kinds ?? []).map(kindToWire);
  let failures = 0;
  let avoid: string | undefined;
  while (!aborted(signal)) {
    const endpoint = pool.pick(avoid);
    if (endpoint === undefined) {
      failures++;
      await sleep(backoffMs(failures, DEFAULT_RETRY_POLICY) + 1, signal);
      continue;
    }
    const stream = endpoint.mint.watchLedger({ fromCursor: cursor, accountIds, kinds, fromOldest: fromOldest && cursor === "" }, metadata());
    // Errors reach the loop below; this keeps a late one (after a cancel) from going unhandled.
    stream.on("error", () => undefined);
    const onAbort = (): void => stream.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    stream.on("metadata", (md: grpc.Metadata) => {
      // Where this stream starts: resuming from it after a disconnect misses nothing.
      const start = md.get("x-mint-watch-cursor")[0];
      if (typeof start === "string" && start !== "") {
        cursor = start;
        fromOldest = false;
      }
    });
    let ended = false;
    try {
      for await (const r of stream as AsyncIterable<{ event?: WireEvent }>) {
        if (r.event === undefined) continue;
        failures = 0;
        const event = ledgerEventFromWire(r.event);
        cursor = event.cursor;
        yield event;
      }
      ended = true;
      // The server never ends a stream with OK; treat it as a disconnect.
      failures++;
    } catch (err) {
      ended = true;
      if (aborted(signal)) return;
      const e = toMintServiceError(err, endpoint.address);
      if (!resumable(e)) throw e;
      // Resume after the last event handed out: the server's resume_cursor
      // names the last event it sent, which may still have been in this
      // client's buffer when the stream ended.
      failures++;
      avoid = endpoint.address;
      const delayMs = e.retryAfterMs ?? backoffMs(failures, DEFAULT_RETRY_POLICY);
      input.onResume?.({ error: e, cursor, delayMs });
      await sleep(delayMs, signal);
      continue;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!ended) stream.cancel();
    }
    await sleep(backoffMs(failures, DEFAULT_RETRY_POLICY), signal);
  }
}

export { MintServiceError };
