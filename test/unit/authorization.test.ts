/**
 * The role table and scope rules, cell by cell. The expected matrix is written
 * out here by hand (not derived from ROLE_TABLE), so a change to the table
 * fails a test until the table is consciously changed too.
 */
import { describe, expect, it } from "vitest";
import {
  ALL_ACCOUNTS,
  authorize,
  callerIdempotencyKey,
  idScopeRefusal,
  scopedIdempotencyKey,
  isScopePattern,
  LOCAL_PRINCIPAL,
  RESERVED_PRINCIPAL_NAMES,
  roleFor,
  ROLES,
  RPCS,
  scopeMatches,
  type Principal,
  type Role,
  type Rpc,
} from "../../src/domain/authorization.js";
import type { Failure } from "../../src/domain/errors.js";

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

function principal(roles: Role[], scopes: string[] = ["*"]): Principal {
  return { name: "p", roles: new Set(roles), scopes };
}

describe("role table", () => {
  it("knows exactly the issue's roles", () => {
    expect([...ROLES].sort()).toEqual(Object.keys(GRANTS).sort());
  });

  const cells = ROLES.flatMap((role) => RPCS.map((rpc) => ({ role, rpc, allowed: GRANTS[role].includes(rpc) })));
  it.each(cells)("$role × $rpc → allowed $allowed", ({ role, rpc, allowed }) => {
    const d = authorize(principal([role]), rpc, ["acct"]);
    expect(d.ok).toBe(allowed);
    if (!d.ok) expect(d).toEqual({ ok: false, code: "PERMISSION_DENIED", rpc, missingRole: roleFor(rpc) });
  });

  it("every RPC is granted by exactly one role", () => {
    for (const rpc of RPCS) expect(ROLES.filter((r) => GRANTS[r].includes(rpc))).toEqual([roleFor(rpc)]);
  });

  it("a principal with no roles may call nothing", () => {
    for (const rpc of RPCS) expect(authorize(principal([]), rpc, []).ok).toBe(false);
  });

  it("local has every role and every account", () => {
    for (const rpc of RPCS) expect(authorize(LOCAL_PRINCIPAL, rpc, ["any", ALL_ACCOUNTS]).ok).toBe(true);
  });

  it("reserves the internal principals and local", () => {
    expect([...RESERVED_PRINCIPAL_NAMES].sort()).toEqual(["local", "settlement-worker", "sweeper"]);
  });
});

describe("scopes", () => {
  it.each([
    ["treasury:*", "treasury:a", true],
    ["treasury:*", "treasury:", true],
    ["treasury:*", "treasury2:a", false],
    ["treasury:*", "treasury", false],
    ["treasury:*", "Treasury:a", false],
    ["treasury:*", ALL_ACCOUNTS, false],
    ["alice", "alice", true],
    ["alice", "alice2", false],
    ["alice", "alic", false],
    ["*", "anything", true],
    ["*", ALL_ACCOUNTS, true],
    ["a*", "a", true],
    ["a*", "b", false],
  ])("%s covers %s: %s", (pattern, account, expected) => {
    expect(scopeMatches(pattern, account)).toBe(expected);
  });

  it("the decision names the account no scope covers, checked after the role", () => {
    const p = principal(["minter", "transferer"], ["treasury:*"]);
    expect(authorize(p, "MintUsdc", ["treasury:a"])).toEqual({ ok: true });
    expect(authorize(p, "MintUsdc", ["treasury2:a"])).toEqual({ ok: false, code: "PERMISSION_DENIED", rpc: "MintUsdc", missingScope: "treasury2:a" });
    expect(authorize(p, "GetBalance", ["treasury2:a"])).toEqual({ ok: false, code: "PERMISSION_DENIED", rpc: "GetBalance", missingRole: "reader" });
  });

  it("ListMints over all accounts needs the scope *", () => {
    expect(authorize(principal(["reader"], ["treasury:*"]), "ListMints", [ALL_ACCOUNTS]).ok).toBe(false);
    expect(authorize(principal(["reader"], ["*"]), "ListMints", [ALL_ACCOUNTS]).ok).toBe(true);
  });

  it("no scopes: no account", () => {
    expect(authorize(principal(["reader"], []), "GetBalance", ["a"]).ok).toBe(false);
    expect(authorize(principal(["reader"], []), "GetMint", []).ok).toBe(true);
  });

  it.each([
    ["*", true],
    ["treasury:*", true],
    ["alice", true],
    ["a.b@c-d_e:f", true],
    ["", false],
    ["**", false],
    ["*a", false],
    ["a*b", false],
    ["tre asury", false],
    [":x", false],
    ["a".repeat(129), false],
  ])("scope pattern %j valid: %s", (s, valid) => {
    expect(isScopePattern(s)).toBe(valid);
  });
});

describe("idempotency keys per caller", () => {
  const p = (name: string): Principal => ({ name, roles: new Set(), scopes: [] });
  it("prefixes the principal's name and a tab; local and no principal keep the bare key", () => {
    expect(scopedIdempotencyKey(p("payments-api"), "order-1")).toBe("payments-api\torder-1");
    expect(scopedIdempotencyKey(LOCAL_PRINCIPAL, "order-1")).toBe("order-1");
    expect(scopedIdempotencyKey(undefined, "order-1")).toBe("order-1");
  });
  it("gives back the caller's key, whatever it contains", () => {
    for (const key of ["order-1", "a b/c:d", " ~!"]) {
      expect(callerIdempotencyKey(scopedIdempotencyKey(p("n"), key))).toBe(key);
      expect(callerIdempotencyKey(key)).toBe(key);
    }
  });
});

describe("idScopeRefusal: what a call naming a mint or redemption by id answers once it has looked it up", () => {
  const scoped: Principal = { name: "desk", roles: new Set(["reader"]), scopes: ["desk:*"] };
  const all: Principal = { name: "ops", roles: new Set(["reader"]), scopes: ["*"] };
  const notFound: Failure = { code: "MINT_NOT_FOUND", mintId: "mint_x" };

  it("a caller without scope *: one refusal for an out-of-scope account and for no such id, naming no account", () => {
    const outside = idScopeRefusal(scoped, "GetMint", "mint", "bank", notFound);
    const unknown = idScopeRefusal(scoped, "GetMint", "mint", null, notFound);
    expect(outside).toEqual({ code: "PERMISSION_DENIED", rpc: "GetMint", principal: "desk", idNamed: "mint" });
    expect(unknown).toEqual(outside);
    expect(idScopeRefusal(scoped, "GetMint", "mint", "desk:a", notFound)).toBeUndefined();
  });

  it("scope * and the service's own calls: NOT_FOUND for no such id", () => {
    expect(idScopeRefusal(all, "GetRedemption", "redemption", null, notFound)).toBe(notFound);
    expect(idScopeRefusal(all, "GetRedemption", "redemption", "bank", notFound)).toBeUndefined();
    expect(idScopeRefusal(undefined, "GetMint", "mint", null, notFound)).toBe(notFound);
    expect(idScopeRefusal(undefined, "GetMint", "mint", "bank", notFound)).toBeUndefined();
  });
});
