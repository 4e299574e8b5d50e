/**
 * `mintctl watch` against the real service: one line per event (one JSON
 * object per line with --json), --from a printed cursor, --account, --kind,
 * --max; usage errors exit 2, a refused cursor 10 + its gRPC code.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { mintctl } from "../support/stub-mint-server.js";

let s: TestServer;
let A: string[];

beforeAll(async () => {
  s = await startTestServer({ MINT_RATE_LIMIT: "1000000" });
  A = ["--address", s.address];
});
afterAll(async () => {
  await s.stop();
});

describe("mintctl watch", () => {
  it("prints each event once, as a line or a JSON line, from a cursor, filtered", async () => {
    expect((await mintctl([...A, "mint", "cli-w", "5"])).code).toBe(0);
    expect((await mintctl([...A, "transfer", "cli-w", "cli-v", "2"])).code).toBe(0);
    const j = await mintctl([...A, "--json", "watch", "--from", "oldest", "--account", "cli-w", "--max", "3"]);
    expect(j.code).toBe(0);
    const lines = j.out.trimEnd().split("\n").map((l) => JSON.parse(l) as { kind: string; cursor: string; mint?: { amount: string }; transfer?: { toAccountId: string } });
    expect(lines.map((l) => l.kind)).toEqual(["MINT_CREATED", "MINT_COMPLETED", "TRANSFER"]);
    expect(lines[0]?.mint?.amount).toBe("5");
    expect(lines[2]?.transfer?.toAccountId).toBe("cli-v");

    const h = await mintctl([...A, "watch", "--from", lines[0]?.cursor as string, "--kind", "transfer,mint_completed", "--max", "2"]);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^\S+Z {2}MINT_COMPLETED +cli-w +mint_\S+ 5 USDC ETHEREUM COMPLETED {2}cursor=\S+\n\S+Z {2}TRANSFER +cli-w,cli-v +xfr_\S+ 2 USDC cli-w -> cli-v {2}cursor=\S+\n$/);
  });

  it("usage errors exit 2; a cursor the service never gave out exits 13 (INVALID_ARGUMENT)", async () => {
    expect((await mintctl([...A, "watch", "--kind", "MINTED"])).code).toBe(2);
    expect((await mintctl([...A, "watch", "--max", "0"])).code).toBe(2);
    const bad = await mintctl([...A, "watch", "--from", "nope"]);
    expect(bad.code).toBe(13);
    expect(bad.err).toContain("INVALID_CURSOR");
  });
});
