/**
 * mintctl against the real server (in-process on 127.0.0.1:0): every
 * command's table and `--json` shape, exit codes (0, 2 usage, 3 bulk
 * failures, 10 + gRPC code), environment fallbacks, the token, and the bulk
 * mint from CSV (summary, failures file, a re-run that replays). A few runs go
 * through the real executable to check the process's own exit code.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryExactlyOnceStore } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { parseCsv } from "../../packages/mintctl/src/csv.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { ROOT } from "../support/service-process.js";
import { mintctl, startStubMintServer, type CliRun } from "../support/stub-mint-server.js";

type Ran = CliRun;

/** The output of a --json run, parsed. */
function parsed<T = Record<string, unknown>>(r: Ran): T {
  return JSON.parse(r.out) as T;
}

let s: TestServer;
let A: string[];
const dir = mkdtempSync(join(tmpdir(), "mintctl-"));
let n = 0;
const unique = (p: string): string => `${p}-${++n}`;

beforeAll(async () => {
  s = await startTestServer({ MINT_RATE_LIMIT: "1000000" });
  A = ["--address", s.address];
});
afterAll(async () => {
  await s.stop();
});

describe("single calls", () => {
  it("mint: a table by default; --json {mint, replayed, idempotencyKey}; the same key replays", async () => {
    const acct = unique("alice");
    const t = await mintctl([...A, "mint", acct, "100.50"]);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(new RegExp(`^FIELD +VALUE\\nmint_id +mint_\\w+\\naccount_id +${acct}\\namount +100\\.5\\nblockchain +ETHEREUM\\nstatus +COMPLETED\\n`));
    expect(t.out).toMatch(/\nreplayed +false\n$/);

    const j = await mintctl([...A, "--json", "mint", acct, "7", "--chain", "solana", "--idempotency-key", "order-1"]);
    expect(j.code).toBe(0);
    const body = parsed<{ mint: Record<string, unknown>; replayed: boolean; idempotencyKey: string }>(j);
    expect(body).toEqual({
      mint: { mintId: expect.stringMatching(/^mint_/), accountId: acct, amount: "7", blockchain: "SOLANA", status: "COMPLETED", idempotencyKey: "order-1", createTime: expect.any(String), reverseReason: "", requester: "", approvals: [], rejectReason: "", rejectedBy: "",
        // SOLANA settles nothing here: NOT_REQUIRED (the credit was available at once).
        settlement: { state: "NOT_REQUIRED", txHashes: [], minedTxHash: "", blockNumber: 0, confirmations: 0, attempts: 0, lastError: "", waitReason: "" } },
      replayed: false,
      idempotencyKey: "order-1",
    });
    const again = parsed<{ replayed: boolean; mint: { mintId: string } }>(await mintctl([...A, "--json", "mint", acct, "7", "--chain", "SOLANA", "--idempotency-key", "order-1"]));
    expect(again.replayed).toBe(true);
    expect(again.mint.mintId).toBe(body.mint.mintId);
  });

  it("mint errors: 13 INVALID_ARGUMENT (human on stderr, --json on stdout), 16 ALREADY_EXISTS with differing fields", async () => {
    const bad = await mintctl([...A, "mint", "a", "1.0000001"]);
    expect(bad.code).toBe(13);
    expect(bad.out).toBe("");
    expect(bad.err).toContain("mintctl: INVALID_ARGUMENT INVALID_AMOUNT:");
    expect(bad.err).toContain("field amount");
    const badJson = await mintctl([...A, "--json", "mint", "a", "1", "--chain", "DOGE"]);
    expect(badJson.code).toBe(13);
    expect(parsed(badJson)).toEqual({
      error: { code: "INVALID_ARGUMENT", reason: "INVALID_BLOCKCHAIN", message: expect.any(String), fieldViolations: [{ field: "blockchain", description: expect.any(String) }], metadata: { field: "blockchain", request_id: expect.any(String) }, requestId: expect.any(String), attempts: 1 },
    });
    const key = unique("k");
    await mintctl([...A, "mint", unique("x"), "1", "--idempotency-key", key]);
    const reused = await mintctl([...A, "--json", "mint", unique("y"), "1", "--idempotency-key", key]);
    expect(reused.code).toBe(16);
    expect(parsed<{ error: { reason: string; differingFields: string[] } }>(reused).error).toMatchObject({ reason: "IDEMPOTENCY_KEY_REUSED", differingFields: ["account_id"] });
  });

  it("transfer: --json {transfer, replayed, idempotencyKey}; 19 FAILED_PRECONDITION on insufficient funds", async () => {
    const from = unique("from");
    const to = unique("to");
    await mintctl([...A, "mint", from, "10"]);
    const r = await mintctl([...A, "--json", "transfer", from, to, "2.5", "--idempotency-key", "pay-1"]);
    expect(r.code).toBe(0);
    expect(parsed(r)).toEqual({
      transfer: { transferId: expect.stringMatching(/^xfr_/), fromAccountId: from, toAccountId: to, amount: "2.5", idempotencyKey: "pay-1", createTime: expect.any(String) },
      replayed: false,
      idempotencyKey: "pay-1",
    });
    const table = await mintctl([...A, "transfer", from, to, "2.5", "--idempotency-key", "pay-1"]);
    expect(table.out).toMatch(/\nreplayed +true\n$/);
    const poor = await mintctl([...A, "transfer", from, to, "100"]);
    expect(poor.code).toBe(19);
    expect(poor.err).toContain("FAILED_PRECONDITION INSUFFICIENT_FUNDS");
  });

  it("balance: table and --json {accountId, balance}", async () => {
    const acct = unique("bal");
    await mintctl([...A, "mint", acct, "0.000001"]);
    const t = await mintctl([...A, "balance", acct]);
    expect(t).toEqual({ code: 0, out: `FIELD            VALUE\naccount_id       ${acct}\nbalance          0.000001\npending_balance  0\nfrozen           false\n`, err: "" });
    expect(parsed(await mintctl([...A, "--json", "balance", acct]))).toEqual({ accountId: acct, balance: "0.000001", pendingBalance: "0", frozen: false, freezeReason: "" });
    expect((await mintctl([...A, "balance", "a b"])).code).toBe(13);
  });

  it("get: --json {mint}; 15 NOT_FOUND; 13 for a malformed id", async () => {
    const acct = unique("get");
    const m = parsed<{ mint: { mintId: string } }>(await mintctl([...A, "--json", "mint", acct, "3"]));
    const g = await mintctl([...A, "--json", "get", m.mint.mintId]);
    expect(g.code).toBe(0);
    expect(parsed(g)).toEqual({ mint: expect.objectContaining({ mintId: m.mint.mintId, accountId: acct, amount: "3", status: "COMPLETED" }) });
    const missing = await mintctl([...A, "get", "mint_0000000000AAAAAAAAAAAAAAAA"]);
    expect(missing.code).toBe(15);
    expect(missing.err).toContain("NOT_FOUND MINT_NOT_FOUND");
    expect((await mintctl([...A, "get", "nope!"])).code).toBe(13);
  });

  it("list pages through every mint: 25 mints with --page-size 10", async () => {
    const acct = unique("list");
    for (let i = 0; i < 25; i++) await mintctl([...A, "mint", acct, `${i + 1}`]);
    const j = parsed<{ mints: { accountId: string; amount: string }[]; count: number; truncated: boolean }>(await mintctl([...A, "--json", "list", "--account", acct, "--page-size", "10"]));
    expect([j.count, j.truncated]).toEqual([25, false]);
    expect(j.mints.map((m) => Number(m.amount)).sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    const t = await mintctl([...A, "list", "--account", acct, "--page-size", "10"]);
    const lines = t.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^MINT_ID +ACCOUNT_ID +AMOUNT +BLOCKCHAIN +STATUS +CREATE_TIME$/);
    expect(lines).toHaveLength(27);
    expect(lines.at(-1)).toBe("25 mints");
    // Aligned: every row's ACCOUNT_ID column starts where the header's does.
    const col = (lines[0] as string).indexOf("ACCOUNT_ID");
    for (const l of lines.slice(1, -1)) expect(l.slice(col, col + acct.length)).toBe(acct);
    expect((await mintctl([...A, "list", "--page-size", "0"])).code).toBe(2);
    expect((await mintctl([...A, "list", "--max", "x"])).code).toBe(2);
    const capped = await mintctl([...A, "list", "--account", acct, "--page-size", "10", "--max", "12"]);
    expect(capped.out.trimEnd().split("\n").at(-1)).toBe("12 mints (stopped at --max 12; more remain)");
    expect(parsed(await mintctl([...A, "--json", "list", "--account", acct, "--max", "25"]))).toMatchObject({ count: 25, truncated: false });
  });

  it("reconcile: --json {mint} REVERSED with the reason; again is 19 MINT_ALREADY_REVERSED", async () => {
    const acct = unique("rec");
    const m = parsed<{ mint: { mintId: string } }>(await mintctl([...A, "--json", "mint", acct, "4"]));
    const r = await mintctl([...A, "--json", "reconcile", m.mint.mintId, "--reason", "chain tx failed"]);
    expect(r.code).toBe(0);
    expect(parsed(r)).toEqual({ mint: expect.objectContaining({ mintId: m.mint.mintId, status: "REVERSED", reverseReason: "chain tx failed", reverseTime: expect.any(String) }) });
    expect(parsed(await mintctl([...A, "--json", "balance", acct]))).toEqual({ accountId: acct, balance: "0", pendingBalance: "0", frozen: false, freezeReason: "" });
    const again = await mintctl([...A, "reconcile", m.mint.mintId]);
    expect(again.code).toBe(19);
    expect(again.err).toContain("MINT_ALREADY_REVERSED");
  });
});

describe("supply, redeem, freeze, unfreeze", () => {
  it("supply shows the cap, --set-reserve sets it; redeem debits and replays; freeze refuses (exit 19 FAILED_PRECONDITION); unfreeze lifts it", async () => {
    const before = await mintctl([...A, "supply"]);
    expect(before.code).toBe(0);
    expect(before.out).toMatch(/\nreserve +\(not set: supply is not capped\)\n/);
    const acct = unique("redeemer");
    await mintctl([...A, "mint", acct, "10"]);
    const set = parsed<{ supply: string; reserve: string; headroom: string; attestationRef: string }>(
      await mintctl([...A, "--json", "supply", "--set-reserve", "1000000000", "--attestation-ref", "audit-9"]),
    );
    expect(set).toMatchObject({ reserve: "1000000000", attestationRef: "audit-9" });
    expect(BigInt(set.headroom.split(".")[0] as string)).toBeLessThan(1000000000n);

    const r = parsed<{ redemption: { accountId: string; amount: string; blockchain: string }; replayed: boolean; idempotencyKey: string }>(
      await mintctl([...A, "--json", "redeem", acct, "2.5", "--chain", "base", "--idempotency-key", "rd-1"]),
    );
    expect(r).toMatchObject({ redemption: { accountId: acct, amount: "2.5", blockchain: "BASE" }, replayed: false, idempotencyKey: "rd-1" });
    const again = await mintctl([...A, "redeem", acct, "2.5", "--chain", "base", "--idempotency-key", "rd-1"]);
    expect(again.out).toMatch(/\nreplayed +true\n$/);

    const f = await mintctl([...A, "freeze", acct, "--reason", "court order"]);
    expect(f).toMatchObject({ code: 0 });
    expect(f.out).toMatch(/\nfrozen +true\n$/);
    const refused = await mintctl([...A, "redeem", acct, "1"]);
    expect(refused.code).toBe(19);
    expect(refused.err).toMatch(/ACCOUNT_FROZEN/);
    expect(parsed(await mintctl([...A, "--json", "balance", acct]))).toEqual({ accountId: acct, balance: "7.5", pendingBalance: "0", frozen: true, freezeReason: "court order" });
    expect((await mintctl([...A, "unfreeze", acct])).out).toMatch(/\nfrozen +false\n$/);
    expect((await mintctl([...A, "redeem", acct, "1"])).code).toBe(0);
  });
});

describe("health", () => {
  it("0 when every address serves; 24 when one is NOT_SERVING or unreachable", async () => {
    const other = await startTestServer();
    try {
      const both = ["--address", `${s.address},${other.address}`];
      const ok = await mintctl([...both, "--json", "health"]);
      expect(ok.code).toBe(0);
      expect(parsed(ok)).toEqual({ serving: true, endpoints: [{ address: s.address, status: "SERVING" }, { address: other.address, status: "SERVING" }] });
      const t = await mintctl([...both, "health"]);
      expect(t.out).toBe(table2(["ADDRESS", "STATUS"], [[s.address, "SERVING"], [other.address, "SERVING"]]));
      other.app.server.health.setAll("NOT_SERVING");
      const down = await mintctl([...both, "--json", "health"]);
      expect(down.code).toBe(24);
      expect(parsed<{ endpoints: { status: string }[] }>(down).endpoints.map((e) => e.status)).toEqual(["SERVING", "NOT_SERVING"]);
    } finally {
      await other.stop();
    }
    const gone = await mintctl(["--address", "127.0.0.1:1", "--json", "health"]);
    expect(gone.code).toBe(24);
    expect(parsed(gone)).toEqual({ serving: false, endpoints: [{ address: "127.0.0.1:1", status: "GONE" }] });
  });
});

/** The expected two-column table: the first column padded to its widest cell, two spaces, the second. */
function table2(header: [string, string], rows: [string, string][]): string {
  const width = Math.max(...[header, ...rows].map((r) => r[0].length));
  return [header, ...rows].map(([a, b]) => `${a.padEnd(width)}  ${b}`).join("\n") + "\n";
}

describe("flags, environment and usage", () => {
  it("MINTCTL_ADDRESS is the fallback; --address wins over it", async () => {
    const acct = unique("env");
    expect((await mintctl(["mint", acct, "1"], { MINTCTL_ADDRESS: s.address })).code).toBe(0);
    const r = await mintctl(["--address", s.address, "--json", "balance", acct], { MINTCTL_ADDRESS: "127.0.0.1:1" });
    expect(parsed(r)).toEqual({ accountId: acct, balance: "1", pendingBalance: "0", frozen: false, freezeReason: "" });
    // Flags after the command work too.
    expect(parsed(await mintctl(["balance", acct, "--json", "--address", s.address]))).toEqual({ accountId: acct, balance: "1", pendingBalance: "0", frozen: false, freezeReason: "" });
  });

  it("an unreachable address is 24 UNAVAILABLE (after retrying within the budget)", async () => {
    const r = await mintctl(["--address", "127.0.0.1:1", "--deadline-ms", "200", "balance", "x"]);
    expect(r.code).toBe(24);
    expect(r.err).toContain("UNAVAILABLE");
  });

  it("--token (and MINTCTL_TOKEN) is sent as authorization: Bearer", async () => {
    const stub = await startStubMintServer();
    try {
      expect((await mintctl(["--address", stub.address, "--token", "flag-token", "balance", "a"])).code).toBe(0);
      expect((await mintctl(["--address", stub.address, "balance", "a"], { MINTCTL_TOKEN: "env-token" })).code).toBe(0);
      expect(stub.authorizations).toEqual(["Bearer flag-token", "Bearer env-token"]);
    } finally {
      stub.stop();
    }
  });

  it.each([
    [["bogus"], "unknown command"],
    [["balance"], "missing required argument"],
    [["mint", "alice"], "mint needs <account> and <amount>"],
    [["--deadline-ms", "0", "balance", "a"], "--deadline-ms"],
    [["--cert", "/etc/hostname", "balance", "a"], "--cert and --key go together"],
    [["--ca", "/nonexistent/ca.pem", "balance", "a"], "--ca /nonexistent/ca.pem: ENOENT"],
    [["mint", "--from-csv", "/nonexistent.csv"], "ENOENT"],
    [["mint", "a", "1", "--from-csv", "/nonexistent.csv"], "takes no account or amount"],
    [["mint", "--from-csv", "/nonexistent.csv", "--concurrency", "0"], "--concurrency"],
    [["mint", "--from-csv", "/nonexistent.csv", "--batch-size", "10001"], "--batch-size"],
    [["mint", "--from-csv", "/nonexistent.csv", "--batch-size", "1.5"], "--batch-size"],
    [["--address", "10.0.0.1:1", "--token", "t", "balance", "a"], "the token would travel in plaintext to 10.0.0.1:1; pass TLS credentials, or --allow-plaintext-token"],
  ])("usage error %j -> exit 2", async (args, message) => {
    const r = await mintctl([...A, ...args]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
  });

  it("--help lists the commands and the exit codes; exit 0", async () => {
    const r = await mintctl(["--help"]);
    expect(r.code).toBe(0);
    for (const c of ["mint", "transfer", "balance", "get", "list", "reconcile", "health", "Exit codes:", "24 UNAVAILABLE"]) expect(r.out).toContain(c);
  });

  it("a reader that has gone (`mintctl --help | head -0`) ends mintctl quietly with its own exit code, no EPIPE stack trace", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "--help"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy(); // the read end closes before mintctl writes a byte
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
    expect(err).not.toMatch(/EPIPE|Unhandled|at /);
    expect(code).toBe(0);
  });

  it("each command's help says what it does: list is oldest first, chain reconcile exits 5 when the chain differs (README)", async () => {
    const list = await mintctl(["list", "--help"]);
    expect(list.code).toBe(0);
    expect(list.out).toContain("oldest first");
    expect(list.out).not.toContain("newest first");
    const chain = await mintctl(["chain", "reconcile", "--help"]);
    expect(chain.code).toBe(0);
    expect(chain.out).toContain("exit 5 when anything differs");
  });
});

describe("mint --from-csv", () => {
  function csv(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  it("applies each row once, writes the failures, replays on a re-run", async () => {
    const acct = unique("bulk");
    const rows = ["account_id,amount,idempotency_key,blockchain"];
    for (let i = 0; i < 10; i++) rows.push(`${acct},${i + 1},${acct}-row-${i},${i % 2 === 0 ? "" : "base"}`);
    rows.push(`${acct},1.0000001,${acct}-bad-amount,`);
    rows.push(`"has,comma",1,${acct}-bad-account,`);
    const file = csv(`${acct}.csv`, rows.join("\r\n") + "\r\n");

    const first = await mintctl([...A, "--json", "mint", "--from-csv", file, "--concurrency", "4"]);
    expect(first.code).toBe(3);
    expect(parsed(first)).toEqual({ total: 12, applied: 10, replayed: 0, failed: 2, failuresFile: `${file}.failures.csv` });
    expect(parsed(await mintctl([...A, "--json", "balance", acct]))).toEqual({ accountId: acct, balance: "55", pendingBalance: "0", frozen: false, freezeReason: "" });
    // Plain progress lines off a terminal, ending with the last row.
    expect(first.err.trimEnd().split("\n").at(-1)).toBe("mint: 12/12 rows (applied 10, replayed 0, failed 2)");

    const failures = parseCsv(readFileSync(`${file}.failures.csv`, "utf8")).map((r) => r.fields);
    expect(failures).toEqual([
      ["line", "account_id", "amount", "blockchain", "idempotency_key", "code", "reason", "message"],
      ["12", acct, "1.0000001", "ETHEREUM", `${acct}-bad-amount`, "INVALID_ARGUMENT", "INVALID_AMOUNT", expect.any(String)],
      ["13", "has,comma", "1", "ETHEREUM", `${acct}-bad-account`, "INVALID_ARGUMENT", "INVALID_ACCOUNT_ID", expect.any(String)],
    ]);

    const again = await mintctl([...A, "mint", "--from-csv", file]);
    expect(again.code).toBe(3);
    expect(again.out).toMatch(/total +12\napplied +0\nreplayed +10\nfailed +2\nfailures_file +\S+failures\.csv\n/);
    expect(parsed(await mintctl([...A, "--json", "balance", acct]))).toEqual({ accountId: acct, balance: "55", pendingBalance: "0", frozen: false, freezeReason: "" });
    const mints = parsed<{ mints: { blockchain: string }[] }>(await mintctl([...A, "--json", "list", "--account", acct]));
    expect(mints.mints.map((m) => m.blockchain).sort()).toEqual([...Array(5).fill("BASE"), ...Array(5).fill("ETHEREUM")]);
  });

  it("a clean file exits 0 and writes no failures file; 15 rows to one account pass the 10/s limit by waiting", async () => {
    const limited = await startTestServer({ MINT_RATE_LIMIT: "10", MINT_RATE_WINDOW: "1s" });
    try {
      const file = csv("hot.csv", "account_id,amount,idempotency_key\n" + Array.from({ length: 15 }, (_, i) => `hot,1,hot-${i}`).join("\n") + "\n");
      const r = await mintctl(["--address", limited.address, "--json", "mint", "--from-csv", file]);
      expect(r.code).toBe(0);
      expect(parsed(r)).toEqual({ total: 15, applied: 15, replayed: 0, failed: 0, failuresFile: null });
      expect(existsSync(`${file}.failures.csv`)).toBe(false);
      expect(await limited.app.adapters.ledger.getBalance("hot")).toBe(15_000_000n);
    } finally {
      await limited.stop();
    }
  });

  it.each([
    ["empty.csv", "", "the file is empty"],
    ["noheader.csv", "alice,1,k\n", "the header lacks"],
    ["quote.csv", 'account_id,amount,idempotency_key\n"alice,1,k\n', "unterminated quoted field"],
  ])("%s -> exit 2 (%s), nothing minted", async (name, text, message) => {
    const r = await mintctl([...A, "mint", "--from-csv", csv(name, text)]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
    expect(await s.app.adapters.ledger.getBalance("alice")).toBe(0n);
  });
});

describe("the executable", () => {
  function exec(args: string[], env: Record<string, string>): Promise<Ran> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      child.on("exit", (code) => resolve({ code: code ?? -1, out, err }));
    });
  }

  it("exits with the mapped code and leaves no handle open", async () => {
    const acct = unique("exe");
    const ok = await exec(["--json", "mint", acct, "2"], { MINTCTL_ADDRESS: s.address });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ replayed: false, mint: { accountId: acct, amount: "2" } });
    const bad = await exec(["mint", acct, "-2"], { MINTCTL_ADDRESS: s.address });
    expect(bad.code).toBe(13);
    expect((await exec(["nope"], {})).code).toBe(2);
  });
});

describe("audit", () => {
  it("audit list: a table and --json, filtered by account and time; audit verify: exit 0 whole, 4 broken (names the seq); usage errors exit 2", async () => {
    const acct = unique("audited");
    const other = unique("audited-to");
    await mintctl([...A, "mint", acct, "3", "--idempotency-key", unique("ak")]);
    await mintctl([...A, "transfer", acct, other, "1", "--idempotency-key", unique("ak")]);
    const t = await mintctl([...A, "audit", "list", "--account", acct]);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/^SEQ +TIME +PRINCIPAL +ACTION +ACCOUNTS +REQUEST +RESULT\n/);
    expect(t.out).toMatch(new RegExp(`\\n\\d+ +\\S+ +local +MintUsdc +${acct} +\\{"account_id":"${acct}","amount":"3000000","blockchain":"ETHEREUM"\\}`));
    expect(t.out).toMatch(/\n2 records\n$/);
    const j = parsed<{ events: { action: string; accountIds: string[] }[]; count: number }>(await mintctl([...A, "--json", "audit", "list", "--account", other]));
    expect(j.events.map((e) => [e.action, e.accountIds])).toEqual([["Transfer", [acct, other]]]);
    expect(parsed<{ count: number }>(await mintctl([...A, "--json", "audit", "list", "--account", acct, "--until", "2000-01-01T00:00:00Z"])).count).toBe(0);

    const ok = await mintctl([...A, "--json", "audit", "verify"]);
    expect(ok.code).toBe(0);
    const whole = parsed<{ whole: boolean; checked: number; lastSeq: number }>(ok);
    expect(whole.whole).toBe(true);
    expect(whole.checked).toBe(whole.lastSeq);

    (s.app.adapters.store as MemoryExactlyOnceStore).audit.tamperForTest(2, (r) => ({ ...r, actor: "mallory" }));
    const broken = await mintctl([...A, "audit", "verify"]);
    expect(broken.code).toBe(4);
    expect(broken.out).toMatch(/\nwhole +NO\nbroken_seq +2\nreason +record 2 does not match its hash\n/);

    expect((await mintctl([...A, "audit", "list", "--since", "yesterday-ish"])).code).toBe(2);
    expect((await mintctl([...A, "audit", "verify", "--from", "-1"])).code).toBe(2);
  });
});

describe("approve, reject, allowance", () => {
  let big: TestServer;
  let B: string[];
  beforeAll(async () => {
    big = await startTestServer({ MINT_APPROVAL_THRESHOLD: "1000", MINT_ALLOWANCES: "true" });
    B = ["--address", big.address];
  });
  afterAll(async () => {
    await big.stop();
  });

  it("allowance sets and reads; a pending mint cannot be approved by its requester (17 PERMISSION_DENIED) and can be rejected", async () => {
    const set = await mintctl([...B, "allowance", "local", "5000"]);
    expect(set.code).toBe(0);
    expect(set.out).toMatch(/^FIELD +VALUE\nprincipal +local\nallowance +5000\n$/);
    const m = parsed<{ mint: { mintId: string; status: string; requester: string } }>(await mintctl([...B, "--json", "mint", "treasury", "1500", "--idempotency-key", "big-1"]));
    expect([m.mint.status, m.mint.requester]).toEqual(["PENDING_APPROVAL", "local"]);
    expect(parsed<{ allowance: string }>(await mintctl([...B, "--json", "allowance", "local"])).allowance).toBe("3500");

    const self = await mintctl([...B, "approve", m.mint.mintId]);
    expect(self.code).toBe(17);
    expect(self.err).toContain("APPROVER_IS_REQUESTER");

    const rejected = await mintctl([...B, "reject", m.mint.mintId, "--reason", "no wire"]);
    expect(rejected.code).toBe(0);
    expect(rejected.out).toMatch(/\nstatus +REJECTED\n/);
    expect(rejected.out).toMatch(/\nreject_reason +no wire\n/);
    expect(parsed<{ allowance: string }>(await mintctl([...B, "--json", "allowance", "local"])).allowance).toBe("5000");
    const again = await mintctl([...B, "approve", m.mint.mintId]);
    expect(again.code).toBe(19);
    expect(again.err).toContain("MINT_REJECTED");
    const bad = await mintctl([...B, "allowance", "local", "-1"]);
    expect(bad.code).toBe(13);
  });
});
