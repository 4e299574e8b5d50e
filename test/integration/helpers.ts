/**
 * Helpers shared by the integration suites of error-table, behaviour and
 * shutdown: typed call wrappers over the generated client, a server built
 * from hand-picked adapters (to inject failing stores), raw requests with
 * unknown fields, and a bounded wait for events that happen over a socket.
 */
import { openSecurity } from "../../src/auth/security.js";
import { Writable } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { pino } from "pino";
import {
  Blockchain,
  MintServiceClient,
  MintUsdcRequest,
  MintUsdcResponse,
  type GetBalanceResponse,
  type GetMintResponse,
  type ListMintsResponse,
  type ReconcileMintResponse,
  type TransferResponse,
} from "../../gen/usdc/mint/v1/mint.js";
import { MemoryExactlyOnceStore, type MemoryLedger } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import { systemClock, type Clock } from "../../src/domain/clock.js";
import { MintCore } from "../../src/domain/mint-core.js";
import type { Logger } from "../../src/logger.js";
import { startServer, type RunningServer } from "../../src/transport/grpc/server.js";
import type { TestServer } from "../support/test-server.js";

type Call = TestServer["call"];

/** Typed shortcuts for the six RPCs over any `call` function. */
export function rpc(call: Call) {
  return {
    mint: (accountId: string, amount: string, idempotencyKey: string, blockchain: number = Blockchain.BLOCKCHAIN_ETHEREUM, deadlineMs?: number) =>
      call<object, MintUsdcResponse>("mintUsdc", { accountId, amount, blockchain, idempotencyKey }, deadlineMs === undefined ? {} : { deadlineMs }),
    transfer: (fromAccountId: string, toAccountId: string, amount: string, idempotencyKey: string, deadlineMs?: number) =>
      call<object, TransferResponse>("transfer", { fromAccountId, toAccountId, amount, idempotencyKey }, deadlineMs === undefined ? {} : { deadlineMs }),
    balance: async (accountId: string) => (await call<object, GetBalanceResponse>("getBalance", { accountId })).balance,
    getBalance: (accountId: string) => call<object, GetBalanceResponse>("getBalance", { accountId }),
    getMint: (mintId: string) => call<object, GetMintResponse>("getMint", { mintId }),
    list: (accountId: string, pageSize: number, pageToken = "") => call<object, ListMintsResponse>("listMints", { accountId, pageSize, pageToken, status: 0 }),
    reconcile: (mintId: string, reason: string, deadlineMs?: number) =>
      call<object, ReconcileMintResponse>("reconcileMint", { mintId, reason }, deadlineMs === undefined ? {} : { deadlineMs }),
  };
}

/** A `call` function like TestServer's, over any generated client. */
export function callerFor(client: MintServiceClient): Call {
  return <Req, Res>(method: string, req: Req, opts: { deadlineMs?: number; metadata?: Record<string, string> } = {}): Promise<Res> =>
    new Promise((resolve, reject) => {
      const options: grpc.CallOptions = opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs };
      const fn = (client as unknown as Record<string, (r: Req, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method];
      if (fn === undefined) throw new Error(`no such method ${method}`);
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(opts.metadata ?? {})) metadata.set(k, v);
      fn.call(client, req, metadata, options, (err, res) => (err ? reject(err) : resolve(res)));
    });
}

/** Waits (polling every few ms of real time) until `cond` holds; fails after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Collects pino's JSON lines in memory so a test can read what was logged. */
export function memoryLogger(): { logger: Logger; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const logger: Logger = pino({ level: "info" }, stream);
  return { logger, lines: () => chunks.join("").split("\n").filter((l) => l !== "") };
}

export interface CustomServer {
  readonly server: RunningServer;
  readonly call: Call;
  readonly logLines: () => string[];
  stop(): Promise<void>;
}

/**
 * The real gRPC server over a MintCore whose ledger the test chooses (e.g.
 * one that throws), with the in-memory idempotency store and limiter.
 */
export async function startCustomServer(ledger: MemoryLedger, clock: Clock = systemClock): Promise<CustomServer> {
  const { logger, lines } = memoryLogger();
  const core = new MintCore({
    store: new MemoryExactlyOnceStore(ledger, new MemoryIdempotencyStore({ ttlMs: 60_000, maxKeys: 10_000, clock }), clock),
    limiter: new MemoryRateLimiter({ limit: 1000, windowMs: 1000, clock }),
    clock,
    maxAmountMicros: 1_000_000_000_000_000_000n,
  });
  const server = await startServer({ core, clock, logger, listen: "127.0.0.1:0", maxMessageBytes: 4096, shutdownGraceMs: 1000, maxCallsInFlight: 1000, maxConcurrentStreams: 100, security: openSecurity(), reflection: "public" });
  const client = new MintServiceClient(server.address, grpc.credentials.createInsecure());
  return {
    server,
    call: callerFor(client),
    logLines: lines,
    async stop() {
      client.close();
      await server.shutdown();
    },
  };
}

/** A MemoryLedgerStore whose methods can be made to throw on demand. */
export class FaultyLedger extends MemoryLedgerStore {
  faults: Partial<Record<"mint" | "transfer" | "getBalance" | "getMint" | "listMints" | "reverseMint", () => Error>> = {};

  constructor(clock: Clock = systemClock) {
    super({ clock });
  }

  override async mint(...args: Parameters<MemoryLedgerStore["mint"]>): Promise<Awaited<ReturnType<MemoryLedgerStore["mint"]>>> {
    this.maybeThrow("mint");
    return super.mint(...args);
  }
  override async transfer(...args: Parameters<MemoryLedgerStore["transfer"]>): Promise<Awaited<ReturnType<MemoryLedgerStore["transfer"]>>> {
    this.maybeThrow("transfer");
    return super.transfer(...args);
  }
  override async getBalance(accountId: string): Promise<bigint> {
    this.maybeThrow("getBalance");
    return super.getBalance(accountId);
  }
  /** GetBalance reads the account (balance and frozen state, issue 12): the getBalance fault covers it. */
  override async getAccount(accountId: string): ReturnType<MemoryLedgerStore["getAccount"]> {
    this.maybeThrow("getBalance");
    return super.getAccount(accountId);
  }
  override async getMint(mintId: string): ReturnType<MemoryLedgerStore["getMint"]> {
    this.maybeThrow("getMint");
    return super.getMint(mintId);
  }
  override async listMints(...args: Parameters<MemoryLedgerStore["listMints"]>): ReturnType<MemoryLedgerStore["listMints"]> {
    this.maybeThrow("listMints");
    return super.listMints(...args);
  }
  override async reverseMint(...args: Parameters<MemoryLedgerStore["reverseMint"]>): ReturnType<MemoryLedgerStore["reverseMint"]> {
    this.maybeThrow("reverseMint");
    return super.reverseMint(...args);
  }

  private maybeThrow(method: keyof FaultyLedger["faults"]): void {
    const make = this.faults[method];
    if (make !== undefined) throw make();
  }
}

/**
 * Sends a MintUsdc request with an extra unknown field (number 1000) of
 * `paddingBytes` bytes, through the generic grpc-js client, so that an
 * otherwise valid request can be made as large as a test needs.
 */
export function mintWithPadding(address: string, req: MintUsdcRequest, paddingBytes: number): Promise<MintUsdcResponse> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const serialize = (r: MintUsdcRequest): Buffer => {
    const known = MintUsdcRequest.encode(r).finish();
    const unknown = new BinaryWriter().uint32((1000 << 3) | 2).bytes(new Uint8Array(paddingBytes).fill(0x61)).finish();
    return Buffer.concat([known, unknown]);
  };
  return new Promise<MintUsdcResponse>((resolve, reject) => {
    client.makeUnaryRequest(
      "/usdc.mint.v1.MintService/MintUsdc",
      serialize,
      (b: Buffer) => MintUsdcResponse.decode(b),
      req,
      (err, res) => (err || res === undefined ? reject(err ?? new Error("no response")) : resolve(res)),
    );
  }).finally(() => client.close());
}
