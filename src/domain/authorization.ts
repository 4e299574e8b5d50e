/**
 * Who may do what: the role table, account scopes and the authorization
 * decision. Plain data and pure functions, so the same rules serve the gRPC
 * edge (which decides before anything else runs) and the core (which checks
 * the scope of a mint's account once it has looked the mint up).
 */

import type { Failure } from "./errors.js";

/** Every RPC the service authorizes, by its proto method name. */
export const RPCS = [
  "MintUsdc",
  "Transfer",
  "GetBalance",
  "GetMint",
  "ListMints",
  "ReconcileMint",
  "ReconcileChain",
  "ListAuditEvents",
  "VerifyAuditChain",
  // M-of-N approval and minter allowances.
  "ApproveMint",
  "RejectMint",
  "SetMinterAllowance",
  "GetMinterAllowance",
  // Reserve, redemption, freeze.
  "SetReserve",
  "GetSupply",
  "RedeemUsdc",
  "GetRedemption",
  "ListRedemptions",
  "FreezeAccount",
  "UnfreezeAccount",
  "WatchLedger",
  // Many movements per call.
  "BatchMint",
  "BatchTransfer",
] as const;
export type Rpc = (typeof RPCS)[number];

/**
 * THE role table: each role and the RPCs it grants. Adding a role is one
 * line. A role with no RPCs yet is reserved: an auth file may name it (so
 * operators can provision ahead of the feature) and it grants nothing today.
 * `auditor` reads and verifies the audit journal; `approver` and
 * `reserve-manager` hold the approval and allowance calls; `redeemer` and
 * `compliance` hold redemption and freezing.
 */
export const ROLE_TABLE = {
  minter: ["MintUsdc", "BatchMint"],
  transferer: ["Transfer", "BatchTransfer"],
  // GetMinterAllowance: each RPC has one role, so reserve-managers that read allowances also hold `reader`.
  reader: ["GetBalance", "GetMint", "ListMints", "GetMinterAllowance", "GetSupply", "GetRedemption", "ListRedemptions", "WatchLedger"],
  reconciler: ["ReconcileMint"],
  auditor: ["ReconcileChain", "ListAuditEvents", "VerifyAuditChain"],
  approver: ["ApproveMint", "RejectMint"], // scope: the mint's account
  "reserve-manager": ["SetReserve", "SetMinterAllowance"], // the reserve and minter allowances
  redeemer: ["RedeemUsdc"],
  compliance: ["FreezeAccount", "UnfreezeAccount"],
} as const satisfies Record<string, readonly Rpc[]>;

export type Role = keyof typeof ROLE_TABLE;
export const ROLES = Object.keys(ROLE_TABLE) as readonly Role[];

/**
 * What the account scope is checked against, per RPC (documentation for the
 * README and the edge; the edge extracts these accounts from the request).
 */
export const SCOPE_TARGET: Readonly<Record<Rpc, string>> = {
  MintUsdc: "the credited account (account_id)",
  Transfer: "the debited account (from_account_id)",
  GetBalance: "the account asked about (account_id)",
  GetMint: "the mint's account",
  ListMints: "account_id; all accounts (empty account_id) needs scope *",
  ReconcileMint: "the mint's account",
  ReconcileChain: "— (a whole chain: not account-scoped)",
  ListAuditEvents: "account_id; every account (empty account_id) needs scope *",
  VerifyAuditChain: "the whole journal: needs scope *",
  ApproveMint: "the mint's account",
  RejectMint: "the mint's account",
  SetMinterAllowance: "none (allowances belong to principals, not accounts)",
  GetMinterAllowance: "none (allowances belong to principals, not accounts)",
  SetReserve: "none (the reserve is not an account's)",
  GetSupply: "none",
  RedeemUsdc: "the debited account (account_id)",
  GetRedemption: "the redemption's account",
  ListRedemptions: "account_id; all accounts (empty account_id) needs scope *",
  FreezeAccount: "the account (account_id)",
  UnfreezeAccount: "the account (account_id)",
  WatchLedger: "each account of account_ids; the stream carries only events of accounts the scopes cover, and events of no account (reserve, allowance) only with scope *",
  BatchMint: "each item's credited account (items[i].account_id), item by item: an item outside the scopes fails alone",
  BatchTransfer: "each item's debited account (items[i].from_account_id), item by item: an item outside the scopes fails alone",
};

/**
 * Names of the service's own actors. They appear only as the actor of what
 * the service does by itself; an auth file cannot define them, so no caller
 * can act as one.
 */
export const INTERNAL_PRINCIPALS = ["settlement-worker", "sweeper"] as const;
/** The principal every caller is when the service runs without an auth file (loopback only). */
export const LOCAL_PRINCIPAL_NAME = "local";
/** Names an auth file may not use. */
export const RESERVED_PRINCIPAL_NAMES: readonly string[] = [...INTERNAL_PRINCIPALS, LOCAL_PRINCIPAL_NAME];

/** The target of ListMints over every account: only the scope `*` covers it. */
export const ALL_ACCOUNTS = "*";

/** An authenticated caller (or the service itself). Carries no secret. */
export interface Principal {
  readonly name: string;
  readonly roles: ReadonlySet<Role>;
  /** Account patterns: an exact id, a prefix ending in `*` (`treasury:*`), or `*` for every account. */
  readonly scopes: readonly string[];
}

/** The principal of a service started without an auth file: every role, every account. */
export const LOCAL_PRINCIPAL: Principal = Object.freeze({
  name: LOCAL_PRINCIPAL_NAME,
  roles: new Set<Role>(ROLES),
  scopes: Object.freeze([ALL_ACCOUNTS]),
});

const RPC_NAMES: ReadonlySet<string> = new Set(RPCS);

export function isRpc(value: string): value is Rpc {
  return RPC_NAMES.has(value);
}

export function isRole(value: string): value is Role {
  return Object.prototype.hasOwnProperty.call(ROLE_TABLE, value);
}

/** A scope pattern is `*`, or an account-id prefix (same characters as account ids) optionally ending in `*`. */
const SCOPE_PATTERN = /^(\*|[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\*?)$/;

export function isScopePattern(value: string): boolean {
  return SCOPE_PATTERN.test(value);
}

/**
 * Whether `pattern` covers `account`. `*` covers everything including
 * ALL_ACCOUNTS; `treasury:*` covers `treasury:a` and `treasury:` but not
 * `treasury2:a` or ALL_ACCOUNTS; anything else covers exactly itself.
 */
export function scopeMatches(pattern: string, account: string): boolean {
  if (pattern === ALL_ACCOUNTS) return true;
  if (account === ALL_ACCOUNTS) return false;
  if (pattern.endsWith("*")) return account.startsWith(pattern.slice(0, -1));
  return pattern === account;
}

/** Whether the principal holds the scope `*` (every account, and ListMints over all). */
export function coversAllAccounts(principal: Principal): boolean {
  return principal.scopes.includes(ALL_ACCOUNTS);
}

export function inScope(principal: Principal, account: string): boolean {
  return principal.scopes.some((p) => scopeMatches(p, account));
}

/** RPC -> the one role that grants it, derived from ROLE_TABLE once (the hot path reads a map). */
const RPC_ROLE: ReadonlyMap<Rpc, Role> = (() => {
  const out = new Map<Rpc, Role>();
  for (const role of ROLES) {
    for (const rpc of ROLE_TABLE[role] as readonly Rpc[]) {
      if (out.has(rpc)) throw new Error(`invariant violated: ${rpc} is granted by two roles`);
      out.set(rpc, role);
    }
  }
  for (const rpc of RPCS) if (!out.has(rpc)) throw new Error(`invariant violated: no role grants ${rpc}`);
  return out;
})();

/** The role that grants `rpc` (each RPC is granted by exactly one role). */
export function roleFor(rpc: Rpc): Role {
  return RPC_ROLE.get(rpc) as Role;
}

export type AuthzDecision =
  | { readonly ok: true }
  /** `missing` is the role the principal lacks, or the account no scope covers. */
  | { readonly ok: false; readonly code: "PERMISSION_DENIED"; readonly rpc: Rpc; readonly missingRole?: Role; readonly missingScope?: string };

const ALLOWED: AuthzDecision = Object.freeze({ ok: true });

/**
 * Decides whether `principal` may call `rpc` on `accounts` (the scope
 * targets; empty when they are not known yet, e.g. a mint's account before
 * the lookup: then only the role is checked). Names the first thing missing.
 */
export function authorize(principal: Principal, rpc: Rpc, accounts: readonly string[]): AuthzDecision {
  const role = roleFor(rpc);
  if (!principal.roles.has(role)) return { ok: false, code: "PERMISSION_DENIED", rpc, missingRole: role };
  for (const account of accounts) {
    if (!inScope(principal, account)) return { ok: false, code: "PERMISSION_DENIED", rpc, missingScope: account };
  }
  return ALLOWED;
}

/**
 * Idempotency keys are scoped per caller: the key the stores see is the
 * principal's name, a tab, then the caller's key, so the same key from two
 * principals is two keys. A tab can be in neither part (names are
 * `[A-Za-z0-9._-]`, keys printable ASCII). `local` (and the service's own
 * calls, without a principal) keep the bare key, so keys stored before an auth
 * file was introduced are nobody else's.
 */
export function scopedIdempotencyKey(principal: Principal | undefined, key: string): string {
  return principal === undefined || principal.name === LOCAL_PRINCIPAL_NAME ? key : `${principal.name}\t${key}`;
}

/** The caller's own key of a scoped key (what responses and errors show). */
export function callerIdempotencyKey(scopedKey: string): string {
  const tab = scopedKey.indexOf("\t");
  return tab < 0 ? scopedKey : scopedKey.slice(tab + 1);
}

/**
 * The answer to a call that names a mint or redemption by id, once it has
 * been looked up (`accountId` null: no such id). A caller without scope `*`
 * gets the same PERMISSION_DENIED for an id whose account is outside its
 * scopes and for an id that does not exist, naming no account (Google
 * AIP-211: a caller without permission learns nothing of existence or
 * ownership); `notFound` is the answer only for a caller that could see it
 * if it existed: scope `*`, or the service's own calls (no principal).
 * Undefined when the call may go on.
 */
export function idScopeRefusal(
  principal: Principal | undefined,
  rpc: Rpc,
  idNamed: "mint" | "redemption",
  accountId: string | null,
  notFound: Failure,
): Failure | undefined {
  if (principal === undefined) return accountId === null ? notFound : undefined;
  if (accountId !== null && inScope(principal, accountId)) return undefined;
  if (accountId === null && coversAllAccounts(principal)) return notFound;
  return { code: "PERMISSION_DENIED", rpc, principal: principal.name, idNamed };
}
