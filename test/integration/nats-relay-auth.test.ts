/**
 * The JetStream relay against a NATS server that needs credentials (a
 * private nats-server -js with a user and password, started by this test on
 * a random port): the right password file publishes; a wrong one publishes
 * nothing, leaves the relay's health NOT_SERVING, and the password appears
 * in no log line.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../src/domain/clock.js";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { testStream } from "../support/nats-stream.js";
import { Blockchain } from "../../gen/usdc/mint/v1/mint.js";
import { startTestServer } from "../support/test-server.js";
import { memoryLogger, waitFor } from "./helpers.js";

const PASSWORD = "rel4y-Secret-pw";
let dir: string;
let server: ChildProcess;
let url: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "mint-nats-auth-"));
  server = spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", "-1", "-sd", path.join(dir, "js"), "--user", "relay", "--pass", PASSWORD], { stdio: ["ignore", "pipe", "pipe"] });
  url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const onData = (b: Buffer): void => {
      out += b.toString("utf8");
      const m = /Listening for client connections on 127\.0\.0\.1:([0-9]+)/.exec(out);
      if (m !== null) resolve(`nats://127.0.0.1:${m[1]}`);
    };
    server.stdout?.on("data", onData);
    server.stderr?.on("data", onData);
    server.once("exit", (code) => reject(new Error(`nats-server exited ${code}: ${out}`)));
  });
}, 30_000);

afterAll(async () => {
  server?.kill("SIGTERM");
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

async function lastSeq(stream: string): Promise<number> {
  const nc = await connect({ servers: url, user: "relay", pass: PASSWORD });
  try {
    return (await (await jetstreamManager(nc)).streams.info(stream)).state.last_seq;
  } catch {
    return 0;
  } finally {
    await nc.close();
  }
}

describe("NATS JetStream relay with credentials", () => {
  it("publishes with MINT_NATS_USER and the right MINT_NATS_PASSWORD_FILE", async () => {
    const s = testStream();
    const file = path.join(dir, "good.pass");
    writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    const t = await startTestServer({ MINT_NATS_URL: url, MINT_NATS_USER: "relay", MINT_NATS_PASSWORD_FILE: file, MINT_NATS_STREAM: s.name, MINT_NATS_SUBJECT_PREFIX: s.prefix });
    try {
      await t.call("mintUsdc", { accountId: "auth-alice", amount: "5", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: `nats-auth-${process.pid}` });
      // MINT_CREATED and MINT_COMPLETED.
      await waitFor(async () => (await lastSeq(s.name)) === 2, "the mint's events in the stream", 30_000);
      expect(t.app.natsRelay?.status().published).toBe(2);
    } finally {
      await t.stop();
    }
  });

  it("a wrong password publishes nothing, says so in health and logs, and never logs the password", async () => {
    const s = testStream();
    const file = path.join(dir, "bad.pass");
    writeFileSync(file, "not-the-password\n", { mode: 0o600 });
    const { logger, lines } = memoryLogger();
    const config = loadConfig([], { MINT_LISTEN: "127.0.0.1:0", MINT_NATS_URL: url, MINT_NATS_USER: "relay", MINT_NATS_PASSWORD_FILE: file, MINT_NATS_STREAM: s.name, MINT_NATS_SUBJECT_PREFIX: s.prefix });
    const app = await startApp(config, logger, systemClock);
    try {
      await waitFor(() => app.natsRelay?.status().state === "unavailable", "the relay refused", 30_000);
      await waitFor(() => lines().some((l) => l.includes("NATS relay: publishing paused")), "the log line", 10_000);
      const line = lines().find((l) => l.includes("NATS relay: publishing paused")) as string;
      expect(line.toLowerCase()).toMatch(/auth/);
      expect(lines().join("\n")).not.toContain("not-the-password");
      expect(lines().join("\n")).not.toContain(PASSWORD);
      expect(await lastSeq(s.name)).toBe(0);
    } finally {
      await app.shutdown();
    }
  });
});
