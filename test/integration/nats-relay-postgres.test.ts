/**
 * The JetStream relay on PostgreSQL, through real servers (two replicas on
 * one database, each started with MINT_NATS_URL) and the real NATS server:
 * one replica publishes, the other stands by; when the publishing replica
 * shuts down mid-stream the other takes over, and the stream holds every
 * event of the feed exactly once, in feed order. The relay's series are on
 * /metrics.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from "../../gen/grpc/health/v1/health.js";
import { Blockchain } from "../../gen/usdc/mint/v1/mint.js";
import { NATS_RELAY_HEALTH_NAME } from "../../src/app.js";
import { createTestDatabase, testPool, type TestDatabase } from "../support/pg-test-database.js";
import { JetStreamReader, NATS_URL, testStream, type TestStream } from "../support/nats-stream.js";
import { PgRelay } from "../support/pg-relay.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "./helpers.js";

let db: TestDatabase;
let reader: JetStreamReader;
let stream: TestStream;
let n = 0;
const key = (): string => `pgnats-${process.pid}-${++n}`;

beforeAll(async () => {
  db = await createTestDatabase();
  reader = await JetStreamReader.open();
  stream = testStream();
});

afterAll(async () => {
  await reader?.drop(stream.name);
  await reader?.close();
  await db?.drop();
});

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    MINT_STORE: db.url,
    MINT_WATCH_POLL_INTERVAL: "20ms",
    MINT_RATE_LIMIT: "100000",
    MINT_PG_POOL_SIZE: "4",
    MINT_NATS_URL: NATS_URL,
    MINT_NATS_STREAM: stream.name,
    MINT_NATS_SUBJECT_PREFIX: stream.prefix,
    MINT_NATS_PUBLISH_WINDOW: "50",
    MINT_METRICS_LISTEN: "127.0.0.1:0",
    ...extra,
  };
}

async function traffic(s: TestServer, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await s.call("mintUsdc", { accountId: `pn-${i % 7}`, amount: "3", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key() });
    if (i % 3 === 0) await s.call("transfer", { fromAccountId: `pn-${i % 7}`, toAccountId: `pn-${(i + 1) % 7}`, amount: "1", idempotencyKey: key() });
  }
}

async function health(s: TestServer, service: string): Promise<Serving> {
  const client = new HealthClient(s.address, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) => client.check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))));
  } finally {
    client.close();
  }
}

/** The feed's event ids in feed order, read from the table the triggers write. */
async function feedIds(): Promise<string[]> {
  const pool = testPool({ connectionString: db.url, max: 1 });
  try {
    const res = await pool.query<{ id: string }>("SELECT 'evt_' || xid || '_' || ord AS id FROM ledger_events ORDER BY xid, ord");
    return res.rows.map((r) => r.id);
  } finally {
    await pool.end();
  }
}

describe("NATS JetStream relay (PostgreSQL, two replicas)", () => {
  it("one replica publishes; the other takes over when it shuts down mid-stream; every event once, in order", async () => {
    const a = await startTestServer(env());
    const b = await startTestServer(env());
    let stopped: TestServer | null = null;
    try {
      await traffic(a, 30);
      await traffic(b, 30);
      const relays = () => [a.app.natsRelay, b.app.natsRelay].map((r) => r?.status());
      await waitFor(async () => (await reader.lastSeq(stream.name)) === (await feedIds()).length, "the stream to hold the feed", 30_000);
      expect(relays().filter((s) => s?.active).length).toBe(1);
      expect(relays().filter((s) => s?.state === "standby").length).toBe(1);
      const active = a.app.natsRelay?.status().active === true ? a : b;
      const standby = active === a ? b : a;

      // The relay's series, on the publishing replica.
      const page = await (await fetch(`http://${active.app.metricsAddress}/metrics`)).text();
      expect(page).toMatch(/^usdc_mint_nats_relay_active 1$/m);
      expect(page).toMatch(/^usdc_mint_nats_relay_published_total [1-9][0-9]*$/m);
      expect(page).toMatch(/^usdc_mint_nats_relay_lag_events 0$/m);
      expect(await (await fetch(`http://${standby.app.metricsAddress}/metrics`)).text()).toMatch(/^usdc_mint_nats_relay_active 0$/m);

      // Traffic keeps coming while the publishing replica goes away.
      const during = traffic(standby, 40);
      await active.stop();
      stopped = active;
      await during;
      await traffic(standby, 10);
      await waitFor(() => standby.app.natsRelay?.status().active === true, "the standby taking over", 30_000);
      await waitFor(async () => (await reader.lastSeq(stream.name)) === (await feedIds()).length, "the stream to hold the whole feed", 30_000);
      const stored = await reader.all(stream.name);
      const ids = await feedIds();
      expect(stored.map((m) => m.msgId)).toEqual(ids);
      expect(new Set(stored.map((m) => m.msgId)).size).toBe(ids.length);
      expect(stored.some((m) => m.subject === `${stream.prefix}.transfer` && m.headers["Mint-Accounts"]?.includes(","))).toBe(true);
    } finally {
      if (stopped !== a) await a.stop();
      if (stopped !== b) await b.stop();
    }
  });

  it("NATS cut off (a TCP relay the test stops) and the replica restarted: calls go on, the relay catches up by itself, every event once, in order", async () => {
    const proxy = new PgRelay(NATS_URL);
    await proxy.start(0);
    const viaProxy = env({ MINT_NATS_URL: `nats://127.0.0.1:${proxy.port}`, MINT_NATS_PUBLISH_TIMEOUT: "500ms" });
    let s = await startTestServer(viaProxy);
    try {
      await traffic(s, 10);
      await waitFor(async () => (await reader.lastSeq(stream.name)) === (await feedIds()).length, "the stream to hold the feed", 30_000);
      await proxy.stop();
      // Money keeps moving while NATS is unreachable.
      await traffic(s, 20);
      await waitFor(() => s.app.natsRelay?.status().state === "unavailable", "the relay noticing the outage", 30_000);
      expect(await reader.lastSeq(stream.name)).toBeLessThan((await feedIds()).length);
      const page = await (await fetch(`http://${s.app.metricsAddress}/metrics`)).text();
      expect(page).toMatch(/^usdc_mint_nats_relay_up 0$/m);
      // The relay's own health name says so; the service keeps serving.
      await waitFor(async () => (await health(s, NATS_RELAY_HEALTH_NAME)) === Serving.NOT_SERVING, "the relay's health NOT_SERVING", 30_000);
      expect(await health(s, "")).toBe(Serving.SERVING);
      expect(await health(s, "usdc.mint.v1.MintService")).toBe(Serving.SERVING);
      // The replica restarts during the outage; NATS comes back after.
      await s.stop();
      s = await startTestServer(viaProxy);
      await traffic(s, 10);
      await proxy.start(proxy.port);
      await waitFor(async () => (await reader.lastSeq(stream.name)) === (await feedIds()).length, "the stream to catch up", 60_000);
      const stored = await reader.all(stream.name);
      expect(stored.map((m) => m.msgId)).toEqual(await feedIds());
      await waitFor(async () => (await health(s, NATS_RELAY_HEALTH_NAME)) === Serving.SERVING, "the relay's health SERVING again", 30_000);
    } finally {
      await s.stop();
      await proxy.stop();
    }
  });
});
