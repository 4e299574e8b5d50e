/**
 * BatchMint and BatchTransfer through the real server: the per-method size
 * caps (which oversize cases carry details and which do not), whole-call
 * refusals, item errors encoded exactly as the unary call's status, the item
 * metrics, the SDK's splitting and per-item retries, and mintctl's bulk
 * commands over both.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfo } from "../../gen/google/rpc/error_details.js";
import { Blockchain, WatchLedgerRequest, type BatchMintResponse, type BatchTransferResponse, type MintUsdcRequest } from "../../gen/usdc/mint/v1/mint.js";
import { createMintClient, type MintClient } from "../../packages/client/src/index.js";
import { parseCsv } from "../../packages/mintctl/src/csv.js";
import { parsePromText, sampleValue } from "../support/prom-text.js";
import { mintctl } from "../support/stub-mint-server.js";
import { decodeError, expectError, startTestServer, type TestServer } from "../support/test-server.js";

let s: TestServer;
let sdk: MintClient;
const dir = mkdtempSync(join(tmpdir(), "batch-"));

beforeAll(async () => {
  s = await startTestServer({ MINT_RATE_LIMIT: "3", MINT_RATE_WINDOW: "1s", MINT_BATCH_MAX_ITEMS: "50", MINT_BATCH_MAX_MESSAGE_BYTES: "65536", MINT_METRICS_LISTEN: "127.0.0.1:0" });
  sdk = createMintClient({ addresses: s.address, retry: { budgetMs: 10_000 } });
});
afterAll(async () => {
  sdk?.close();
  await s?.stop();
});

const mintItem = (accountId: string, amount: string, idempotencyKey: string): MintUsdcRequest => ({ accountId, amount, blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey });
const batchMint = (items: MintUsdcRequest[]): Promise<BatchMintResponse> => s.call("batchMint", { items });

describe("size caps", () => {
  it("a unary request over MINT_MAX_MESSAGE_BYTES but within the transport's cap: RESOURCE_EXHAUSTED MESSAGE_TOO_LARGE, nothing applied", async () => {
    const e = await expectError(s.call("mintUsdc", mintItem("big-1", "1", "k".repeat(255) + "x".repeat(5000))));
    expect([grpc.status[e.code], e.reason, e.metadata]).toEqual(["RESOURCE_EXHAUSTED", "MESSAGE_TOO_LARGE", { rpc: "MintUsdc", max_bytes: "4096", bytes: expect.stringMatching(/^5[0-9]{3}$/) }]);
    expect(await s.app.adapters.ledger.getBalance("big-1")).toBe(0n);
  });

  it("a server-streaming request (WatchLedger) over its cap: the stream ends RESOURCE_EXHAUSTED MESSAGE_TOO_LARGE before it starts", async () => {
    const accountIds = Array.from({ length: 60 }, (_, i) => `watch-${i}-${"w".repeat(100)}`);
    const err = await new Promise<unknown>((resolve) => {
      const stream = s.client.watchLedger(WatchLedgerRequest.fromPartial({ accountIds }));
      stream.on("data", () => resolve(new Error("the stream sent an event")));
      stream.on("error", resolve);
    });
    const e = decodeError(err);
    expect([grpc.status[e.code], e.reason, e.metadata.rpc, e.metadata.max_bytes]).toEqual(["RESOURCE_EXHAUSTED", "MESSAGE_TOO_LARGE", "WatchLedger", "4096"]);
  });

  it("any request over the transport's cap: grpc-js's RESOURCE_EXHAUSTED without details", async () => {
    const items = Array.from({ length: 40 }, (_, i) => mintItem("a".repeat(128), "1", `${"k".repeat(250)}${i}`.padEnd(255, "z") + "y".repeat(2000)));
    const err = (await s.call("batchMint", { items }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.metadata.get("grpc-status-details-bin")).toEqual([]);
  });

  it("a batch within its cap is served; too many items or none: INVALID_ARGUMENT for the whole call", async () => {
    const many = Array.from({ length: 51 }, (_, i) => mintItem("many", "1", `many-${i}`));
    const tooMany = await expectError(batchMint(many));
    expect([e2(tooMany), tooMany.badRequest?.fieldViolations[0]?.field]).toEqual(["INVALID_ARGUMENT TOO_MANY_ITEMS", "items"]);
    expect(e2(await expectError(batchMint([])))).toBe("INVALID_ARGUMENT EMPTY_BATCH");
    expect(e2(await expectError(s.call("batchTransfer", { items: [], atomic: true })))).toBe("INVALID_ARGUMENT EMPTY_BATCH");
    const dup = [{ fromAccountId: "d-1", toAccountId: "d-2", amount: "1", idempotencyKey: "d" }, { fromAccountId: "d-1", toAccountId: "d-3", amount: "1", idempotencyKey: "d" }];
    expect(e2(await expectError(s.call("batchTransfer", { items: dup, atomic: true })))).toBe("INVALID_ARGUMENT DUPLICATE_IDEMPOTENCY_KEY");
    expect(await s.app.adapters.ledger.getBalance("many")).toBe(0n);
  });
});

const e2 = (e: { code: grpc.status; reason: string }): string => `${grpc.status[e.code]} ${e.reason}`;

describe("item results", () => {
  it("an item's error is the unary call's status: code, reason, metadata, details and the call's request id", async () => {
    const md = { "x-request-id": "batch-req-1" };
    const r = await s.call<{ items: MintUsdcRequest[] }, BatchMintResponse>("batchMint", { items: [mintItem("item-ok", "2", "i-1"), mintItem("item-bad", "1.0000001", "i-2")] }, { metadata: md });
    expect(r.results[0]?.response?.mint?.amount).toBe("2");
    const item = r.results[1]?.error;
    expect(item?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const unary = await expectError(s.call("mintUsdc", mintItem("item-bad", "1.0000001", "i-2"), { metadata: md }));
    const info = ErrorInfo.decode(item?.details[0]?.value ?? Buffer.alloc(0));
    expect({ reason: info.reason, metadata: info.metadata, message: item?.message, types: item?.details.map((d) => d.typeUrl) }).toEqual({
      reason: unary.reason,
      metadata: { ...unary.metadata, request_id: "batch-req-1" },
      message: unary.message,
      types: unary.detailTypes,
    });
  });

  it("items and batches are counted apart: usdc_mint_batch_items_total by item code, grpc_server_handled_total per call", async () => {
    const scrape = async () => parsePromText((await s.app.metrics?.text()) ?? "");
    const before = await scrape();
    const items = { grpc_method: "BatchTransfer" };
    const okBefore = sampleValue(before, "usdc_mint_batch_items_total", { ...items, grpc_code: "OK" });
    const fpBefore = sampleValue(before, "usdc_mint_batch_items_total", { ...items, grpc_code: "FailedPrecondition" });
    await s.call("batchTransfer", { items: [{ fromAccountId: "item-ok", toAccountId: "m-2", amount: "1", idempotencyKey: "m-1" }, { fromAccountId: "m-empty", toAccountId: "m-2", amount: "1", idempotencyKey: "m-2" }], atomic: false });
    const after = await scrape();
    expect(sampleValue(after, "usdc_mint_batch_items_total", { ...items, grpc_code: "OK" }) - okBefore).toBe(1);
    expect(sampleValue(after, "usdc_mint_batch_items_total", { ...items, grpc_code: "FailedPrecondition" }) - fpBefore).toBe(1);
    expect(sampleValue(after, "grpc_server_handled_total", { grpc_type: "unary", grpc_service: "usdc.mint.v1.MintService", grpc_method: "BatchTransfer", grpc_code: "OK" })).toBeGreaterThanOrEqual(1);
  });

  it("an atomic batch that refused names the item in refused_item; every other item is ATOMIC_BATCH_REFUSED", async () => {
    const r = await s.call<unknown, BatchTransferResponse>("batchTransfer", {
      items: [{ fromAccountId: "item-ok", toAccountId: "at-2", amount: "1", idempotencyKey: "at-1" }, { fromAccountId: "at-empty", toAccountId: "at-2", amount: "1", idempotencyKey: "at-2" }],
      atomic: true,
    });
    expect(r.refusedItem).toBe(1);
    const info = ErrorInfo.decode(r.results[0]?.error?.details[0]?.value ?? Buffer.alloc(0));
    expect([r.results[0]?.error?.code, info.reason, info.metadata.refused_item]).toEqual([grpc.status.FAILED_PRECONDITION, "ATOMIC_BATCH_REFUSED", "1"]);
    expect(await s.app.adapters.ledger.getBalance("at-2")).toBe(0n);
  });
});

describe("the SDK", () => {
  it("splits a long list, keeps each item's key, resends rate-limited items, and answers one result per item in order", async () => {
    // 7 mints to one account at 3 per second, in calls of 3: the limiter refuses some items, which are sent again with their keys.
    const items = Array.from({ length: 7 }, (_, i) => ({ accountId: "sdk-hot", amount: "1", blockchain: "BASE", idempotencyKey: `sdk-${i}` }));
    const progress: number[] = [];
    const r = await sdk.batchMint(items, { batchSize: 3, onProgress: (done) => progress.push(done) });
    expect(r.map((x) => x.ok)).toEqual(Array(7).fill(true));
    expect(r.map((x) => x.ok && x.value.idempotencyKey)).toEqual(items.map((i) => i.idempotencyKey));
    expect(await s.app.adapters.ledger.getBalance("sdk-hot")).toBe(7_000_000n);
    expect(progress.at(-1)).toBe(7);
    // A re-run replays item by item.
    const again = await sdk.batchMint(items, { batchSize: 3 });
    expect(again.map((x) => x.ok && x.value.replayed)).toEqual(Array(7).fill(true));
  });

  it("an item's error is a MintServiceError with the unary call's reason; batchTransfer atomic refuses more than one call's items", async () => {
    const r = await sdk.batchTransfer([{ fromAccountId: "sdk-hot", toAccountId: "sdk-b", amount: "1" }, { fromAccountId: "sdk-empty", toAccountId: "sdk-b", amount: "1" }]);
    expect(r[0]?.ok).toBe(true);
    expect(r[1]?.ok === false && [r[1].error.code, r[1].error.reason, r[1].error.metadata.account_id]).toEqual(["FAILED_PRECONDITION", "INSUFFICIENT_FUNDS", "sdk-empty"]);
    await expect(sdk.batchTransfer([{ fromAccountId: "a", toAccountId: "b", amount: "1" }, { fromAccountId: "a", toAccountId: "c", amount: "1" }], { atomic: true, batchSize: 1 })).rejects.toThrow(/at most batchSize/);
    await expect(sdk.batchMint([{ accountId: "a", amount: "1", blockchain: "BASE" }], { batchSize: 0 })).rejects.toThrow(/batchSize/);
    expect(await sdk.batchMint([])).toEqual([]);
  });
});

describe("mintctl transfer --from-csv", () => {
  it("applies each row once through BatchTransfer, writes the failures, replays on a re-run; bad input exits 2", async () => {
    await sdk.mintUsdc({ accountId: "csv-payer", amount: "10", blockchain: "BASE", idempotencyKey: "csv-seed" });
    const file = join(dir, "pay.csv");
    writeFileSync(file, "from_account_id,to_account_id,amount,idempotency_key\ncsv-payer,csv-a,3,p-1\ncsv-payer,csv-b,4,p-2\ncsv-payer,csv-c,9,p-3\ncsv-payer,csv-payer,1,p-4\n");
    const A = ["--address", s.address, "--json"];
    const first = await mintctl([...A, "transfer", "--from-csv", file, "--batch-size", "2"]);
    expect(first.code).toBe(3);
    expect(JSON.parse(first.out)).toEqual({ total: 4, applied: 2, replayed: 0, failed: 2, failuresFile: `${file}.failures.csv` });
    expect(first.err.trimEnd().split("\n").at(-1)).toBe("transfer: 4/4 rows (applied 2, replayed 0, failed 2)");
    expect(parseCsv(readFileSync(`${file}.failures.csv`, "utf8")).map((r) => r.fields.slice(0, 7))).toEqual([
      ["line", "from_account_id", "to_account_id", "amount", "idempotency_key", "code", "reason"],
      ["4", "csv-payer", "csv-c", "9", "p-3", "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"],
      ["5", "csv-payer", "csv-payer", "1", "p-4", "INVALID_ARGUMENT", "SAME_ACCOUNT"],
    ]);
    const again = await mintctl([...A, "transfer", "--from-csv", file]);
    expect(JSON.parse(again.out)).toMatchObject({ applied: 0, replayed: 2, failed: 2 });
    expect(await s.app.adapters.ledger.getBalance("csv-payer")).toBe(3_000_000n);
    for (const [args, message] of [
      [["transfer", "a", "b", "1", "--from-csv", file], "takes no from, to or amount"],
      [["transfer", "--from-csv", file, "--batch-size", "0"], "--batch-size"],
      [["transfer", "--from-csv", join(dir, "none.csv")], "ENOENT"],
      [["transfer", "a", "b"], "needs <from>, <to> and <amount>"],
    ] as const) {
      const r = await mintctl(["--address", s.address, ...args]);
      expect([r.code, r.err]).toEqual([2, expect.stringContaining(message)]);
    }
    writeFileSync(join(dir, "mintheader.csv"), "account_id,amount,idempotency_key\nx,1,k\n");
    const wrong = await mintctl(["--address", s.address, "transfer", "--from-csv", join(dir, "mintheader.csv")]);
    expect([wrong.code, wrong.err]).toEqual([2, expect.stringContaining("the header lacks from_account_id, to_account_id")]);
  });
});
