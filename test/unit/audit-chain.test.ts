/**
 * The audit journal's canonical encoding, hash and chain verification
 * (src/domain/audit.ts), on the memory journal: the encoding is pinned
 * byte for byte (it is a published format: changing it breaks every
 * verifier), and verify names the first broken record for each kind of
 * tampering.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryAuditJournal } from "../../src/adapters/memory/memory-audit-journal.js";
import { canonicalEncoding, GENESIS_HASH, recordHash, verifyChain, type AuditRecord } from "../../src/domain/audit.js";

const sample: Omit<AuditRecord, "hash"> = {
  seq: 7,
  timeMs: 1_767_225_600_123,
  actor: "ops@example",
  action: "Transfer",
  idempotencyKey: "key-1",
  request: { to_account_id: "b", amount: "1500000", from_account_id: "a\"quoted\"" },
  result: { transfer_id: "xfr_1" },
  accounts: ["a\"quoted\"", "b"],
  prevHash: GENESIS_HASH,
};

function journalOf(n: number): MemoryAuditJournal {
  const j = new MemoryAuditJournal();
  for (let i = 1; i <= n; i++) {
    j.append({ actor: "local", action: "MintUsdc", idempotencyKey: `k${i}`, request: { account_id: "a", amount: String(i), blockchain: "BASE" }, accounts: ["a"], result: { mint_id: `mint_${i}`, status: "COMPLETED" }, timeMs: i });
  }
  return j;
}

describe("audit record encoding", () => {
  it("is JSON with sorted keys at every level, no whitespace, integers in decimal; the hash is SHA-256 hex of it", () => {
    const text = canonicalEncoding(sample);
    expect(text).toBe(
      '{"accounts":["a\\"quoted\\"","b"],"action":"Transfer","actor":"ops@example","idempotencyKey":"key-1",' +
        `"prevHash":"${GENESIS_HASH}","request":{"amount":"1500000","from_account_id":"a\\"quoted\\"","to_account_id":"b"},` +
        '"result":{"transfer_id":"xfr_1"},"seq":7,"timeMs":1767225600123}',
    );
    expect(JSON.parse(text)).toEqual({ ...sample });
    expect(recordHash(sample)).toBe(createHash("sha256").update(text, "utf8").digest("hex"));
    expect(canonicalEncoding({ ...sample, idempotencyKey: null })).toContain('"idempotencyKey":null');
  });

  it("is the same text as the reference encoding (JSON.stringify per string, keys sorted) for any strings and key orders", () => {
    // The documented encoding, written the plain way: what every existing chain was hashed with.
    const str = (x: string): string => JSON.stringify(x);
    const obj = (o: Record<string, string | number | boolean | null>): string =>
      `{${Object.keys(o)
        .sort()
        .map((k) => `${str(k)}:${JSON.stringify(o[k])}`)
        .join(",")}}`;
    const reference = (r: Omit<AuditRecord, "hash">): string =>
      `{"accounts":[${r.accounts.map(str).join(",")}],"action":${str(r.action)},"actor":${str(r.actor)},"idempotencyKey":${JSON.stringify(r.idempotencyKey)}` +
      `,"prevHash":${str(r.prevHash)},"request":${obj(r.request)},"result":${obj(r.result)},"seq":${r.seq},"timeMs":${r.timeMs}}`;
    // Any UTF-16 code units: quotes, backslashes, control characters, lone and paired surrogates.
    const text = fc.string({ unit: "binary", maxLength: 12 });
    const scalar = fc.oneof(text, fc.integer(), fc.boolean(), fc.constant(null));
    fc.assert(
      fc.property(
        fc.record({
          accounts: fc.array(text, { maxLength: 3 }),
          action: text,
          actor: text,
          idempotencyKey: fc.option(text),
          request: fc.dictionary(text, scalar, { maxKeys: 5 }),
          result: fc.dictionary(fc.oneof(text, fc.constantFrom("1", "10", "2", "a", "B")), scalar, { maxKeys: 5 }),
          seq: fc.nat(),
          timeMs: fc.nat(),
        }),
        (r) => {
          const record = { ...r, prevHash: GENESIS_HASH };
          expect(canonicalEncoding(record)).toBe(reference(record));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("refuses a non-integer number (it would not encode the same everywhere)", () => {
    expect(() => canonicalEncoding({ ...sample, result: { fee: 0.1 } })).toThrow(/integers only/);
  });
});

describe("memory journal chain", () => {
  it("numbers records as it appends them and seals them before any read: seq 1..n, each linked to the one before; verify is whole", async () => {
    const j = journalOf(5);
    const all = await j.readSealed(0, 100);
    expect(all.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(all[0]!.prevHash).toBe(GENESIS_HASH);
    for (let i = 1; i < all.length; i++) expect(all[i]!.prevHash).toBe(all[i - 1]!.hash);
    expect(await verifyChain(j, 0, 0)).toEqual({ whole: true, checked: 5, firstSeq: 1, lastSeq: 5, headHash: all[4]!.hash, unsealed: 0 });
    expect(await verifyChain(j, 2, 4)).toMatchObject({ whole: true, checked: 3, firstSeq: 2, lastSeq: 4 });
    expect(await verifyChain(new MemoryAuditJournal(), 0, 0)).toEqual({ whole: true, checked: 0, firstSeq: 0, lastSeq: 0, headHash: GENESIS_HASH, unsealed: 0 });
  });

  it("names the first broken record: an edited amount, a swap, a forged insertion, a range past the head", async () => {
    const edited = journalOf(5);
    edited.tamperForTest(3, (r) => ({ ...r, request: { ...r.request, amount: "999" } }));
    expect(await verifyChain(edited, 0, 0)).toMatchObject({ whole: false, brokenSeq: 3, checked: 2 });

    const swapped = journalOf(5);
    const [r2, r3] = [(await swapped.readOne(2))!, (await swapped.readOne(3))!];
    swapped.tamperForTest(2, () => ({ ...r3, seq: 2 }));
    swapped.tamperForTest(3, () => ({ ...r2, seq: 3 }));
    expect(await verifyChain(swapped, 0, 0)).toMatchObject({ whole: false, brokenSeq: 2 });

    // A record re-hashed by the attacker after an edit still breaks its successor's link.
    const rehashed = journalOf(5);
    rehashed.tamperForTest(4, (r) => {
      const changed = { ...r, actor: "mallory" };
      return { ...changed, hash: recordHash(changed) };
    });
    expect(await verifyChain(rehashed, 0, 0)).toMatchObject({ whole: false, brokenSeq: 5, reason: expect.stringMatching(/does not link/) });

    expect(await verifyChain(journalOf(3), 1, 5)).toMatchObject({ whole: false, brokenSeq: 4, reason: expect.stringMatching(/missing/) });
  });
});
