/**
 * The audit journal in memory: records are sealed as they are appended (one
 * thread, so the append order is the commit order), kept in an array that is
 * only ever pushed to. `append` is the one function the memory stores call,
 * synchronously, in the same step as the change it records.
 */
import { GENESIS_HASH, matches, seal, type AuditJournal, type AuditQuery, type AuditRecord, type UnsealedAuditRecord } from "../../domain/audit.js";

export class MemoryAuditJournal implements AuditJournal {
  private readonly records: AuditRecord[] = [];

  /** Seals and appends one record; returns it. Synchronous: call it in the same step as the change. */
  append(u: UnsealedAuditRecord): AuditRecord {
    const prev = this.records[this.records.length - 1];
    const record = seal(u, this.records.length + 1, prev === undefined ? GENESIS_HASH : prev.hash);
    this.records.push(record);
    return record;
  }

  get size(): number {
    return this.records.length;
  }

  async list(q: AuditQuery): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    for (let i = Math.max(0, q.afterSeq); i < this.records.length && out.length < q.limit; i++) {
      const r = this.records[i] as AuditRecord;
      if (matches(r, q)) out.push(r);
    }
    return out;
  }

  async readSealed(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    return this.records.slice(Math.max(0, afterSeq), Math.max(0, afterSeq) + limit);
  }

  async readOne(seq: number): Promise<AuditRecord | null> {
    return this.records[seq - 1] ?? null;
  }

  async unsealedCount(): Promise<number> {
    return 0;
  }

  /** Test only: replaces record `seq` (an attacker with memory access), to show verify catches it. */
  tamperForTest(seq: number, replace: (r: AuditRecord) => AuditRecord): void {
    const r = this.records[seq - 1];
    if (r !== undefined) this.records[seq - 1] = replace(r);
  }
}
