/**
 * The local settlement recipe (`npm run settlement:local`) as a new user runs
 * it: `--help` prints the flags and starts nothing; a missing prerequisite is
 * named before anything starts; a Ctrl-C during start-up, or a second one,
 * leaves no temporary folder (with its PIN file) and no process behind; a full
 * run prints the lines scripts rely on plus a ready line for a second replica
 * (which starts beside it) and the master minter's key. Each run gets its own
 * TMPDIR and database; Ctrl-C is SIGINT to the recipe's process group, as a
 * terminal sends it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../support/evm/evm-node.js";
import { PG_SERVER_URL } from "../support/pg-test-database.js";
import { listening, ROOT, spawnService, killIfRunning } from "../support/service-process.js";
import { waitFor } from "./helpers.js";

const dirs: string[] = [];
const databases: string[] = [];
const started: Recipe[] = [];

afterAll(async () => {
  for (const r of started) if (r.groupAlive()) process.kill(-(r.child.pid as number), "SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  const admin = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres` });
  admin.on("error", () => undefined);
  await admin.connect();
  try {
    for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
});

interface Recipe {
  readonly child: ChildProcess;
  readonly tmp: string;
  readonly db: string;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGINT to the whole process group, as Ctrl-C in a terminal. */
  ctrlC(): void;
  groupAlive(): boolean;
}

function recipe(args: string[], env: Record<string, string> = {}, db = `mint_settlement_local_t${randomBytes(4).toString("hex")}`): Recipe {
  const tmp = mkdtempSync(path.join(tmpdir(), "mint-recipe-test-"));
  dirs.push(tmp);
  databases.push(db);
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MINT_") && k !== "SOFTHSM2_CONF" && v !== undefined) clean[k] = v;
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/settlement-local.ts", "--db", db, ...args], {
    cwd: ROOT,
    env: { ...clean, TMPDIR: tmp, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  child.stderr?.on("data", (d: Buffer) => (err += d.toString("utf8")));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => setImmediate(() => resolve({ code, signal }))));
  const pgid = child.pid as number;
  const r: Recipe = {
    child,
    tmp,
    db,
    stdout: () => out,
    stderr: () => err,
    exited,
    ctrlC: () => process.kill(-pgid, "SIGINT"),
    groupAlive: () => {
      try {
        process.kill(-pgid, 0);
        return true;
      } catch {
        return false;
      }
    },
  };
  started.push(r);
  return r;
}

/** Waits for the recipe to exit and its process group to empty; then what is left in its TMPDIR. */
async function finished(r: Recipe): Promise<{ code: number | null; signal: NodeJS.Signals | null; left: string[] }> {
  try {
    const how = await r.exited;
    await waitFor(() => !r.groupAlive(), "every process of the recipe to end", 15_000);
    // tsx keeps its compile cache in TMPDIR too (tsx-<uid>): not the recipe's.
    return { ...how, left: readdirSync(r.tmp).filter((f) => !f.startsWith("tsx-")) };
  } finally {
    if (r.groupAlive()) process.kill(-(r.child.pid as number), "SIGKILL");
  }
}

async function databaseExists(name: string): Promise<boolean> {
  const admin = new pg.Client({ connectionString: `${PG_SERVER_URL}/postgres` });
  await admin.connect();
  try {
    return (await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 1;
  } finally {
    await admin.end();
  }
}

describe("npm run settlement:local", () => {
  it("--help prints the flags, says the database is dropped and re-created, and starts nothing", async () => {
    const r = recipe(["--help"]);
    const done = await finished(r);
    expect([done.code, done.signal]).toEqual([0, null]);
    expect(r.stdout()).toMatch(/^Usage: npm run settlement:local -- \[--mints N\] \[--db NAME\] \[--exit\]/);
    expect(r.stdout()).toContain("DROPPED AND RE-CREATED on every run");
    expect(r.stdout()).toContain("Needs softhsm2");
    expect(r.stdout()).not.toContain("EDR node        ");
    expect(done.left).toEqual([]);
    expect(await databaseExists(r.db)).toBe(false);
  }, 60_000);

  it("PostgreSQL unreachable: named with what to do before anything starts; nothing left behind", async () => {
    const r = recipe(["--exit"], { MINT_TEST_PG_URL: `postgres://postgres@127.0.0.1:${await freePort()}` });
    const done = await finished(r);
    expect(done.code).toBe(1);
    expect(r.stderr()).toMatch(/settlement:local failed: the recipe needs:\n {2}- PostgreSQL is not reachable at postgres:\/\/postgres@127\.0\.0\.1:\d+ \(.*\): start it, or set MINT_TEST_PG_URL/);
    expect(r.stdout()).not.toContain("EDR node        ");
    expect(done.left).toEqual([]);
  }, 60_000);

  it("Ctrl-C during start-up (the temporary folder made, the node and token starting): the folder and every process are gone", async () => {
    const r = recipe(["--mints", "0"]);
    await waitFor(() => readdirSync(r.tmp).some((f) => f.startsWith("mint-settlement-local-")), "the recipe's temporary folder", 60_000);
    r.ctrlC();
    const done = await finished(r);
    expect(r.stdout()).not.toContain("EDR node        ");
    expect(done.left).toEqual([]);
  }, 90_000);

  it("a full run prints its lines and a second replica's, which starts beside it; a second Ctrl-C still leaves nothing behind", async () => {
    const r = recipe(["--mints", "1"]);
    try {
      await waitFor(() => r.stdout().includes("running; Ctrl-C stops"), "the recipe to be running", 120_000);
      const out = r.stdout();
      // The lines scripts and docs rely on, unchanged.
      for (const start of ["EDR node        http://127.0.0.1:", "token           0x", "treasury        0x", "SoftHSM2 token  ", `database        ${PG_SERVER_URL}/${r.db}`, "service         127.0.0.1:", "  export MINT_LISTEN=", "all 1 CONFIRMED: "]) {
        expect(out.split("\n").some((l) => l.startsWith(start)), start).toBe(true);
      }
      expect(out).toMatch(/^master minter {3}0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 key 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 /m);
      expect(out).toContain(`note            the database ${r.db} is dropped and re-created on every run`);
      const second = /^second replica {2}MINT_LISTEN=(127\.0\.0\.1:\d+) npm start /m.exec(out)?.[1];
      expect(second).toBeDefined();
      // A second run on the same database is refused while this one uses it.
      const again = recipe(["--exit"], {}, r.db);
      const refused = await finished(again);
      expect(refused.code).toBe(1);
      expect(again.stderr()).toMatch(new RegExp(`the database ${r.db} is in use by \\d+ session\\(s\\) \\(another settlement:local run\\?\\)`));
      expect(refused.left).toEqual([]);
      const env: Record<string, string> = {};
      for (const m of out.matchAll(/^ {2}export (\w+)=(.*)$/gm)) env[m[1] as string] = m[2] as string;
      const replica = spawnService({ ...env, MINT_LISTEN: second as string });
      try {
        expect(await listening(replica, 60_000)).toBe(second);
      } finally {
        killIfRunning(replica);
      }
      r.ctrlC();
      r.ctrlC();
    } finally {
      if (r.groupAlive()) r.ctrlC();
    }
    const done = await finished(r);
    expect(done.left).toEqual([]);
  }, 240_000);
});
