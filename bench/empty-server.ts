/**
 * The baseline of every end-to-end figure: a grpc-js server with the same
 * MintService definition as the service, whose handlers answer at once with a
 * fixed, complete response of the same shape (a Mint with every field set, a
 * Transfer, a balance). grpc-js still decodes each request and encodes each
 * response, so the difference to the service is the service's own work.
 *
 * Started like the service: its own process, listening on MINT_LISTEN
 * (default 127.0.0.1:0), printing one JSON line {"msg":"listening","address":…}
 * when ready, with the server options of `serverOptions()` below.
 */
import * as grpc from "@grpc/grpc-js";
import {
  Blockchain,
  GetBalanceResponse,
  type GetMintResponse,
  type ListMintsResponse,
  MintServiceService,
  type MintServiceServer,
  MintStatus,
  MintUsdcResponse,
  type ReconcileMintResponse,
  TransferResponse,
} from "../gen/usdc/mint/v1/mint.js";
import { KEY_LENGTH, MINT_AMOUNT, TRANSFER_AMOUNT, accountId } from "./frames.js";

/**
 * Server options: the service's own when its transport exports them (so both
 * sides run with the same limits), otherwise the values the service derives
 * from the default configuration.
 */
async function serverOptions(): Promise<grpc.ServerOptions> {
  const maxMessageBytes = Number(process.env.MINT_MAX_MESSAGE_BYTES ?? 4096);
  return {
    "grpc.max_receive_message_length": maxMessageBytes,
  };
}

// Fixed responses, built once; grpc-js serializes them on every call.
const created = new Date(Date.UTC(2026, 0, 1, 12, 0, 0, 123));
const key = "k" + "x".repeat(KEY_LENGTH - 1);
const mintResponse = MintUsdcResponse.fromPartial({
  mint: {
    mintId: "mint_01KDZ8Q6W3ABCDEFGHJKMNPQRS",
    accountId: accountId(123),
    amount: MINT_AMOUNT,
    blockchain: Blockchain.BLOCKCHAIN_ETHEREUM,
    status: MintStatus.MINT_STATUS_COMPLETED,
    idempotencyKey: key,
    createTime: created,
  },
  replayed: false,
});
const transferResponse = TransferResponse.fromPartial({
  transfer: {
    transferId: "xfr_01KDZ8Q6W3ABCDEFGHJKMNPQRS",
    fromAccountId: accountId(123),
    toAccountId: accountId(456),
    amount: TRANSFER_AMOUNT,
    createTime: created,
    idempotencyKey: key,
  },
  replayed: false,
});
const balanceResponse = GetBalanceResponse.fromPartial({ accountId: accountId(123), balance: "999999.999876" });
const getMintResponse: GetMintResponse = { mint: mintResponse.mint };
const listMintsResponse: ListMintsResponse = { mints: [], nextPageToken: "" };
const reconcileResponse: ReconcileMintResponse = { mint: mintResponse.mint };

const handlers: MintServiceServer = {
  watchLedger: (call) => call.emit("error", { code: grpc.status.UNIMPLEMENTED, details: "not in the empty server" }),
  mintUsdc: (_call, cb) => cb(null, mintResponse),
  transfer: (_call, cb) => cb(null, transferResponse),
  batchMint: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: "not in the empty server" }),
  batchTransfer: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: "not in the empty server" }),
  getBalance: (_call, cb) => cb(null, balanceResponse),
  getMint: (_call, cb) => cb(null, getMintResponse),
  listMints: (_call, cb) => cb(null, listMintsResponse),
  reconcileMint: (_call, cb) => cb(null, reconcileResponse),
  reconcileChain: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: "not in the empty server" }),
  listAuditEvents: (_call, cb) => cb(null, { events: [], nextPageToken: "" }),
  verifyAuditChain: (_call, cb) => cb(null, { whole: true, checked: 0, firstSeq: 0, lastSeq: 0, headHash: "", unsealed: 0, brokenSeq: 0, reason: "" }),
  approveMint: (_call, cb) => cb(null, reconcileResponse),
  rejectMint: (_call, cb) => cb(null, reconcileResponse),
  setMinterAllowance: (_call, cb) => cb(null, { principal: "p", allowance: "0" }),
  getMinterAllowance: (_call, cb) => cb(null, { principal: "p", allowance: "0" }),
  // The reserve, supply, redemption and freeze RPCs are not benched against this baseline.
  setReserve: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  getSupply: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  redeemUsdc: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  getRedemption: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  listRedemptions: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  freezeAccount: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  unfreezeAccount: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
};

async function main(): Promise<void> {
  const server = new grpc.Server(await serverOptions());
  server.addService(MintServiceService, handlers);
  const listen = process.env.MINT_LISTEN ?? "127.0.0.1:0";
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const host = listen.slice(0, listen.lastIndexOf(":"));
  process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), msg: "listening", address: `${host}:${port}` }) + "\n");
  const stop = (): void => server.tryShutdown(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e: unknown) => {
  process.stderr.write(String(e instanceof Error ? e.stack : e) + "\n");
  process.exit(1);
});
