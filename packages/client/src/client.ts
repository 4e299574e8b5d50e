/**
 * createMintClient: the typed, promise-based client of the MintService.
 *
 * Every method is one *logical operation*: it may make several attempts
 * (see retry.ts for which failures are retried), each with its own deadline,
 * all inside one time budget, all with the same idempotency key. Calls go
 * round-robin over the replicas that are SERVING (endpoints.ts).
 */
import * as grpc from "@grpc/grpc-js";
import {
  MintServiceService,
  type GetBalanceRequest,
  type GetMintRequest,
  type ListMintsRequest,
  type ListAuditEventsRequest,
  type VerifyAuditChainRequest,
  type MintUsdcRequest,
  type ReconcileMintRequest,
  type TransferRequest,
} from "../gen/usdc/mint/v1/mint.js";
import { EndpointPool, expandTargets, isLoopbackTarget, type EndpointState } from "./endpoints.js";
import { MintServiceError, toMintServiceError } from "./errors.js";
import { backoffMs, DEFAULT_RETRY_POLICY, retryDecision, type CallSafety, type RetryPolicy } from "./retry.js";
import { Blockchain as WireBlockchain, SettlementState, type ReconcileChainRequest, type ReconcileChainResponse } from "../gen/usdc/mint/v1/mint.js";
import { blockchainToWire, mintFromWire, mintStatusToWire, type MinterAllowance, transferFromWire, type Balance, type BlockchainName, type ChainReconciliation, type Mint, type MintPage, type MintResult, type TransferResult } from "./types.js";
import { redemptionFromWire, supplyFromWire, type FreezeResult, type RedeemResult, type Redemption, type RedemptionPage, type SupplyInfo } from "./types.js";
import { uuidv7 } from "./uuidv7.js";
import { watchLedger, type LedgerEvent, type WatchLedgerInput } from "./watch.js";
import { batchMint, batchTransfer, type BatchItemResult, type BatchMintItem, type BatchOptions, type BatchTransferItem, type BatchTransferOptions } from "./batch.js";

/** What `onRetry` is told before each retry. */
export interface RetryEvent {
  /** The attempt that failed (1 = the first). */
  readonly attempt: number;
  /** Why it failed. */
  readonly error: MintServiceError;
  /** How long the client waits before the next attempt. */
  readonly delayMs: number;
  /** True when the delay is the server's RetryInfo, false when it is jittered backoff. */
  readonly fromRetryInfo: boolean;
}

/** How {@link createMintClient} connects, authenticates and retries. */
export interface MintClientOptions {
  /**
   * Where the replicas are: "host:port", a list of them, "ipv4:a:1,b:2",
   * "ipv6:[::1]:1,[::1]:2" (one channel and one health watch per address) or
   * "dns:name:port" (one channel, round_robin over what the name resolves to).
   */
  readonly addresses: string | readonly string[];
  /** Channel credentials (TLS, mTLS); default plaintext, for a local or sidecar-protected service. */
  readonly credentials?: grpc.ChannelCredentials;
  /**
   * A bearer token sent as `authorization: Bearer <token>` on every call. Without
   * `credentials` (plaintext) it is refused for any non-loopback address unless
   * `allowPlaintextToken` is set: a token on the wire in clear text is a stolen token.
   */
  readonly token?: string;
  /** Send `token` over plaintext to non-loopback addresses (a network you trust, e.g. a sidecar). */
  readonly allowPlaintextToken?: boolean;
  /** Deadline of each attempt in milliseconds (default 5000); one operation may make several within `retry.budgetMs`. */
  readonly defaultDeadlineMs?: number;
  /** Retry policy overrides; `false` turns retries off (one attempt per call). */
  readonly retry?: Partial<RetryPolicy> | false;
  /** Called before each retry (for logs and metrics). */
  readonly onRetry?: (event: RetryEvent) => void;
  /** Extra grpc-js channel options (e.g. "grpc.ssl_target_name_override"). */
  readonly channelOptions?: grpc.ChannelOptions;
}

/** Per-call options, every method's last argument. */
export interface CallOptions {
  /** This call's per-attempt deadline, instead of `defaultDeadlineMs`. */
  readonly deadlineMs?: number;
  /** Cancels the operation (the attempt in flight and any wait between attempts). */
  readonly signal?: AbortSignal;
  /** Retry policy overrides for this call; `false` = one attempt. */
  readonly retry?: Partial<RetryPolicy> | false;
}

/** A mint request. */
export interface MintUsdcInput {
  /** The account to credit. */
  readonly accountId: string;
  /** Decimal USDC string, e.g. "100.5" (use fromMicros() for a bigint). */
  readonly amount: string;
  /** The chain, by short name ("ETHEREUM"); an unknown one is refused by the service (INVALID_BLOCKCHAIN). */
  readonly blockchain: BlockchainName | (string & {});
  /** One key per logical mint; generated (UUIDv7) when absent and reused on every retry. */
  readonly idempotencyKey?: string;
}

/** A transfer request. */
export interface TransferInput {
  /** The account to debit. */
  readonly fromAccountId: string;
  /** The account to credit. */
  readonly toAccountId: string;
  /** Decimal USDC string. */
  readonly amount: string;
  /** One key per logical transfer; generated (UUIDv7) when absent and reused on every retry. */
  readonly idempotencyKey?: string;
}

/** listMints filters and paging. */
export interface ListMintsInput {
  /** Only this account's mints; absent or "" = every account. */
  readonly accountId?: string;
  /** 1..1000; the service's default when absent. */
  readonly pageSize?: number;
  /** The previous page's `nextPageToken`; absent for the first page. */
  readonly pageToken?: string;
  /** Only mints in this status ("PENDING_APPROVAL", ...); absent or "" = all. */
  readonly status?: string;
}

/** A reversal request for a mint whose chain transaction failed. */
export interface ReconcileMintInput {
  /** The mint to reverse. */
  readonly mintId: string;
  /** Why (recorded on the mint). */
  readonly reason?: string;
}

/** listAuditEvents filters; every one optional. */
export interface ListAuditEventsInput {
  /** Only records touching this account. */
  readonly accountId?: string;
  /** Only records of this principal. */
  readonly principal?: string;
  /** Only records at or after this time. */
  readonly startTime?: Date;
  /** Only records before this time. */
  readonly endTime?: Date;
  /** Records per page; the service's default when absent. */
  readonly pageSize?: number;
  /** The previous page's `nextPageToken`; absent for the first page. */
  readonly pageToken?: string;
}

/** One sealed audit journal record. */
export interface AuditEvent {
  /** Its sequence number (1, 2, ... without gaps). */
  readonly seq: number;
  /** When the change was applied. */
  readonly time: Date;
  /** Who made it. */
  readonly principal: string;
  /** The RPC ("MintUsdc", "Transfer", ...). */
  readonly action: string;
  /** The operation's idempotency key ("" for one without). */
  readonly idempotencyKey: string;
  /** The request, as JSON. */
  readonly requestJson: string;
  /** The result, as JSON. */
  readonly resultJson: string;
  /** The accounts it touched. */
  readonly accountIds: readonly string[];
  /** The previous record's hash (the chain). */
  readonly prevHash: string;
  /** This record's hash, over its fields and prevHash. */
  readonly hash: string;
}

/** One page of listAuditEvents. */
export interface AuditPage {
  /** This page's records, oldest first. */
  readonly events: AuditEvent[];
  /** "" on the last page. */
  readonly nextPageToken: string;
}

/** VerifyAuditChain's answer: `whole`, or the first broken sequence number and why. */
export interface AuditVerdict {
  /** True when every checked record's hash matches. */
  readonly whole: boolean;
  /** Records checked before the answer. */
  readonly checked: number;
  /** The first record checked. */
  readonly firstSeq: number;
  /** The last record checked. */
  readonly lastSeq: number;
  /** The hash of the last record checked. */
  readonly headHash: string;
  /** Records committed but not sealed into the chain yet. */
  readonly unsealed: number;
  /** The first broken record (0 when whole). */
  readonly brokenSeq: number;
  /** Why it is broken ("" when whole). */
  readonly reason: string;
}

/**
 * The MintService client {@link createMintClient} returns. Every call retries
 * by the SDK's rules with one idempotency key per operation, and fails with a
 * {@link MintServiceError}.
 */
export interface MintClient {
  /** Mints USDC into an account; idempotent by `idempotencyKey` (generated when absent). */
  mintUsdc(input: MintUsdcInput, options?: CallOptions): Promise<MintResult>;
  /** Moves USDC between two accounts; idempotent by `idempotencyKey` (generated when absent). */
  transfer(input: TransferInput, options?: CallOptions): Promise<TransferResult>;
  /**
   * Mints many: BatchMint calls of at most `batchSize` items (default 1000),
   * one result per item in the list's order. Each item keeps its key
   * (generated when absent) across every retry; items whose own error is
   * retryable are sent again in later calls. An item's failure never fails
   * the others; a call that still fails after its retries throws.
   */
  batchMint(items: readonly BatchMintItem[], options?: CallOptions & BatchOptions): Promise<BatchItemResult<MintResult>[]>;
  /** Transfers many, as batchMint; with `atomic`, one all-or-none call (see BatchTransferOptions.atomic). */
  batchTransfer(items: readonly BatchTransferItem[], options?: CallOptions & BatchTransferOptions): Promise<BatchItemResult<TransferResult>[]>;
  /** An account's balance (spendable and pending) and whether it is frozen. */
  getBalance(accountId: string, options?: CallOptions): Promise<Balance>;
  /** One mint by id (NOT_FOUND when there is none). */
  getMint(mintId: string, options?: CallOptions): Promise<Mint>;
  /** One page of mints, oldest first. */
  listMints(input?: ListMintsInput, options?: CallOptions): Promise<MintPage>;
  /** Every mint (of one account, or all), page after page, as an async iterator. */
  listAllMints(input?: Omit<ListMintsInput, "pageToken">, options?: CallOptions): AsyncIterable<Mint>;
  /** Reverses a mint whose chain transaction failed; a retry that finds it reversed with the same reason answers the mint. */
  reconcileMint(input: ReconcileMintInput, options?: CallOptions): Promise<Mint>;
  /** Compares the chain with the ledger (read-only). */
  reconcileChain(blockchain: BlockchainName | (string & {}), options?: CallOptions): Promise<ChainReconciliation>;
  /** One page of the audit journal (role auditor). */
  listAuditEvents(input?: ListAuditEventsInput, options?: CallOptions): Promise<AuditPage>;
  /** Recomputes the journal's chain over [fromSeq, toSeq] (0: start / head). */
  verifyAuditChain(input?: { fromSeq?: number; toSeq?: number }, options?: CallOptions): Promise<AuditVerdict>;
  /** Approves a pending mint as this client's principal; safe to retry (counted once). */
  approveMint(mintId: string, options?: CallOptions): Promise<Mint>;
  /** Rejects a pending mint. */
  rejectMint(input: { readonly mintId: string; readonly reason?: string }, options?: CallOptions): Promise<Mint>;
  /**
   * Sets what a minter may still mint (decimal USDC; "0" revokes). With
   * `expectedAmount` it is a compare-and-set: applied only while what is left
   * is exactly that, else a MintServiceError with reason ALLOWANCE_CHANGED and
   * the value now in `metadata.remaining`. Setting one's own allowance is
   * refused (SELF_ALLOWANCE) on a service with an auth file.
   */
  setMinterAllowance(input: { readonly principal: string; readonly amount: string; readonly expectedAmount?: string }, options?: CallOptions): Promise<MinterAllowance>;
  /** What is left of a minter's allowance. */
  getMinterAllowance(principal: string, options?: CallOptions): Promise<MinterAllowance>;
  /** Records the attested reserve; mints beyond it are refused. */
  setReserve(input: { amount: string; attestationRef: string }, options?: CallOptions): Promise<SupplyInfo>;
  /** Supply, reserve and headroom. */
  getSupply(options?: CallOptions): Promise<SupplyInfo>;
  /** Redeems USDC from an account; idempotent by `idempotencyKey` (generated when absent), scoped to the RPC and the caller. */
  redeemUsdc(input: { accountId: string; amount: string; blockchain: BlockchainName | string; idempotencyKey?: string }, options?: CallOptions): Promise<RedeemResult>;
  /** One redemption by id. */
  getRedemption(redemptionId: string, options?: CallOptions): Promise<Redemption>;
  /** One page of redemptions, oldest first (accountId "" = every account). */
  listRedemptions(input?: { readonly accountId?: string; readonly pageSize?: number; readonly pageToken?: string }, options?: CallOptions): Promise<RedemptionPage>;
  /** Freezes an account: it can neither send nor receive until unfrozen. */
  freezeAccount(input: { accountId: string; reason?: string }, options?: CallOptions): Promise<FreezeResult>;
  /** Lifts a freeze. */
  unfreezeAccount(input: { accountId: string; reason?: string }, options?: CallOptions): Promise<FreezeResult>;
  /**
   * The ledger's events from `from` (a cursor; "oldest"; absent: from now),
   * as an async iterator that resumes from its last cursor by itself after a
   * disconnect, a replica's shutdown or the server's slow-consumer bound.
   */
  watchLedger(input?: WatchLedgerInput): AsyncGenerator<LedgerEvent, void, undefined>;
  /** What the client knows of each replica's health (from its Watch streams). */
  endpoints(): EndpointState[];
  /** Resolves once every replica has reported its health (or after `timeoutMs`). */
  waitForHealth(timeoutMs?: number): Promise<EndpointState[]>;
  /** Closes every channel and health stream; calls made afterwards fail. */
  close(): void;
}

type Rpc = keyof typeof MintServiceService;

/** How each RPC may be retried; a new RPC is one line here and one method below. */
const SAFETY: Record<Rpc, CallSafety> = {
  mintUsdc: "keyed",
  transfer: "keyed",
  // Every item carries its key, kept across resends.
  batchMint: "keyed",
  batchTransfer: "keyed",
  getBalance: "read",
  getMint: "read",
  listMints: "read",
  reconcileMint: "unkeyed",
  // A read-only comparison of the chain with the ledger.
  reconcileChain: "read",
  listAuditEvents: "read",
  verifyAuditChain: "read",
  // An approver's retry counts once and a set is absolute, so both may be resent after an ambiguous failure.
  approveMint: "keyed",
  rejectMint: "unkeyed",
  setMinterAllowance: "keyed",
  getMinterAllowance: "read",
  // Setting a reserve or a frozen state to a value is idempotent
  // by nature, but a resend may land after another caller's change: only
  // failures where the service did not start are retried.
  setReserve: "unkeyed",
  getSupply: "read",
  redeemUsdc: "keyed",
  getRedemption: "read",
  listRedemptions: "read",
  freezeAccount: "unkeyed",
  unfreezeAccount: "unkeyed",
  // A stream: watchLedger resumes from its cursor instead of resending.
  watchLedger: "read",
};

export const DEFAULT_DEADLINE_MS = 5_000;

function abortError(): MintServiceError {
  return new MintServiceError({ code: "CANCELLED", message: "the operation was cancelled by the caller", sent: false });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(abortError());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function createMintClient(options: MintClientOptions): MintClient {
  const credentials = options.credentials ?? grpc.credentials.createInsecure();
  const defaultDeadlineMs = options.defaultDeadlineMs ?? DEFAULT_DEADLINE_MS;
  const token = options.token;
  if (token !== undefined && /[\r\n]/.test(token)) throw new TypeError("createMintClient: token must be one line");
  const metadata = (): grpc.Metadata => {
    const md = new grpc.Metadata();
    if (token !== undefined && token !== "") md.set("authorization", `Bearer ${token}`);
    return md;
  };
  const targets = expandTargets(options.addresses);
  if (token !== undefined && token !== "" && options.credentials === undefined && options.allowPlaintextToken !== true) {
    const remote = targets.find((t) => !isLoopbackTarget(t));
    if (remote !== undefined) {
      throw new TypeError(`createMintClient: the token would travel in plaintext to ${remote}; pass TLS credentials, or allowPlaintextToken: true on a network you trust`);
    }
  }
  const pool = new EndpointPool(targets, credentials, options.channelOptions ?? {}, metadata);

  function policyFor(call: CallOptions | undefined): RetryPolicy | undefined {
    const override = call?.retry ?? options.retry;
    if (override === false) return undefined;
    return { ...DEFAULT_RETRY_POLICY, ...(options.retry === false ? {} : options.retry), ...(call?.retry === false ? {} : call?.retry) };
  }

  /** One attempt on one endpoint. */
  function attempt<Req, Res>(rpc: Rpc, req: Req, deadline: number, signal: AbortSignal | undefined, avoid: string | undefined): Promise<{ res: Res; address: string }> {
    const endpoint = pool.pick(avoid);
    if (endpoint === undefined) {
      return Promise.reject(
        new MintServiceError({ code: "UNAVAILABLE", message: "no replica is serving (every address is NOT_SERVING or unreachable)", reason: "NO_SERVING_ADDRESS", sent: false }),
      );
    }
    const def = MintServiceService[rpc] as unknown as {
      path: string;
      requestSerialize: (r: Req) => Buffer;
      responseDeserialize: (b: Buffer) => Res;
    };
    return new Promise((resolve, reject) => {
      const call = endpoint.mint.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, req, metadata(), { deadline }, (err, res) => {
        signal?.removeEventListener("abort", onAbort);
        if (err !== null || res === undefined) reject(toMintServiceError(err ?? new Error("empty response"), endpoint.address));
        else resolve({ res, address: endpoint.address });
      });
      const onAbort = (): void => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** One logical operation: attempts, waits and the budget. */
  async function invoke<Req, Res>(rpc: Rpc, req: Req, call: CallOptions | undefined): Promise<Res> {
    const policy = policyFor(call);
    const deadlineMs = call?.deadlineMs ?? defaultDeadlineMs;
    const signal = call?.signal;
    const startedAt = Date.now();
    const budgetEndsAt = startedAt + (policy?.budgetMs ?? deadlineMs);
    let avoid: string | undefined;
    for (let n = 1; ; n++) {
      if (signal?.aborted === true) throw abortError();
      const now = Date.now();
      try {
        const { res } = await attempt<Req, Res>(rpc, req, Math.min(now + deadlineMs, Math.max(budgetEndsAt, now + 1)), signal, avoid);
        return res;
      } catch (raw) {
        const err = toMintServiceError(raw);
        err.attempts = n;
        // (The signal may have fired during the attempt; TypeScript narrowed it before.)
        if ((signal as AbortSignal | undefined)?.aborted === true || policy === undefined || n >= policy.maxAttempts) throw err;
        const decision = retryDecision(err, SAFETY[rpc]);
        if (!decision.retry) throw err;
        const fromRetryInfo = decision.exactDelayMs !== undefined;
        const delayMs = decision.exactDelayMs ?? backoffMs(n, policy);
        // A wait that ends after the budget cannot lead to an answer in time: give up now.
        if (Date.now() + delayMs >= budgetEndsAt) throw err;
        avoid = err.address;
        options.onRetry?.({ attempt: n, error: err, delayMs, fromRetryInfo });
        await sleep(delayMs, signal);
      }
    }
  }

  const client: MintClient = {
    async mintUsdc(input, call) {
      const idempotencyKey = input.idempotencyKey ?? uuidv7();
      const req: MintUsdcRequest = { accountId: input.accountId, amount: input.amount, blockchain: blockchainToWire(input.blockchain), idempotencyKey };
      const res = await invoke<MintUsdcRequest, { mint: Parameters<typeof mintFromWire>[0]; replayed: boolean }>("mintUsdc", req, call);
      return { mint: mintFromWire(res.mint), replayed: res.replayed, idempotencyKey };
    },
    async transfer(input, call) {
      const idempotencyKey = input.idempotencyKey ?? uuidv7();
      const req: TransferRequest = { fromAccountId: input.fromAccountId, toAccountId: input.toAccountId, amount: input.amount, idempotencyKey };
      const res = await invoke<TransferRequest, { transfer: Parameters<typeof transferFromWire>[0]; replayed: boolean }>("transfer", req, call);
      return { transfer: transferFromWire(res.transfer), replayed: res.replayed, idempotencyKey };
    },
    batchMint: (items, call) => batchMint({ invoke: (rpc, req) => invoke(rpc, req, call), policy: policyFor(call), ...(call?.signal === undefined ? {} : { signal: call.signal }) }, items, call),
    batchTransfer: (items, call) => batchTransfer({ invoke: (rpc, req) => invoke(rpc, req, call), policy: policyFor(call), ...(call?.signal === undefined ? {} : { signal: call.signal }) }, items, call),
    async getBalance(accountId, call) {
      const res = await invoke<GetBalanceRequest, Balance>("getBalance", { accountId }, call);
      return { accountId: res.accountId, balance: res.balance, pendingBalance: res.pendingBalance || "0", frozen: res.frozen ?? false, freezeReason: res.freezeReason ?? "" };
    },
    async getMint(mintId, call) {
      const res = await invoke<GetMintRequest, { mint: Parameters<typeof mintFromWire>[0] }>("getMint", { mintId }, call);
      return mintFromWire(res.mint);
    },
    async listMints(input = {}, call) {
      const req: ListMintsRequest = {
        accountId: input.accountId ?? "",
        pageSize: input.pageSize ?? 0,
        pageToken: input.pageToken ?? "",
        status: mintStatusToWire(input.status ?? ""),
      };
      const res = await invoke<ListMintsRequest, { mints: Parameters<typeof mintFromWire>[0][]; nextPageToken: string }>("listMints", req, call);
      return { mints: res.mints.map(mintFromWire), nextPageToken: res.nextPageToken };
    },
    listAllMints(input = {}, call) {
      // Through `client`, not `this`: methods may be passed around unbound.
      const list = client.listMints;
      return {
        async *[Symbol.asyncIterator]() {
          let pageToken = "";
          do {
            const page = await list({ ...input, pageToken }, call);
            yield* page.mints;
            pageToken = page.nextPageToken;
          } while (pageToken !== "");
        },
      };
    },
    async reconcileMint(input, call) {
      const reason = input.reason ?? "";
      try {
        const res = await invoke<ReconcileMintRequest, { mint: Parameters<typeof mintFromWire>[0] }>("reconcileMint", { mintId: input.mintId, reason }, call);
        return mintFromWire(res.mint);
      } catch (err) {
        // ReconcileMint has no key: when an earlier attempt of this very
        // operation may have applied (an ambiguous failure, then a retry), the
        // retry meets its own reversal. The mint as reversed with our reason is that answer.
        if (err instanceof MintServiceError && err.reason === "MINT_ALREADY_REVERSED" && err.attempts > 1) {
          const mint = await client.getMint(input.mintId, call);
          if (mint.status === "REVERSED" && mint.reverseReason === reason) return mint;
        }
        throw err;
      }
    },
    async reconcileChain(blockchain, call) {
      const res = await invoke<ReconcileChainRequest, ReconcileChainResponse>("reconcileChain", { blockchain: blockchainToWire(blockchain) }, call);
      return {
        blockchain: WireBlockchain[res.blockchain]?.replace(/^BLOCKCHAIN_/, "") ?? "UNRECOGNIZED",
        agree: res.agree,
        totalSupply: res.totalSupply,
        treasuryBalance: res.treasuryBalance,
        confirmedSum: res.confirmedSum,
        headBlock: res.headBlock,
        differences: res.differences.map((d) => ({ mintId: d.mintId, redemptionId: d.redemptionId, ledgerState: (SettlementState[d.ledgerState] ?? "UNRECOGNIZED").replace(/^SETTLEMENT_STATE_/, ""), chainState: d.chainState, txHash: d.txHash })),
      };
    },
    async listAuditEvents(input = {}, call) {
      const req: ListAuditEventsRequest = {
        accountId: input.accountId ?? "",
        principal: input.principal ?? "",
        startTime: input.startTime,
        endTime: input.endTime,
        pageSize: input.pageSize ?? 0,
        pageToken: input.pageToken ?? "",
      };
      const res = await invoke<ListAuditEventsRequest, { events: AuditEvent[]; nextPageToken: string }>("listAuditEvents", req, call);
      return { events: res.events, nextPageToken: res.nextPageToken };
    },
    async verifyAuditChain(input = {}, call) {
      return invoke<VerifyAuditChainRequest, AuditVerdict>("verifyAuditChain", { fromSeq: input.fromSeq ?? 0, toSeq: input.toSeq ?? 0 }, call);
    },
    async approveMint(mintId, call) {
      const res = await invoke<{ mintId: string }, { mint: Parameters<typeof mintFromWire>[0] }>("approveMint", { mintId }, call);
      return mintFromWire(res.mint);
    },
    async rejectMint(input, call) {
      const reason = input.reason ?? "";
      try {
        const res = await invoke<{ mintId: string; reason: string }, { mint: Parameters<typeof mintFromWire>[0] }>("rejectMint", { mintId: input.mintId, reason }, call);
        return mintFromWire(res.mint);
      } catch (err) {
        // As for reconcileMint: a retry that meets its own earlier rejection answers with it.
        if (err instanceof MintServiceError && err.reason === "MINT_REJECTED" && err.attempts > 1) {
          const mint = await client.getMint(input.mintId, call);
          if (mint.status === "REJECTED" && mint.rejectReason === reason) return mint;
        }
        throw err;
      }
    },
    async setMinterAllowance(input, call) {
      const req = input.expectedAmount === undefined ? { principal: input.principal, amount: input.amount } : { principal: input.principal, amount: input.amount, expectedAmount: input.expectedAmount };
      return invoke<{ principal: string; amount: string; expectedAmount?: string }, MinterAllowance>("setMinterAllowance", req, call);
    },
    async getMinterAllowance(principal, call) {
      return invoke<{ principal: string }, MinterAllowance>("getMinterAllowance", { principal }, call);
    },
    async setReserve(input, call) {
      const res = await invoke<{ amount: string; attestationRef: string }, { supply: Parameters<typeof supplyFromWire>[0] }>("setReserve", input, call);
      return supplyFromWire(res.supply);
    },
    async getSupply(call) {
      const res = await invoke<Record<string, never>, { supply: Parameters<typeof supplyFromWire>[0] }>("getSupply", {}, call);
      return supplyFromWire(res.supply);
    },
    async redeemUsdc(input, call) {
      const idempotencyKey = input.idempotencyKey ?? uuidv7();
      const req = { accountId: input.accountId, amount: input.amount, blockchain: blockchainToWire(input.blockchain), idempotencyKey };
      const res = await invoke<typeof req, { redemption: Parameters<typeof redemptionFromWire>[0]; replayed: boolean }>("redeemUsdc", req, call);
      return { redemption: redemptionFromWire(res.redemption), replayed: res.replayed, idempotencyKey };
    },
    async getRedemption(redemptionId, call) {
      const res = await invoke<{ redemptionId: string }, { redemption: Parameters<typeof redemptionFromWire>[0] }>("getRedemption", { redemptionId }, call);
      return redemptionFromWire(res.redemption);
    },
    async listRedemptions(input = {}, call) {
      const req = { accountId: input.accountId ?? "", pageSize: input.pageSize ?? 0, pageToken: input.pageToken ?? "" };
      const res = await invoke<typeof req, { redemptions: Parameters<typeof redemptionFromWire>[0][]; nextPageToken: string }>("listRedemptions", req, call);
      return { redemptions: res.redemptions.map(redemptionFromWire), nextPageToken: res.nextPageToken };
    },
    async freezeAccount(input, call) {
      return invoke<{ accountId: string; reason: string }, FreezeResult>("freezeAccount", { accountId: input.accountId, reason: input.reason ?? "" }, call);
    },
    async unfreezeAccount(input, call) {
      return invoke<{ accountId: string; reason: string }, FreezeResult>("unfreezeAccount", { accountId: input.accountId, reason: input.reason ?? "" }, call);
    },
    watchLedger: (input) => watchLedger(pool, metadata, input),
    endpoints: () => pool.states(),
    async waitForHealth(timeoutMs = 5_000) {
      await pool.settled(timeoutMs);
      return pool.states();
    },
    close: () => pool.close(),
  };
  return client;
}
