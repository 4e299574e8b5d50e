/**
 * batchMint and batchTransfer: long lists sent as BatchMint / BatchTransfer
 * calls of at most `batchSize` items, one result per item in the list's
 * order.
 *
 * Every item gets its idempotency key once, before the first call (the
 * caller's, or a generated UUIDv7), and keeps it: a call that fails as a
 * whole is retried by the client's rules with the same keys, and an item
 * whose own result is retryable (its RetryInfo or a transient code, e.g.
 * RATE_LIMITED, IDEMPOTENCY_KEY_IN_USE, STORE_UNAVAILABLE) is sent again in a
 * later call, with its key, until the policy's attempts or budget run out.
 * Items already answered are never resent.
 */
import type { BatchMintResponse, BatchTransferResponse, MintUsdcRequest, TransferRequest } from "../gen/usdc/mint/v1/mint.js";
import { itemError, MintServiceError } from "./errors.js";
import { backoffMs, DEFAULT_RETRY_POLICY, retryDecision, type RetryPolicy } from "./retry.js";
import { blockchainToWire, mintFromWire, transferFromWire, type MintResult, type TransferResult } from "./types.js";
import { uuidv7 } from "./uuidv7.js";

/** The service's default MINT_BATCH_MAX_ITEMS: the most items one call may carry. */
export const DEFAULT_BATCH_SIZE = 1000;

/** One item's outcome: its result, or its own error (the others are unaffected). */
export type BatchItemResult<T> =
  | {
      /** The item applied or replayed. */
      readonly ok: true;
      /** Its result, as the unary call answers it. */
      readonly value: T;
    }
  | {
      /** The item failed. */
      readonly ok: false;
      /** Its error, as the unary call would have thrown it. */
      readonly error: MintServiceError;
    };

/** How batchMint and batchTransfer split, retry and report. */
export interface BatchOptions {
  /** Items per call, 1 to the service's MINT_BATCH_MAX_ITEMS (default 1000). */
  readonly batchSize?: number;
  /** Called after each call with how many items have their final result, and how many there are. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** What the batch helpers need of the client: one logical call (with its retries) and the retry policy. */
export interface BatchTransport {
  invoke<Req, Res>(rpc: "batchMint" | "batchTransfer", req: Req): Promise<Res>;
  /** The policy for per-item retries; undefined: none. */
  readonly policy: RetryPolicy | undefined;
  /** Stops waiting between rounds. */
  readonly signal?: AbortSignal;
}

function batchSizeOf(options: BatchOptions | undefined): number {
  const size = options?.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(size) || size < 1) throw new TypeError(`batchSize must be a positive integer, not ${String(size)}`);
  return size;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Sends `count` items in calls of at most `size`, retrying items whose own
 * error is retryable in later rounds; `send` answers one call's items in order.
 */
async function inRounds<T>(
  count: number,
  size: number,
  transport: BatchTransport,
  options: BatchOptions | undefined,
  send: (indexes: readonly number[]) => Promise<BatchItemResult<T>[]>,
): Promise<BatchItemResult<T>[]> {
  const results: (BatchItemResult<T> | undefined)[] = new Array<BatchItemResult<T> | undefined>(count).fill(undefined);
  const policy = transport.policy;
  const maxRounds = policy?.maxAttempts ?? 1;
  const budgetEndsAt = Date.now() + (policy ?? DEFAULT_RETRY_POLICY).budgetMs;
  let pending = Array.from({ length: count }, (_, i) => i);
  let done = 0;
  for (let round = 1; pending.length > 0; round++) {
    const again: number[] = [];
    let waitMs = 0;
    for (let at = 0; at < pending.length; at += size) {
      const chunk = pending.slice(at, at + size);
      const out = await send(chunk);
      chunk.forEach((index, n) => {
        const r = out[n] as BatchItemResult<T>;
        results[index] = r;
        const decision = r.ok || round >= maxRounds ? { retry: false as const } : retryDecision(r.error, "keyed");
        if (decision.retry) {
          again.push(index);
          waitMs = Math.max(waitMs, decision.exactDelayMs ?? (policy === undefined ? 0 : backoffMs(round, policy)));
        } else {
          done++;
        }
      });
      options?.onProgress?.(done, count);
    }
    if (again.length === 0 || transport.signal?.aborted === true || Date.now() + waitMs >= budgetEndsAt) break;
    await sleep(waitMs, transport.signal);
    pending = again;
  }
  if (done < count) options?.onProgress?.(count, count);
  return results as BatchItemResult<T>[];
}

/** A batch mint item: as a mint request; its key generated when absent. */
export interface BatchMintItem {
  /** The account to credit. */
  readonly accountId: string;
  /** Decimal USDC string. */
  readonly amount: string;
  /** The chain, by short name ("ETHEREUM"). */
  readonly blockchain: string;
  /** The item's key; generated (UUIDv7) when absent and kept on every retry. */
  readonly idempotencyKey?: string;
}

/** A batch transfer item: as a transfer request; its key generated when absent. */
export interface BatchTransferItem {
  /** The account to debit. */
  readonly fromAccountId: string;
  /** The account to credit. */
  readonly toAccountId: string;
  /** Decimal USDC string. */
  readonly amount: string;
  /** The item's key; generated (UUIDv7) when absent and kept on every retry. */
  readonly idempotencyKey?: string;
}

/** batchTransfer's options: the batch options, and all-or-none. */
export interface BatchTransferOptions extends BatchOptions {
  /**
   * Every item applies or none does (one call: at most `batchSize` items, and
   * no item is retried on its own). A refused batch answers every item with
   * an error: the refusing item its own, the others ATOMIC_BATCH_REFUSED with
   * its index in `metadata.refused_item`.
   */
  readonly atomic?: boolean;
}

export async function batchMint(transport: BatchTransport, items: readonly BatchMintItem[], options?: BatchOptions): Promise<BatchItemResult<MintResult>[]> {
  const size = batchSizeOf(options);
  const reqs: MintUsdcRequest[] = items.map((i) => ({ accountId: i.accountId, amount: i.amount, blockchain: blockchainToWire(i.blockchain), idempotencyKey: i.idempotencyKey ?? uuidv7() }));
  if (reqs.length === 0) return [];
  return inRounds(reqs.length, size, transport, options, async (indexes) => {
    const res = await transport.invoke<{ items: MintUsdcRequest[] }, BatchMintResponse>("batchMint", { items: indexes.map((i) => reqs[i] as MintUsdcRequest) });
    return indexes.map((index, n): BatchItemResult<MintResult> => {
      const r = res.results[n];
      if (r?.response?.mint !== undefined) return { ok: true, value: { mint: mintFromWire(r.response.mint), replayed: r.response.replayed, idempotencyKey: (reqs[index] as MintUsdcRequest).idempotencyKey } };
      return { ok: false, error: r?.error === undefined ? missing() : itemError(r.error) };
    });
  });
}

export async function batchTransfer(transport: BatchTransport, items: readonly BatchTransferItem[], options?: BatchTransferOptions): Promise<BatchItemResult<TransferResult>[]> {
  const size = batchSizeOf(options);
  const atomic = options?.atomic === true;
  if (atomic && items.length > size) throw new TypeError(`an all-or-none batchTransfer is one call: at most batchSize (${size}) items, not ${items.length}`);
  const reqs: TransferRequest[] = items.map((i) => ({ fromAccountId: i.fromAccountId, toAccountId: i.toAccountId, amount: i.amount, idempotencyKey: i.idempotencyKey ?? uuidv7() }));
  if (reqs.length === 0) return [];
  const rounds = atomic ? { ...transport, policy: undefined } : transport;
  return inRounds(reqs.length, size, rounds, options, async (indexes) => {
    const res = await transport.invoke<{ items: TransferRequest[]; atomic: boolean }, BatchTransferResponse>("batchTransfer", { items: indexes.map((i) => reqs[i] as TransferRequest), atomic });
    return indexes.map((index, n): BatchItemResult<TransferResult> => {
      const r = res.results[n];
      if (r?.response?.transfer !== undefined) return { ok: true, value: { transfer: transferFromWire(r.response.transfer), replayed: r.response.replayed, idempotencyKey: (reqs[index] as TransferRequest).idempotencyKey } };
      return { ok: false, error: r?.error === undefined ? missing() : itemError(r.error) };
    });
  });
}

/** A result the service did not send (a server that does not know the RPC's shape). */
function missing(): MintServiceError {
  return new MintServiceError({ code: "UNKNOWN", message: "the service sent no result for this item" });
}
