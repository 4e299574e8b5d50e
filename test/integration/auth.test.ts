/**
 * Authentication and authorization of the real service over real TLS: every
 * role × RPC cell, scopes at their edges, refusals that touch nothing,
 * idempotency keys per caller, health without a client certificate,
 * reflection restricted, and rotation (reload) of certificates and tokens.
 */
import { copyFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthClient, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health.js";
import { ServerReflectionClient as ReflectionV1Client } from "../../gen/grpc/reflection/v1/reflection.js";
import {
  ApproveMintRequest,
  Blockchain,
  GetMinterAllowanceRequest,
  RejectMintRequest,
  SetMinterAllowanceRequest,
  GetBalanceRequest,
  GetMintRequest,
  ListMintsRequest,
  MintUsdcRequest,
  BatchMintRequest,
  BatchTransferRequest,
  ReconcileChainRequest,
  ReconcileMintRequest,
  SetReserveRequest,
  GetSupplyRequest,
  RedeemUsdcRequest,
  GetRedemptionRequest,
  ListRedemptionsRequest,
  FreezeAccountRequest,
  UnfreezeAccountRequest,
  WatchLedgerRequest,
  TransferRequest,
  ListAuditEventsRequest,
  VerifyAuditChainRequest,
  type ListAuditEventsResponse,
  type VerifyAuditChainResponse,
  type Mint,
  type MintServiceClient,
  type MintUsdcResponse,
} from "../../gen/usdc/mint/v1/mint.js";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { roleFor, ROLES, RPCS, type Role, type Rpc } from "../../src/domain/authorization.js";
import { createLogger } from "../../src/logger.js";
import { tokenDigestHex } from "../../src/auth/authenticate.js";
import { makeAuthFixture, newToken, TLS_CLIENT_OPTIONS, tlsCredentials, type AuthFixture } from "../support/auth-fixtures.js";
import { decodeError, type DecodedError } from "../support/test-server.js";

let fx: AuthFixture;
let app: App;
let address: string;
const clients: grpc.Client[] = [];

async function start(env: Record<string, string> = {}): Promise<App> {
  const config = loadConfig([], { MINT_LISTEN: "127.0.0.1:0", MINT_LOG_LEVEL: "silent", MINT_RATE_LIMIT: "1000", ...fx.env, ...env });
  return startApp(config, createLogger(config.logLevel));
}

function client(opts: { cert?: AuthFixture["adminCert"]; token?: string } = {}, at = address): MintServiceClient {
  const c = fx.client(at, opts);
  clients.push(c);
  return c;
}

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;

function call<Res = unknown>(c: MintServiceClient, rpc: Rpc, req: unknown, md = new grpc.Metadata()): Promise<Res> {
  const method = (rpc[0]!.toLowerCase() + rpc.slice(1)) as keyof MintServiceClient;
  if (rpc === "WatchLedger") {
    // A stream: allowed once the server sends its headers (the start cursor), refused by its status.
    return new Promise((resolve, reject) => {
      const s = c.watchLedger(req as WatchLedgerRequest, md, { deadline: Date.now() + 10_000 });
      s.on("metadata", (headers: grpc.Metadata) => {
        resolve(headers.get("x-mint-watch-cursor")[0] as Res);
        s.cancel();
      });
      s.on("error", reject);
    });
  }
  return new Promise((resolve, reject) => {
    (c[method] as unknown as Unary).call(c, req, md, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

async function refused(p: Promise<unknown>): Promise<DecodedError> {
  try {
    await p;
  } catch (err) {
    return decodeError(err);
  }
  throw new Error("expected a refusal, the call succeeded");
}

/** An empty request of each RPC (every field at its default), as the generated client encodes it. */
const EMPTY: Record<Rpc, unknown> = {
  MintUsdc: MintUsdcRequest.fromPartial({}),
  Transfer: TransferRequest.fromPartial({}),
  GetBalance: GetBalanceRequest.fromPartial({}),
  GetMint: GetMintRequest.fromPartial({}),
  ListMints: ListMintsRequest.fromPartial({}),
  ReconcileMint: ReconcileMintRequest.fromPartial({}),
  ReconcileChain: ReconcileChainRequest.fromPartial({}),
  ListAuditEvents: ListAuditEventsRequest.fromPartial({}),
  VerifyAuditChain: VerifyAuditChainRequest.fromPartial({}),
  ApproveMint: ApproveMintRequest.fromPartial({}),
  RejectMint: RejectMintRequest.fromPartial({}),
  SetMinterAllowance: SetMinterAllowanceRequest.fromPartial({}),
  GetMinterAllowance: GetMinterAllowanceRequest.fromPartial({}),
  SetReserve: SetReserveRequest.fromPartial({}),
  GetSupply: GetSupplyRequest.fromPartial({}),
  RedeemUsdc: RedeemUsdcRequest.fromPartial({}),
  GetRedemption: GetRedemptionRequest.fromPartial({}),
  ListRedemptions: ListRedemptionsRequest.fromPartial({}),
  FreezeAccount: FreezeAccountRequest.fromPartial({}),
  UnfreezeAccount: UnfreezeAccountRequest.fromPartial({}),
  WatchLedger: WatchLedgerRequest.fromPartial({}),
  BatchMint: BatchMintRequest.fromPartial({}),
  BatchTransfer: BatchTransferRequest.fromPartial({}),
};

let seq = 0;
const unique = (prefix: string): string => `${prefix}-${process.pid}-${++seq}`;

async function mint(c: MintServiceClient, accountId: string, amount = "10", key = unique("k")): Promise<MintUsdcResponse> {
  return call<MintUsdcResponse>(c, "MintUsdc", { accountId, amount, blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key });
}

beforeAll(async () => {
  fx = makeAuthFixture();
  app = await start();
  address = app.server.address;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await app?.shutdown();
  fx?.remove();
});

describe("every role × RPC cell", () => {
  let admin: MintServiceClient;
  const funded = "matrix-funded";
  let mints: Mint[] = [];

  beforeAll(async () => {
    admin = client({ token: fx.adminToken });
    await mint(admin, funded, "1000");
    // One fresh mint per role for ReconcileMint (a reversal succeeds once).
    mints = await Promise.all(ROLES.map(async () => (await mint(admin, "matrix-reconcile")).mint as Mint));
    const r = await call<{ redemption: { redemptionId: string } }>(client({ token: fx.roleTokens.redeemer }), "RedeemUsdc", { accountId: funded, amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: unique("r") });
    redemptionId = r.redemption.redemptionId;
  });
  let redemptionId = "";

  function request(rpc: Rpc, i: number): unknown {
    switch (rpc) {
      case "MintUsdc":
        return { accountId: "matrix-a", amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: unique("m") };
      case "Transfer":
        return { fromAccountId: funded, toAccountId: "matrix-b", amount: "1", idempotencyKey: unique("t") };
      case "GetBalance":
        return { accountId: funded };
      case "GetMint":
        return { mintId: mints[i]!.mintId };
      case "ListMints":
        return { accountId: funded, pageSize: 5, pageToken: "", status: 0 };
      case "ReconcileMint":
        return { mintId: mints[i]!.mintId, reason: "matrix" };
      case "ReconcileChain":
        return { blockchain: Blockchain.BLOCKCHAIN_BASE };
      case "ListAuditEvents":
        return ListAuditEventsRequest.fromPartial({ accountId: funded, pageSize: 5 });
      case "VerifyAuditChain":
        return VerifyAuditChainRequest.fromPartial({});
      case "ApproveMint":
        return { mintId: mints[i]!.mintId };
      case "RejectMint":
        return { mintId: mints[i]!.mintId, reason: "matrix" };
      case "SetMinterAllowance":
        return { principal: "matrix-minter", amount: "1" };
      case "GetMinterAllowance":
        return { principal: "matrix-minter" };
      // The reserve is far above anything this file mints.
      case "SetReserve":
        return { amount: "1000000000000000", attestationRef: "matrix" };
      case "GetSupply":
        return {};
      case "RedeemUsdc":
        return { accountId: funded, amount: "0.000001", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: unique("r") };
      case "GetRedemption":
        return { redemptionId: redemptionId };
      case "ListRedemptions":
        return { accountId: funded, pageSize: 5, pageToken: "" };
      case "FreezeAccount":
      case "UnfreezeAccount":
        return { accountId: `matrix-frozen-${i}`, reason: "matrix" };
      case "WatchLedger":
        return WatchLedgerRequest.fromPartial({ accountIds: [funded] });
      case "BatchMint":
        return { items: [{ accountId: "matrix-a", amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: unique("bm") }] };
      case "BatchTransfer":
        return { items: [{ fromAccountId: funded, toAccountId: "matrix-b", amount: "1", idempotencyKey: unique("bt") }], atomic: false };
    }
  }

  const GRANTS: Record<Role, readonly Rpc[]> = {
    minter: ["MintUsdc", "BatchMint"],
    transferer: ["Transfer", "BatchTransfer"],
    reader: ["GetBalance", "GetMint", "ListMints", "GetMinterAllowance", "GetSupply", "GetRedemption", "ListRedemptions", "WatchLedger"],
    reconciler: ["ReconcileMint"],
    auditor: ["ReconcileChain", "ListAuditEvents", "VerifyAuditChain"],
    approver: ["ApproveMint", "RejectMint"],
    "reserve-manager": ["SetReserve", "SetMinterAllowance"],
    redeemer: ["RedeemUsdc"],
    compliance: ["FreezeAccount", "UnfreezeAccount"],
  };
  const cells = ROLES.flatMap((role, i) => RPCS.map((rpc) => ({ role, rpc, i, allowed: GRANTS[role].includes(rpc) })));

  it.each(cells)("$role × $rpc: allowed $allowed", async ({ role, rpc, i, allowed }) => {
    const c = client({ token: fx.roleTokens[role] });
    const p = call(c, rpc, request(rpc, i));
    if (allowed && rpc === "ReconcileChain") {
      // Past the auth link: this server settles no chain, which the core says (not a refusal of the caller).
      const e = await refused(p);
      expect([e.code, e.reason]).toEqual([grpc.status.FAILED_PRECONDITION, "SETTLEMENT_NOT_CONFIGURED"]);
    } else if (allowed && (rpc === "ApproveMint" || rpc === "RejectMint")) {
      // Past authorization: the mint (completed, no approval threshold here) is refused for what it is.
      const e = await refused(p);
      expect([e.code, e.reason]).toEqual([grpc.status.FAILED_PRECONDITION, "MINT_COMPLETED"]);
    } else if (allowed) {
      await expect(p).resolves.toBeDefined();
    } else {
      const e = await refused(p);
      expect({ code: e.code, reason: e.reason, metadata: e.metadata }).toEqual({
        code: grpc.status.PERMISSION_DENIED,
        reason: "MISSING_ROLE",
        metadata: { rpc, principal: `role-${role}`, missing_role: roleFor(rpc) },
      });
    }
  });
});

describe("who is calling", () => {
  it.each(RPCS)("%s without any credential: UNAUTHENTICATED NO_CREDENTIALS", async (rpc) => {
    const e = await refused(call(client(), rpc, EMPTY[rpc]));
    expect({ code: e.code, reason: e.reason, rpc: e.metadata.rpc }).toEqual({ code: grpc.status.UNAUTHENTICATED, reason: "NO_CREDENTIALS", rpc });
  });

  it.each([
    ["an expired certificate", () => fx.expiredCert, "NO_CREDENTIALS"],
    ["a certificate from an unknown CA", () => fx.rogueCert, "NO_CREDENTIALS"],
    ["a valid certificate naming nobody", () => fx.strangerCert, "UNKNOWN_CERTIFICATE"],
  ])("%s: UNAUTHENTICATED %s", async (_what, cert, reason) => {
    const e = await refused(call(client({ cert: cert() }), "GetBalance", { accountId: "x" }));
    expect([e.code, e.reason]).toEqual([grpc.status.UNAUTHENTICATED, reason]);
  });

  it("a bad token is refused and never echoed", async () => {
    const token = fx.adminToken.slice(0, -2) + "xx";
    const e = await refused(call(client({ token }), "GetBalance", { accountId: "x" }));
    expect([e.code, e.reason]).toEqual([grpc.status.UNAUTHENTICATED, "INVALID_TOKEN"]);
    expect(JSON.stringify(e)).not.toContain(token);
  });

  it("a malformed authorization header: MALFORMED_AUTHORIZATION", async () => {
    const md = new grpc.Metadata();
    md.set("authorization", `Basic ${fx.adminToken}`);
    const e = await refused(call(client(), "GetBalance", { accountId: "x" }, md));
    expect([e.code, e.reason]).toEqual([grpc.status.UNAUTHENTICATED, "MALFORMED_AUTHORIZATION"]);
  });

  it("mutual TLS: the certificate's identity is the principal", async () => {
    const r = await mint(client({ cert: fx.adminCert }), "mtls-acct", "3");
    expect(r.mint?.amount).toBe("3");
  });

  it("a certificate and a token of different principals: CONFLICTING_CREDENTIALS", async () => {
    const e = await refused(call(client({ cert: fx.adminCert, token: fx.roleTokens.reader }), "GetBalance", { accountId: "x" }));
    expect([e.code, e.reason]).toEqual([grpc.status.UNAUTHENTICATED, "CONFLICTING_CREDENTIALS"]);
  });

  it("plaintext is refused at the transport", async () => {
    const c = new HealthClient(address, grpc.credentials.createInsecure(), TLS_CLIENT_OPTIONS);
    clients.push(c);
    await expect(
      new Promise((resolve, reject) => c.check({ service: "" }, new grpc.Metadata(), { deadline: Date.now() + 3000 }, (e, r) => (e ? reject(e) : resolve(r)))),
    ).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});

describe("scopes", () => {
  let treasury: MintServiceClient;
  let admin: MintServiceClient;
  beforeAll(() => {
    treasury = client({ cert: fx.treasuryCert });
    admin = client({ token: fx.adminToken });
  });

  it("treasury:* allows treasury:a and refuses treasury2:a, naming the account", async () => {
    expect((await mint(treasury, "treasury:a")).mint?.accountId).toBe("treasury:a");
    const e = await refused(mint(treasury, "treasury2:a"));
    expect({ code: e.code, reason: e.reason, metadata: e.metadata }).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      reason: "ACCOUNT_NOT_IN_SCOPE",
      metadata: { rpc: "MintUsdc", principal: "treasury-app", missing_scope: "treasury2:a" },
    });
  });

  it("Transfer: the scope applies to the debited account", async () => {
    await mint(treasury, "treasury:payer", "50");
    await expect(call(treasury, "Transfer", { fromAccountId: "treasury:payer", toAccountId: "outside", amount: "5", idempotencyKey: unique("t") })).resolves.toBeDefined();
    await mint(admin, "outside-payer", "50");
    const e = await refused(call(treasury, "Transfer", { fromAccountId: "outside-payer", toAccountId: "treasury:payer", amount: "5", idempotencyKey: unique("t") }));
    expect([e.reason, e.metadata.missing_scope]).toEqual(["ACCOUNT_NOT_IN_SCOPE", "outside-payer"]);
  });

  it("reads: the account asked about; ListMints over all needs *", async () => {
    await expect(call(treasury, "GetBalance", { accountId: "treasury:a" })).resolves.toBeDefined();
    expect((await refused(call(treasury, "GetBalance", { accountId: "treasury2:a" }))).metadata.missing_scope).toBe("treasury2:a");
    await expect(call(treasury, "ListMints", { accountId: "treasury:a", pageSize: 5, pageToken: "", status: 0 })).resolves.toBeDefined();
    const all = await refused(call(treasury, "ListMints", { accountId: "", pageSize: 5, pageToken: "", status: 0 }));
    expect([all.code, all.metadata.missing_scope]).toEqual([grpc.status.PERMISSION_DENIED, "*"]);
    await expect(call(admin, "ListMints", { accountId: "", pageSize: 5, pageToken: "", status: 0 })).resolves.toBeDefined();
  });

  it("GetMint and ReconcileMint: the mint's account; a refused reversal changes nothing", async () => {
    const outside = (await mint(admin, "outside-acct", "7")).mint as Mint;
    const inside = (await mint(treasury, "treasury:rev", "7")).mint as Mint;
    expect((await refused(call(treasury, "GetMint", { mintId: outside.mintId }))).metadata).toEqual({ rpc: "GetMint", principal: "treasury-app" });
    const e = await refused(call(treasury, "ReconcileMint", { mintId: outside.mintId, reason: "no" }));
    expect([e.code, e.reason, e.metadata]).toEqual([grpc.status.PERMISSION_DENIED, "NOT_IN_SCOPE_OR_NOT_FOUND", { rpc: "ReconcileMint", principal: "treasury-app" }]);
    expect((await call<{ balance: string }>(admin, "GetBalance", { accountId: "outside-acct" })).balance).toBe("7");
    await expect(call(treasury, "GetMint", { mintId: inside.mintId })).resolves.toBeDefined();
    await expect(call(treasury, "ReconcileMint", { mintId: inside.mintId, reason: "ok" })).resolves.toBeDefined();
    expect((await call<{ balance: string }>(admin, "GetBalance", { accountId: "treasury:rev" })).balance).toBe("0");
  });
});

describe("an id names no account (AIP-211): out of scope and unknown answer alike", () => {
  const UNKNOWN_MINT = "mint_00000000000000000000000000";
  const UNKNOWN_REDEMPTION = "rdm_00000000000000000000000000";
  const SCOPED = "scoped-desk";
  let desk: MintServiceClient;
  let outsideMint: Mint;
  let insideMint: Mint;
  let outsideRedemption = "";
  let insideRedemption = "";

  beforeAll(async () => {
    // A principal that holds every id-named RPC's role, scoped to `desk:*` (the file is re-read, as SIGHUP does).
    const token = newToken();
    fx.writeAuthFile([...fx.principals, { name: SCOPED, roles: ["reader", "reconciler", "approver"], scopes: ["desk:*"], token_sha256: [tokenDigestHex(token)] }]);
    expect(app.reload().principals?.ok).toBe(true);
    desk = client({ token });
    const admin = client({ token: fx.adminToken });
    outsideMint = (await mint(admin, "bank-out", "9")).mint as Mint;
    insideMint = (await mint(admin, "desk:in", "9")).mint as Mint;
    const redeemer = client({ token: fx.roleTokens.redeemer });
    const redeem = async (accountId: string): Promise<string> =>
      (await call<{ redemption: { redemptionId: string } }>(redeemer, "RedeemUsdc", { accountId, amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: unique("r") })).redemption
        .redemptionId;
    outsideRedemption = await redeem("bank-out");
    insideRedemption = await redeem("desk:in");
  });

  afterAll(() => {
    fx.writeAuthFile(fx.principals);
    app.reload();
  });

  const requestFor = (rpc: Rpc, id: string): unknown =>
    rpc === "GetRedemption" ? { redemptionId: id } : rpc === "ReconcileMint" || rpc === "RejectMint" ? { mintId: id, reason: "probe" } : { mintId: id };

  /** The refusal as the caller sees it, with one request id for both calls so nothing else differs. */
  async function seen(c: MintServiceClient, rpc: Rpc, id: string): Promise<Omit<DecodedError, "requestId">> {
    const md = new grpc.Metadata();
    md.set("x-request-id", "probe-1");
    const { requestId: _omit, ...rest } = await refused(call(c, rpc, requestFor(rpc, id), md));
    return rest;
  }

  it.each<[Rpc, "mint" | "redemption"]>([
    ["GetMint", "mint"],
    ["ReconcileMint", "mint"],
    ["ApproveMint", "mint"],
    ["RejectMint", "mint"],
    ["GetRedemption", "redemption"],
  ])("%s: a caller without scope * gets one PERMISSION_DENIED for an out-of-scope and an unknown id, naming no account", async (rpc, kind) => {
    const outsideId = kind === "mint" ? outsideMint.mintId : outsideRedemption;
    const unknownId = kind === "mint" ? UNKNOWN_MINT : UNKNOWN_REDEMPTION;
    const outside = await seen(desk, rpc, outsideId);
    const unknown = await seen(desk, rpc, unknownId);
    expect(outside).toEqual(unknown);
    expect([outside.code, outside.reason, outside.metadata]).toEqual([grpc.status.PERMISSION_DENIED, "NOT_IN_SCOPE_OR_NOT_FOUND", { rpc, principal: SCOPED }]);
    expect(outside.message).not.toContain("bank-out");
    expect(outside.message).not.toContain(outsideId);
  });

  it("a caller with scope * gets NOT_FOUND for an unknown id, as before", async () => {
    const admin = client({ token: fx.adminToken });
    const approver = client({ token: fx.roleTokens.approver });
    const reader = client({ token: fx.roleTokens.reader });
    for (const [c, rpc] of [[admin, "GetMint"], [admin, "ReconcileMint"], [approver, "ApproveMint"], [approver, "RejectMint"]] as const) {
      expect([(await seen(c, rpc, UNKNOWN_MINT)).code, (await seen(c, rpc, UNKNOWN_MINT)).reason], rpc).toEqual([grpc.status.NOT_FOUND, "MINT_NOT_FOUND"]);
    }
    const r = await seen(reader, "GetRedemption", UNKNOWN_REDEMPTION);
    expect([r.code, r.reason, r.metadata]).toEqual([grpc.status.NOT_FOUND, "REDEMPTION_NOT_FOUND", { redemption_id: UNKNOWN_REDEMPTION }]);
  });

  it("in scope the calls go on: GetRedemption is scoped over the redemption's account, as GetMint over the mint's", async () => {
    const r = await call<{ redemption: { accountId: string } }>(desk, "GetRedemption", { redemptionId: insideRedemption });
    expect(r.redemption.accountId).toBe("desk:in");
    expect((await call<{ mint: Mint }>(desk, "GetMint", { mintId: insideMint.mintId })).mint.accountId).toBe("desk:in");
    // Past the scope check: the mint is not pending, which only a caller that may see it learns.
    const e = await refused(call(desk, "ApproveMint", { mintId: insideMint.mintId }));
    expect([e.code, e.reason]).toEqual([grpc.status.FAILED_PRECONDITION, "MINT_COMPLETED"]);
  });

  it("where the caller names the account itself (Transfer, GetBalance), the refusal still names it", async () => {
    const e = await refused(call(desk, "GetBalance", { accountId: "bank-out" }));
    expect([e.reason, e.metadata.missing_scope]).toEqual(["ACCOUNT_NOT_IN_SCOPE", "bank-out"]);
  });
});

describe("a refused call touches nothing", () => {
  it("not the idempotency key: the same key then applies for an allowed request", async () => {
    const treasury = client({ cert: fx.treasuryCert });
    const key = unique("shared");
    expect((await refused(mint(treasury, "treasury2:z", "1", key))).code).toBe(grpc.status.PERMISSION_DENIED);
    const r = await mint(treasury, "treasury:z", "1", key);
    expect([r.replayed, r.mint?.amount]).toEqual([false, "1"]);
  });

  it("not the limiter: refusals do not count against the account", async () => {
    const limited = await start({ MINT_RATE_LIMIT: "1", MINT_RATE_WINDOW: "1m" });
    try {
      const at = limited.server.address;
      const minterOnly = client({ token: fx.roleTokens.reader }, at);
      for (let i = 0; i < 3; i++) expect((await refused(mint(minterOnly, "limit-acct"))).code).toBe(grpc.status.PERMISSION_DENIED);
      const anonymous = client({}, at);
      expect((await refused(mint(anonymous, "limit-acct"))).code).toBe(grpc.status.UNAUTHENTICATED);
      expect((await mint(client({ token: fx.adminToken }, at), "limit-acct")).mint?.amount).toBe("10");
    } finally {
      await limited.shutdown();
    }
  });
});

describe("idempotency keys are per caller", () => {
  it("the same key from two principals applies twice; from one, once", async () => {
    const key = unique("same-key");
    const a = await mint(client({ token: fx.adminToken }), "per-caller", "2", key);
    const b = await mint(client({ token: fx.roleTokens.minter }), "per-caller", "2", key);
    const a2 = await mint(client({ token: fx.adminToken }), "per-caller", "2", key);
    expect(a.mint?.mintId).not.toBe(b.mint?.mintId);
    expect([a.replayed, b.replayed, a2.replayed]).toEqual([false, false, true]);
    expect(a2.mint?.mintId).toBe(a.mint?.mintId);
    expect((await call<{ balance: string }>(client({ token: fx.adminToken }), "GetBalance", { accountId: "per-caller" })).balance).toBe("4");
  });
});

describe("health and reflection", () => {
  function health(c: HealthClient): Promise<number> {
    return new Promise((resolve, reject) =>
      c.check({ service: "" }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r.status))),
    );
  }

  it("health answers over TLS without a client certificate or token", async () => {
    const c = new HealthClient(address, tlsCredentials(fx.certs), TLS_CLIENT_OPTIONS);
    clients.push(c);
    expect(await health(c)).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  function listServices(at: string, token?: string): Promise<string[]> {
    const c = new ReflectionV1Client(at, tlsCredentials(fx.certs, token === undefined ? {} : { token }), TLS_CLIENT_OPTIONS);
    clients.push(c);
    return new Promise((resolve, reject) => {
      const stream = c.serverReflectionInfo();
      stream.on("data", (res: { listServicesResponse?: { service: { name: string }[] } }) => {
        resolve((res.listServicesResponse?.service ?? []).map((s) => s.name));
        stream.end();
      });
      stream.on("error", reject);
      stream.write({ host: "", listServices: "" });
    });
  }

  it("reflection with an auth file: principals only (MINT_REFLECTION=auto)", async () => {
    expect(await listServices(address, fx.roleTokens.auditor)).toContain("usdc.mint.v1.MintService");
    const e = await listServices(address).catch((err: unknown) => err as grpc.ServiceError);
    expect((e as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("MINT_REFLECTION=public serves anyone; off serves nobody", async () => {
    const pub = await start({ MINT_REFLECTION: "public" });
    const off = await start({ MINT_REFLECTION: "off" });
    try {
      expect(await listServices(pub.server.address)).toContain("usdc.mint.v1.MintService");
      const e = await listServices(off.server.address, fx.adminToken).catch((err: unknown) => err as grpc.ServiceError);
      expect((e as grpc.ServiceError).code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      await pub.shutdown();
      await off.shutdown();
    }
  });
});

describe("rotation (what SIGHUP does)", () => {
  it("new certificate served, old connections keep working, a removed token stops working", async () => {
    // Its own server, reading copies of the files, so the rest of this file is unaffected.
    const live = { cert: `${fx.certs.dir}/rot.crt`, key: `${fx.certs.dir}/rot.key`, auth: `${fx.certs.dir}/rot-auth.json` };
    copyFileSync(fx.certs.server.certFile, live.cert);
    copyFileSync(fx.certs.server.keyFile, live.key);
    copyFileSync(fx.authFile, live.auth);
    const rot = await start({ MINT_TLS_CERT: live.cert, MINT_TLS_KEY: live.key, MINT_AUTH_FILE: live.auth });
    try {
      const at = rot.server.address;
      const serverCn = (c: MintServiceClient): Promise<string | undefined> =>
        new Promise((resolve, reject) => {
          const cl = c.getBalance({ accountId: "rot" }, (err) => (err ? reject(err) : resolve(cl.getAuthContext()?.sslPeerCertificate?.subject?.CN as string | undefined)));
        });
      const old = client({ token: fx.adminToken }, at);
      const reader = client({ token: fx.roleTokens.reader }, at);
      expect(await serverCn(old)).toBe("mint-server-1");
      expect(await serverCn(reader)).toBe("mint-server-1");

      copyFileSync(fx.certs.server2.certFile, live.cert);
      copyFileSync(fx.certs.server2.keyFile, live.key);
      const { writeFileSync } = await import("node:fs");
      writeFileSync(live.auth, JSON.stringify({ principals: fx.principals.filter((p) => p.name !== "role-reader") }));
      const report = rot.reload();
      expect(report).toEqual({ principals: { ok: true, count: fx.principals.length - 1 }, certificates: { ok: true } });

      expect(await serverCn(client({ token: fx.adminToken }, at))).toBe("mint-server-2");
      expect(await serverCn(old)).toBe("mint-server-1");
      const e = await refused(call(reader, "GetBalance", { accountId: "rot" }));
      expect([e.code, e.reason]).toEqual([grpc.status.UNAUTHENTICATED, "INVALID_TOKEN"]);

      // A broken auth file is refused and the last good one stays in force.
      writeFileSync(live.auth, "principals: [{name: x}]");
      const bad = rot.reload();
      expect(bad.principals).toMatchObject({ ok: false });
      expect(await serverCn(old)).toBe("mint-server-1");
    } finally {
      await rot.shutdown();
    }
  });
});

describe("the audit journal records the caller", () => {
  it("a change made with a principal's token is journaled with that principal's name; an auditor filters by it", async () => {
    const minter = client({ token: fx.roleTokens.minter });
    const account = unique("audited");
    const made = await mint(minter, account, "3");
    const auditor = client({ token: fx.roleTokens.auditor });
    const page = await call<ListAuditEventsResponse>(auditor, "ListAuditEvents", ListAuditEventsRequest.fromPartial({ accountId: account }));
    expect(page.events.map((e) => [e.principal, e.action, JSON.parse(e.resultJson).mint_id])).toEqual([["role-minter", "MintUsdc", made.mint!.mintId]]);
    const byPrincipal = await call<ListAuditEventsResponse>(auditor, "ListAuditEvents", ListAuditEventsRequest.fromPartial({ principal: "role-minter" }));
    expect(byPrincipal.events.every((e) => e.principal === "role-minter")).toBe(true);
    expect(byPrincipal.events.map((e) => e.hash)).toContain(page.events[0]!.hash);
    const verdict = await call<VerifyAuditChainResponse>(auditor, "VerifyAuditChain", VerifyAuditChainRequest.fromPartial({}));
    expect(verdict.whole).toBe(true);
  });
});
