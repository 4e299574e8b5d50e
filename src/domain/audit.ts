/**
 * The audit journal's records, their canonical encoding and hash, and the
 * verification of a chain of them. Shared by every store, and in both the
 * seal is off the answer's path: the memory journal numbers a record as it
 * appends it and seals it in a batch once the appending stretch has ended;
 * PostgreSQL inserts records unsealed inside the change's transaction and a
 * single sealer gives them their sequence numbers and hashes in commit order
 * right after. Either way every read seals (or shows) sealed records only.
 *
 * Canonical encoding (what the hash covers): the record without `hash` as
 * JSON with the keys of every object in code-unit order, no whitespace,
 * strings escaped as `JSON.stringify` does, integers in decimal:
 *   {"accounts":[..],"action":"..","actor":"..","idempotencyKey":".."|null,
 *    "prevHash":"<64 hex>","request":{..},"result":{..},"seq":n,"timeMs":n}
 * `hash` = lowercase hex SHA-256 of those UTF-8 bytes. The first record's
 * `prevHash` is 64 zeros (GENESIS_HASH).
 */
import * as nodeCrypto from "node:crypto";
import type { JournalEntry } from "./journal.js";
import { mintRequest, transferRequest, type MintRecord, type NewMint, type NewTransfer, type RedemptionRecord, type TransferRecord } from "./model.js";

export type JsonScalar = string | number | boolean | null;
export type CanonicalObject = Readonly<Record<string, JsonScalar>>;

/** The prevHash of the first record. */
export const GENESIS_HASH = "0".repeat(64);

/** A journal entry with its outcome, as a store appends it, before it is sealed. */
export interface UnsealedAuditRecord extends JournalEntry {
  /** Wall ms of the change (the record's time). */
  readonly timeMs: number;
  /** What the change produced (ids, final status), JSON-safe. */
  readonly result: CanonicalObject;
}

/** A sealed journal record: its place in the chain and its hash. */
export interface AuditRecord extends UnsealedAuditRecord {
  /** 1, 2, 3, ... without gaps. */
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

/**
 * What `JSON.stringify` escapes in a string (`"`, `\\`, control characters)
 * and the surrogate code units it may escape (lone ones). A string without
 * any is encoded as itself in quotes, which is what `JSON.stringify` gives.
 */
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

function encodeString(s: string): string {
  return ESCAPED.test(s) ? JSON.stringify(s) : `"${s}"`;
}

function encodeScalar(v: JsonScalar): string {
  if (typeof v === "string") return encodeString(v);
  if (typeof v === "number" && !Number.isSafeInteger(v)) throw new Error(`audit records hold integers only, got ${v}`);
  return JSON.stringify(v);
}

/**
 * One pass over the keys. The canonical requests and results are built with
 * their keys already in code-unit order, so the keys are only checked, and
 * sorted only when some object was built otherwise.
 */
function encodeObject(o: CanonicalObject): string {
  let keys = Object.keys(o);
  for (let i = 1; i < keys.length; i++) {
    if ((keys[i - 1] as string) >= (keys[i] as string)) {
      keys = keys.sort();
      break;
    }
  }
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    out += (i === 0 ? "" : ",") + encodeString(k) + ":" + encodeScalar(o[k] as JsonScalar);
  }
  return out + "}";
}

function encodeStrings(xs: readonly string[]): string {
  let out = "[";
  for (let i = 0; i < xs.length; i++) out += (i === 0 ? "" : ",") + encodeString(xs[i] as string);
  return out + "]";
}

/** The canonical encoding of a record (everything but its hash), in one pass; see the top of this file. */
export function canonicalEncoding(r: Omit<AuditRecord, "hash">): string {
  return (
    `{"accounts":${encodeStrings(r.accounts)}` +
    `,"action":${encodeString(r.action)}` +
    `,"actor":${encodeString(r.actor)}` +
    `,"idempotencyKey":${encodeScalar(r.idempotencyKey)}` +
    `,"prevHash":${encodeString(r.prevHash)}` +
    `,"request":${encodeObject(r.request)}` +
    `,"result":${encodeObject(r.result)}` +
    `,"seq":${encodeScalar(r.seq)}` +
    `,"timeMs":${encodeScalar(r.timeMs)}}`
  );
}

/**
 * SHA-256 hex of a string: the one-shot `crypto.hash` (Node >= 20.12) where
 * there is one, about half the cost of createHash().update().digest() for
 * inputs this small; the hash is the same.
 */
const sha256Hex: (text: string) => string =
  typeof (nodeCrypto as { hash?: unknown }).hash === "function"
    ? (text) => (nodeCrypto as unknown as { hash(alg: string, data: string): string }).hash("sha256", text)
    : (text) => nodeCrypto.createHash("sha256").update(text, "utf8").digest("hex");

export function recordHash(r: Omit<AuditRecord, "hash">): string {
  return sha256Hex(canonicalEncoding(r));
}

/** The JSON-safe encoding of an object (for storing `request` and `result` as text). */
export function canonicalObjectJson(o: CanonicalObject): string {
  return encodeObject(o);
}

/** What a mint, a transfer and a reversal record as their result. */
export function mintResult(m: MintRecord): CanonicalObject {
  return { mint_id: m.mintId, status: m.status };
}
export function transferResult(t: TransferRecord): CanonicalObject {
  return { transfer_id: t.transferId };
}
export function reversalResult(m: MintRecord): CanonicalObject {
  return { account_id: m.accountId, amount: m.amountMicros.toString(), mint_id: m.mintId, status: m.status };
}
/** An approval counted, the one that completed the mint (status COMPLETED: the credit), a rejection or an expiry. */
export function approvalResult(m: MintRecord): CanonicalObject {
  return { account_id: m.accountId, amount: m.amountMicros.toString(), approvals: m.approval?.approvals.length ?? 0, mint_id: m.mintId, status: m.status };
}

/**
 * A rejection's or reversal's result, saying when the mint's allowance
 * charge was not given back: the allowance was set since the charge, and a
 * manager's Set is the final word. `refunded` is null when the mint charged
 * no allowance (nothing to say), true when the refund was applied.
 */
export function withAllowanceRefund(result: CanonicalObject, m: MintRecord, refunded: boolean | null): CanonicalObject {
  if (refunded !== false) return result;
  return { ...result, allowance_not_refunded: m.amountMicros.toString() };
}

/** What a redemption, a reserve change and a freeze record as their result. */
export function redemptionResult(r: RedemptionRecord): CanonicalObject {
  return { redemption_id: r.redemptionId };
}
/** A redemption whose burn failed on-chain, credited back to its account. */
export function redemptionRecreditResult(r: RedemptionRecord): CanonicalObject {
  return { account_id: r.accountId, amount: r.amountMicros.toString(), redemption_id: r.redemptionId, status: "RECREDITED" };
}
/** The reserve as set (supply is what the reserve was checked against, known only inside the store's step). */
export function reserveResult(reserveMicros: bigint, attestationRef: string): CanonicalObject {
  return { attestation_ref: attestationRef, reserve: reserveMicros.toString() };
}
export function freezeResult(accountId: string, frozen: boolean): CanonicalObject {
  return { account_id: accountId, frozen };
}

export type ChainVerdict =
  | {
      readonly whole: true;
      /** Records checked; the range was [firstSeq, lastSeq] (0, 0 when empty). */
      readonly checked: number;
      readonly firstSeq: number;
      readonly lastSeq: number;
      /** The hash of the last record checked (GENESIS_HASH when none): compare it with one published earlier to catch a truncated tail. */
      readonly headHash: string;
      /** Records committed but not yet sealed (PostgreSQL), outside the chain. */
      readonly unsealed: number;
    }
  | {
      readonly whole: false;
      /** The first sequence number whose record is missing, out of place or altered. */
      readonly brokenSeq: number;
      readonly reason: string;
      readonly checked: number;
    };

/** How a store serves verification: sealed records in `seq` order. */
export interface SealedReader {
  /** Sealed records with seq > afterSeq, ascending, at most `limit`. */
  readSealed(afterSeq: number, limit: number): Promise<AuditRecord[]>;
  /** The record with this seq, or null. */
  readOne(seq: number): Promise<AuditRecord | null>;
  unsealedCount(): Promise<number>;
}

const VERIFY_PAGE = 1000;

/**
 * Recomputes the chain over [fromSeq, toSeq] (toSeq 0: to the head). The
 * record before `fromSeq` is trusted for its hash (GENESIS_HASH when fromSeq
 * is 1). Reports the first sequence number that is missing (a deleted
 * record), out of order, linked to the wrong predecessor or whose hash does
 * not match its contents (an edit, a swap or an insertion).
 */
export async function verifyChain(reader: SealedReader, fromSeq: number, toSeq: number): Promise<ChainVerdict> {
  const first = Math.max(1, fromSeq);
  let prevHash = GENESIS_HASH;
  if (first > 1) {
    const before = await reader.readOne(first - 1);
    if (before === null) return { whole: false, brokenSeq: first - 1, reason: `record ${first - 1} (before the range) is missing`, checked: 0 };
    prevHash = before.hash;
  }
  let expected = first;
  let checked = 0;
  for (;;) {
    const page = await reader.readSealed(expected - 1, VERIFY_PAGE);
    for (const r of page) {
      if (toSeq > 0 && r.seq > toSeq) break;
      if (r.seq !== expected) return { whole: false, brokenSeq: expected, reason: `record ${expected} is missing (next is ${r.seq})`, checked };
      if (r.prevHash !== prevHash) return { whole: false, brokenSeq: r.seq, reason: `record ${r.seq} does not link to record ${r.seq - 1}`, checked };
      if (recordHash(r) !== r.hash) return { whole: false, brokenSeq: r.seq, reason: `record ${r.seq} does not match its hash`, checked };
      prevHash = r.hash;
      expected++;
      checked++;
    }
    const last = page[page.length - 1];
    if (page.length < VERIFY_PAGE || last === undefined || (toSeq > 0 && last.seq >= toSeq)) break;
  }
  if (toSeq > 0 && checked > 0 && expected - 1 < toSeq) {
    return { whole: false, brokenSeq: expected, reason: `record ${expected} is missing (the chain ends at ${expected - 1})`, checked };
  }
  return {
    whole: true,
    checked,
    firstSeq: checked === 0 ? 0 : first,
    lastSeq: checked === 0 ? 0 : expected - 1,
    headHash: prevHash,
    unsealed: await reader.unsealedCount(),
  };
}

/** A ListAuditEvents query, validated. */
export interface AuditQuery {
  readonly accountId: string | null;
  readonly actor: string | null;
  /** Wall ms, inclusive; 0 for no bound. */
  readonly fromTimeMs: number;
  /** Wall ms, exclusive; Infinity for no bound. */
  readonly toTimeMs: number;
  readonly afterSeq: number;
  readonly limit: number;
}

/** The read side of a store's journal (ListAuditEvents, VerifyAuditChain). */
export interface AuditJournal extends SealedReader {
  /** Sealed records matching the query, ascending `seq`. */
  list(query: AuditQuery): Promise<AuditRecord[]>;
}

/** True when `r` passes the query's filters (memory uses it; PostgreSQL says the same in SQL). */
export function matches(r: AuditRecord, q: AuditQuery): boolean {
  return (
    r.seq > q.afterSeq &&
    (q.accountId === null || r.accounts.includes(q.accountId)) &&
    (q.actor === null || r.actor === q.actor) &&
    r.timeMs >= q.fromTimeMs &&
    r.timeMs < q.toTimeMs
  );
}

/** The actor of a change made without an authenticated principal (no auth file, building-block tests). */
export const LOCAL_ACTOR = "local";

/** The journal entry of an effect applied without one (see `KeyedCall.journal`). */
export function entryOfEffect(effect: { readonly kind: "mint" | "transfer"; readonly cmd: NewMint | NewTransfer }): JournalEntry {
  if (effect.kind === "mint") {
    const c = effect.cmd as NewMint;
    return { actor: LOCAL_ACTOR, action: "MintUsdc", idempotencyKey: c.idempotencyKey, request: mintRequest(c.accountId, c.amountMicros, c.blockchain), accounts: [c.accountId] };
  }
  const c = effect.cmd as NewTransfer;
  return {
    actor: LOCAL_ACTOR,
    action: "Transfer",
    idempotencyKey: c.idempotencyKey,
    request: transferRequest(c.fromAccountId, c.toAccountId, c.amountMicros),
    accounts: [c.fromAccountId, c.toAccountId],
  };
}

/** The journal entry of a ReconcileMint (the accounts are filled in by the store, which reads the mint). */
export function reversalEntry(actor: string, mintId: string, reason: string): JournalEntry {
  return { actor, action: "ReconcileMint", idempotencyKey: null, request: { mint_id: mintId, reason }, accounts: [] };
}

/** The record a store appends: the entry, its outcome and its time; `accounts` added to when the store learnt more (a reversal's account). */
export function unsealedRecord(entry: JournalEntry, result: CanonicalObject, timeMs: number, accounts: readonly string[] = entry.accounts): UnsealedAuditRecord {
  return { actor: entry.actor, action: entry.action, idempotencyKey: entry.idempotencyKey, request: entry.request, accounts, result, timeMs };
}
