/**
 * Minter allowances through the real server and the generated client, with
 * an auth file (principals from their tokens): a manager's Set is the final
 * word (a revoked allowance stays revoked when the mint charged before the
 * Set is rejected), SetMinterAllowance's compare-and-set answers
 * ALLOWANCE_CHANGED with the value now, and no principal sets its own
 * allowance (SELF_ALLOWANCE), whatever roles it holds. Without an auth file
 * the development principal may (every role, by design).
 */
import * as grpc from "@grpc/grpc-js";
import { status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, MintStatus, type GetMinterAllowanceResponse, type MintServiceClient, type MintUsdcResponse, type SetMinterAllowanceResponse } from "../../gen/usdc/mint/v1/mint.js";
import { startApp, type App } from "../../src/app.js";
import { tokenDigestHex } from "../../src/auth/authenticate.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { ERROR_DOMAIN } from "../../src/transport/grpc/status.js";
import { createMintClient, MintServiceError } from "../../packages/client/src/index.js";
import { makeAuthFixture, newToken, type AuthFixture } from "../support/auth-fixtures.js";
import { decodeError, expectError, startTestServer, type DecodedError, type TestServer } from "../support/test-server.js";

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;

function call<Res = unknown>(c: MintServiceClient, method: string, req: unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    (c[method as keyof MintServiceClient] as unknown as Unary).call(c, req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

async function refused(p: Promise<unknown>): Promise<DecodedError> {
  try {
    await p;
  } catch (err) {
    return decodeError(err as grpc.ServiceError);
  }
  throw new Error("expected the call to be refused");
}

describe("allowances with an auth file", () => {
  let fx: AuthFixture;
  let app: App;
  const clients: grpc.Client[] = [];
  const tokens = { manager: newToken(), dual: newToken(), approver1: newToken(), approver2: newToken() };
  const client = (token: string): MintServiceClient => {
    const c = fx.client(app.server.address, { token });
    clients.push(c);
    return c;
  };
  let manager: MintServiceClient;
  let dual: MintServiceClient;
  const allowanceOf = async (principal: string): Promise<string> => (await call<GetMinterAllowanceResponse>(dual, "getMinterAllowance", { principal })).allowance;

  beforeAll(async () => {
    fx = makeAuthFixture();
    fx.writeAuthFile([
      ...fx.principals,
      { name: "manager", roles: ["reserve-manager", "reader"], scopes: ["*"], token_sha256: [tokenDigestHex(tokens.manager)] },
      // Both roles: it mints, and could raise its own cap but for SELF_ALLOWANCE.
      { name: "dual", roles: ["minter", "reserve-manager", "reader"], scopes: ["*"], token_sha256: [tokenDigestHex(tokens.dual)] },
      { name: "approver-1", roles: ["approver"], scopes: ["*"], token_sha256: [tokenDigestHex(tokens.approver1)] },
      { name: "approver-2", roles: ["approver"], scopes: ["*"], token_sha256: [tokenDigestHex(tokens.approver2)] },
    ]);
    const config = loadConfig([], {
      MINT_LISTEN: "127.0.0.1:0",
      MINT_LOG_LEVEL: "silent",
      MINT_RATE_LIMIT: "1000",
      MINT_ALLOWANCES: "true",
      MINT_APPROVAL_THRESHOLD: "1000",
      ...fx.env,
    });
    app = await startApp(config, createLogger(config.logLevel));
    manager = client(tokens.manager);
    dual = client(tokens.dual);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await app?.shutdown();
    fx?.remove();
  });

  it("a principal may not set its own allowance, whatever its roles: SELF_ALLOWANCE, nothing changed", async () => {
    await call(manager, "setMinterAllowance", { principal: "dual", amount: "10" });
    const e = await refused(call(dual, "setMinterAllowance", { principal: "dual", amount: "1000000" }));
    expect([Code[e.code], e.reason, e.domain, e.metadata]).toEqual(["PERMISSION_DENIED", "SELF_ALLOWANCE", ERROR_DOMAIN, { principal: "dual" }]);
    expect(await allowanceOf("dual")).toBe("10");
    // With an expected value too; another principal's allowance it may set.
    expect((await refused(call(dual, "setMinterAllowance", { principal: "dual", amount: "11", expectedAmount: "10" }))).reason).toBe("SELF_ALLOWANCE");
    expect((await call<SetMinterAllowanceResponse>(dual, "setMinterAllowance", { principal: "manager", amount: "1" })).allowance).toBe("1");
  });

  it("the manager's Set is the final word: revoked to 0 while a charged mint is pending, its rejection gives nothing back", async () => {
    await call(manager, "setMinterAllowance", { principal: "dual", amount: "5000" });
    const pending = await call<MintUsdcResponse>(dual, "mintUsdc", { accountId: "acct-rev", amount: "5000", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "rev-1" });
    expect(pending.mint?.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
    expect(await allowanceOf("dual")).toBe("0");
    await call(manager, "setMinterAllowance", { principal: "dual", amount: "0" });
    await call(client(tokens.approver1), "rejectMint", { mintId: pending.mint?.mintId, reason: "revoked" });
    expect(await allowanceOf("dual")).toBe("0");
    // A mint charged after the last Set is given back as before.
    await call(manager, "setMinterAllowance", { principal: "dual", amount: "2000" });
    const later = await call<MintUsdcResponse>(dual, "mintUsdc", { accountId: "acct-rev", amount: "1500", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "rev-2" });
    expect(await allowanceOf("dual")).toBe("500");
    await call(client(tokens.approver2), "rejectMint", { mintId: later.mint?.mintId, reason: "no" });
    expect(await allowanceOf("dual")).toBe("2000");
  });

  it("expected_amount: a compare-and-set; a mismatch is ALLOWANCE_CHANGED with the value now, nothing changed", async () => {
    await call(manager, "setMinterAllowance", { principal: "dual", amount: "3500" });
    await call(dual, "mintUsdc", { accountId: "acct-cas", amount: "500", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "cas-1" });
    const e = await refused(call(manager, "setMinterAllowance", { principal: "dual", amount: "4000", expectedAmount: "3500" }));
    expect([Code[e.code], e.reason, e.metadata]).toEqual(["FAILED_PRECONDITION", "ALLOWANCE_CHANGED", { principal: "dual", remaining: "3000", expected: "3500" }]);
    expect(await allowanceOf("dual")).toBe("3000");
    const set = await call<SetMinterAllowanceResponse>(manager, "setMinterAllowance", { principal: "dual", amount: "4000", expectedAmount: "3000" });
    expect(set.allowance).toBe("4000");
    // "0" is a valid expectation (a principal never set has 0 left).
    expect((await call<SetMinterAllowanceResponse>(manager, "setMinterAllowance", { principal: "never-set", amount: "1.5", expectedAmount: "0" })).allowance).toBe("1.5");
    for (const [expectedAmount, reason] of [["-1", "INVALID_AMOUNT"], ["1.0000001", "INVALID_AMOUNT"], ["", "INVALID_AMOUNT"], ["9".repeat(40), "AMOUNT_TOO_LARGE"]] as const) {
      const bad = await refused(call(manager, "setMinterAllowance", { principal: "dual", amount: "1", expectedAmount }));
      expect([Code[bad.code], bad.reason, bad.metadata.field]).toEqual(["INVALID_ARGUMENT", reason, "expected_amount"]);
    }
    expect(await allowanceOf("dual")).toBe("4000");
  });
});

describe("allowances without an auth file (development)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ MINT_ALLOWANCES: "true", MINT_DEV_PRINCIPAL_HEADER: "true" });
  });
  afterAll(async () => {
    await s.stop();
  });

  it("the all-roles `local` principal, and names the development header lends it, may set their own allowance", async () => {
    expect((await s.call<object, SetMinterAllowanceResponse>("setMinterAllowance", { principal: "local", amount: "7" })).allowance).toBe("7");
    const lent = { metadata: { "x-mint-dev-principal": "dev-minter" } };
    expect((await s.call<object, SetMinterAllowanceResponse>("setMinterAllowance", { principal: "dev-minter", amount: "8" }, lent)).allowance).toBe("8");
    const e = await expectError(s.call("setMinterAllowance", { principal: "local", amount: "9", expectedAmount: "6" }));
    expect([e.code, e.reason, e.metadata.remaining]).toEqual([Code.FAILED_PRECONDITION, "ALLOWANCE_CHANGED", "7"]);
  });

  it("the SDK passes expectedAmount: applied when it matches, MintServiceError ALLOWANCE_CHANGED with `remaining` when not", async () => {
    const client = createMintClient({ addresses: s.address, defaultDeadlineMs: 5_000 });
    try {
      await client.setMinterAllowance({ principal: "sdk-minter", amount: "10" });
      expect(await client.setMinterAllowance({ principal: "sdk-minter", amount: "12", expectedAmount: "10" })).toMatchObject({ allowance: "12" });
      const e = await client.setMinterAllowance({ principal: "sdk-minter", amount: "20", expectedAmount: "10" }).then(
        () => null,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(MintServiceError);
      expect([(e as MintServiceError).reason, (e as MintServiceError).metadata.remaining]).toEqual(["ALLOWANCE_CHANGED", "12"]);
      expect(await client.getMinterAllowance("sdk-minter")).toMatchObject({ allowance: "12" });
    } finally {
      client.close();
    }
  });
});
