/**
 * The audit journal in memory. `append` is the one function the memory
 * stores call, synchronously, in the same step as the change it records: the
 * record takes its `seq` there (one thread, so the append order is the
 * commit order) and is pushed to an array that is only ever pushed to.
 *
 * Sealing (the canonical encoding and the SHA-256 link to the record before)
 * is off the answer's path: a pass seals the records appended since the last
 * one, in order, at most SEAL_BATCH at a time, once the stretch that appended
 * them has ended (`setImmediate`: after the answers of the same turn are
 * written). Every read seals first, so ListAuditEvents, VerifyAuditChain and
 * the verifier only ever see a whole sealed chain (`unsealedCount` is 0).
 */
import { GENESIS_HASH, matches, mintResult, recordHash, type AuditJournal, type AuditQuery, type AuditRecord, type CanonicalObject, type UnsealedAuditRecord } from "../../domain/audit.js";
import type { JournalEntry } from "../../domain/journal.js";
import { mintRequest, type MintRecord } from "../../domain/model.js";

/** Most records one background pass seals before it yields to other work (a read seals every record it needs at once). */
export const SEAL_BATCH = 1000;

/** A record as kept: `prevHash` and `hash` are "" until it is sealed. */
type FullRecord = { -readonly [K in keyof AuditRecord]: AuditRecord[K] };

/**
 * A MintUsdc record kept as the mint it created: its request, result,
 * accounts and time are what `mintRequest`, `mintResult`, `[accountId]` and
 * `createWallMs` make of that record, which never changes (a change replaces
 * it), so they are made when the record is sealed or read instead of kept
 * with each of the service's most numerous records.
 */
interface MintKept {
  readonly seq: number;
  readonly actor: string;
  readonly action: string;
  readonly idempotencyKey: string | null;
  readonly mint: MintRecord;
  prevHash: string;
  hash: string;
}

type KeptRecord = FullRecord | MintKept;

/** The record as read (a kept mint record made whole). */
function whole(r: KeptRecord): FullRecord {
  if (!("mint" in r)) return r;
  const m = r.mint;
  return {
    seq: r.seq,
    timeMs: m.createWallMs,
    actor: r.actor,
    action: r.action,
    idempotencyKey: r.idempotencyKey,
    request: mintRequest(m.accountId, m.amountMicros, m.blockchain),
    result: mintResult(m),
    accounts: [m.accountId],
    prevHash: r.prevHash,
    hash: r.hash,
  };
}

/** Whether the entry says of the mint exactly what `whole` makes of it. */
function restatesMint(entry: JournalEntry, m: MintRecord, timeMs: number): boolean {
  const q = entry.request;
  return (
    timeMs === m.createWallMs &&
    entry.accounts.length === 1 &&
    entry.accounts[0] === m.accountId &&
    q.account_id === m.accountId &&
    q.blockchain === m.blockchain &&
    q.amount === m.amountMicros.toString() &&
    Object.keys(q).length === 3
  );
}

export class MemoryAuditJournal implements AuditJournal {
  private readonly records: KeptRecord[] = [];
  /** Records 1..sealed are sealed. */
  private sealed = 0;
  private passQueued = false;
  private readonly pass = (): void => {
    this.passQueued = false;
    this.sealThrough(Math.min(this.records.length, this.sealed + SEAL_BATCH));
    if (this.sealed < this.records.length) this.queuePass();
  };

  /** Appends one record with its `seq`; it is sealed after this stretch. Synchronous: call it in the same step as the change. */
  append(u: UnsealedAuditRecord): void {
    this.record(u, u.result, u.timeMs, u.accounts);
  }

  /** `append` of `unsealedRecord(entry, result, timeMs, accounts)`, without making that object first (the mint's and transfer's path). */
  record(entry: JournalEntry, result: CanonicalObject, timeMs: number, accounts: readonly string[] = entry.accounts): void {
    // One object with every field, in one shape: prevHash and hash are filled in when sealed.
    this.records.push({
      seq: this.records.length + 1,
      timeMs,
      actor: entry.actor,
      action: entry.action,
      idempotencyKey: entry.idempotencyKey,
      request: entry.request,
      result,
      accounts,
      prevHash: "",
      hash: "",
    });
    if (!this.passQueued) this.queuePass();
  }

  /** Records appended, sealed or not (every one of them is sealed before any read). */
  get size(): number {
    return this.records.length;
  }

  /** Appends a mint's record (`mintResult` as its result), kept as the mint when the entry restates it. */
  recordMint(entry: JournalEntry, mint: MintRecord, timeMs: number): void {
    if (!restatesMint(entry, mint, timeMs)) {
      this.record(entry, mintResult(mint), timeMs);
      return;
    }
    this.records.push({ seq: this.records.length + 1, actor: entry.actor, action: entry.action, idempotencyKey: entry.idempotencyKey, mint, prevHash: "", hash: "" });
    if (!this.passQueued) this.queuePass();
  }

  /** Seals every record appended so far (reads call it first); returns how many it sealed. */
  sealAll(): number {
    const before = this.sealed;
    this.sealThrough(this.records.length);
    return this.sealed - before;
  }

  async list(q: AuditQuery): Promise<AuditRecord[]> {
    this.sealAll();
    const out: AuditRecord[] = [];
    for (let i = Math.max(0, q.afterSeq); i < this.records.length && out.length < q.limit; i++) {
      const r = this.records[i] as KeptRecord;
      if ("mint" in r ? mintMatches(r, q) : matches(r, q)) out.push(whole(r));
    }
    return out;
  }

  async readSealed(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    this.sealAll();
    return this.records.slice(Math.max(0, afterSeq), Math.max(0, afterSeq) + limit).map(whole);
  }

  async readOne(seq: number): Promise<AuditRecord | null> {
    this.sealAll();
    const r = this.records[seq - 1];
    return r === undefined ? null : whole(r);
  }

  async unsealedCount(): Promise<number> {
    this.sealAll();
    return this.records.length - this.sealed;
  }

  /** Test only: replaces record `seq` (an attacker with memory access), to show verify catches it. */
  tamperForTest(seq: number, replace: (r: AuditRecord) => AuditRecord): void {
    this.sealAll();
    const r = this.records[seq - 1];
    if (r !== undefined) this.records[seq - 1] = { ...replace(whole(r)) };
  }

  /** Seals records sealed+1..n in order, each linked to the one before. */
  private sealThrough(n: number): void {
    let prevHash = this.sealed === 0 ? GENESIS_HASH : (this.records[this.sealed - 1] as KeptRecord).hash;
    for (let i = this.sealed; i < n; i++) {
      const r = this.records[i] as KeptRecord;
      r.prevHash = prevHash;
      r.hash = recordHash(whole(r));
      prevHash = r.hash;
      // Counted record by record, so a record that cannot be encoded (a bug) stops the chain there, not after it.
      this.sealed = i + 1;
    }
  }

  private queuePass(): void {
    this.passQueued = true;
    setImmediate(this.pass);
  }
}

/** `matches` for a kept mint record, without making it whole. */
function mintMatches(r: MintKept, q: AuditQuery): boolean {
  const m = r.mint;
  return r.seq > q.afterSeq && (q.accountId === null || m.accountId === q.accountId) && (q.actor === null || r.actor === q.actor) && m.createWallMs >= q.fromTimeMs && m.createWallMs < q.toTimeMs;
}
