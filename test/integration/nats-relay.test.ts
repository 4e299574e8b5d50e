/**
 * The JetStream relay against the real NATS server (127.0.0.1:4222), over
 * the memory event feed: every event lands in the stream exactly once, in
 * feed order, on the subject of its kind with its accounts in headers;
 * across a relay killed mid-window and restarted (also past the duplicate
 * window), a publish lost in the middle of a pipelined window, a NATS outage
 * (a TCP relay the test cuts), and two relays on one stream (one publishes).
 */
import { AckPolicy, jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../src/domain/clock.js";
import { MemoryLedgerEventFeed } from "../../src/adapters/memory/memory-ledger-events.js";
import { JetStreamTarget, type RelayTarget } from "../../src/adapters/nats/jetstream-target.js";
import { NatsRelay } from "../../src/workers/nats-relay.js";
import { InProcessRelayLock } from "../../src/workers/nats-relay-lock.js";
import { JetStreamReader, NATS_URL, testStream, type StoredEvent, type TestStream } from "../support/nats-stream.js";
import { PgRelay } from "../support/pg-relay.js";
import { waitFor } from "./helpers.js";

let reader: JetStreamReader;
const streams: string[] = [];

beforeAll(async () => {
  reader = await JetStreamReader.open();
});

afterAll(async () => {
  for (const s of streams) await reader.drop(s);
  await reader.close();
});

function newStream(): TestStream {
  const s = testStream();
  streams.push(s.name);
  return s;
}

function target(s: TestStream, opts: { url?: string; duplicateWindowMs?: number; publishTimeoutMs?: number } = {}): JetStreamTarget {
  return new JetStreamTarget({
    url: opts.url ?? NATS_URL,
    credsFile: "",
    user: "",
    passwordFile: "",
    stream: s.name,
    subjectPrefix: s.prefix,
    maxAgeMs: 3_600_000,
    duplicateWindowMs: opts.duplicateWindowMs ?? 120_000,
    replicas: 1,
    publishTimeoutMs: opts.publishTimeoutMs ?? 2_000,
  });
}

function relay(feed: MemoryLedgerEventFeed, s: TestStream, t: RelayTarget, windowEvents = 200): NatsRelay {
  return new NatsRelay({ feed, target: t, lock: new InProcessRelayLock(s.name), clock: systemClock, pollIntervalMs: 50, windowEvents, maxBackoffMs: 200 });
}

const KINDS = ["MINT_CREATED", "TRANSFER", "ACCOUNT_FROZEN", "RESERVE_SET"] as const;

/** Appends `n` events of rotating kinds (a transfer touches two accounts, a reserve change none). */
function fill(feed: MemoryLedgerEventFeed, n: number): void {
  for (let i = 0; i < n; i++) {
    const kind = KINDS[feed.size % KINDS.length] as (typeof KINDS)[number];
    const accounts = kind === "TRANSFER" ? [`acct-${i}`, `acct.${i}:x@y`] : kind === "RESERVE_SET" ? [] : [`acct-${i}`];
    feed.append({ kind, timeMs: Date.now(), accounts, data: { n: String(i), amount: "1000000" } });
  }
}

/** The stream holds exactly the feed's events, once each, in feed order. */
async function expectExactlyTheFeed(s: TestStream, feed: MemoryLedgerEventFeed): Promise<StoredEvent[]> {
  const stored = await reader.all(s.name);
  const expected = (await feed.read({ a: 0n, b: 0n }, 1_000_000)).events;
  expect(stored.map((m) => m.msgId)).toEqual(expected.map((e) => e.id));
  expect(new Set(stored.map((m) => m.msgId)).size).toBe(stored.length);
  return stored;
}

describe("NATS JetStream relay (memory feed)", () => {
  it("publishes a backlog and then live events once each, in order: subject per kind, accounts and position in headers, the event as JSON", async () => {
    const s = newStream();
    const feed = new MemoryLedgerEventFeed(systemClock);
    fill(feed, 3_000);
    const r = relay(feed, s, target(s), 500);
    r.start();
    try {
      await waitFor(async () => (await reader.lastSeq(s.name)) === 3_000, "the backlog in the stream", 30_000);
      fill(feed, 500);
      await waitFor(async () => (await reader.lastSeq(s.name)) === 3_500, "the live events in the stream", 30_000);
      await waitFor(() => r.status().state === "caught_up", "caught up");
      const stored = await expectExactlyTheFeed(s, feed);
      const transfer = stored.find((m) => m.body.kind === "TRANSFER") as StoredEvent;
      expect(transfer.subject).toBe(`${s.prefix}.transfer`);
      expect(transfer.headers["Mint-Accounts"]).toBe(transfer.body.accounts.join(","));
      expect(transfer.body.accounts[1]).toMatch(/^acct\.[0-9]+:x@y$/);
      expect(transfer.headers["Mint-Event-Kind"]).toBe("TRANSFER");
      expect(transfer.headers["Mint-Feed-Epoch"]).toBe(feed.epoch);
      expect(transfer.body.data.amount).toBe("1000000");
      const reserve = stored.find((m) => m.body.kind === "RESERVE_SET") as StoredEvent;
      expect(reserve.subject).toBe(`${s.prefix}.reserve_set`);
      expect(reserve.headers["Mint-Accounts"]).toBeUndefined();
      const status = r.status();
      expect(status).toMatchObject({ published: 3_500, failed: 0, duplicates: 0, active: true, lagEvents: 0, lagSeconds: 0 });
      // The stream was created with the relay's settings.
      const info = await reader.jsm.streams.info(s.name);
      expect(info.config.subjects).toEqual([`${s.prefix}.>`]);
      expect(info.config.duplicate_window).toBe(120_000 * 1_000_000);
      expect(info.config.retention).toBe("limits");
    } finally {
      await r.stop();
    }
  });

  it("a relay killed mid-window and a new one started past the duplicate window: the stream holds every event once, in order", async () => {
    const s = newStream();
    const feed = new MemoryLedgerEventFeed(systemClock);
    fill(feed, 2_000);
    // The first relay's acknowledgements after the 250th never arrive (it "dies" between publish and ack).
    let acks = 0;
    const lost: ((err: Error) => void)[] = [];
    const first = target(s, { duplicateWindowMs: 300 });
    const losingAcks: RelayTarget = {
      open: () => first.open(),
      get connected() {
        return first.connected;
      },
      tail: () => first.tail(),
      publish: async (e, c, ep, after) => {
        const ack = await first.publish(e, c, ep, after);
        if (++acks > 250) return new Promise((_, reject) => lost.push(reject));
        return ack;
      },
      close: async () => {
        for (const reject of lost) reject(new Error("connection closed"));
        await first.close();
      },
    };
    const a = relay(feed, s, losingAcks, 100);
    a.start();
    await waitFor(async () => (await reader.lastSeq(s.name)) >= 300, "the first relay mid-stream", 30_000);
    await a.stop();
    const afterKill = await reader.lastSeq(s.name);
    expect(afterKill).toBeGreaterThan(250);
    expect(afterKill).toBeLessThan(2_000);
    // Past the duplicate window: JetStream would no longer drop a second copy.
    await new Promise((r) => setTimeout(r, 600));
    fill(feed, 300);
    const b = relay(feed, s, target(s, { duplicateWindowMs: 300 }), 100);
    b.start();
    try {
      await waitFor(async () => (await reader.lastSeq(s.name)) >= 2_300, "the second relay done", 30_000);
      await waitFor(() => b.status().state === "caught_up", "caught up");
      await expectExactlyTheFeed(s, feed);
      expect(b.status().duplicates).toBe(0);
    } finally {
      await b.stop();
    }
  });

  it("a publish lost in the middle of a pipelined window is not skipped: the later ones are refused and everything is sent again in order", async () => {
    const s = newStream();
    const feed = new MemoryLedgerEventFeed(systemClock);
    fill(feed, 1_000);
    const t = target(s);
    let n = 0;
    const losing: RelayTarget = {
      open: () => t.open(),
      get connected() {
        return t.connected;
      },
      tail: () => t.tail(),
      // The 150th publish never reaches NATS (lost), its successors do.
      publish: (e, c, ep, after) => (++n === 150 ? Promise.reject(new Error("lost on the way")) : t.publish(e, c, ep, after)),
      close: () => t.close(),
    };
    const r = relay(feed, s, losing, 100);
    r.start();
    try {
      await waitFor(async () => (await reader.lastSeq(s.name)) >= 1_000, "every event in the stream", 30_000);
      await waitFor(() => r.status().state === "caught_up", "caught up");
      await expectExactlyTheFeed(s, feed);
      // The lost one, the 50 after it in its window and the next window's 100 (sent while it was acknowledged).
      expect(r.status().failed).toBe(151);
    } finally {
      await r.stop();
    }
  });

  it("NATS unreachable (the connection cut and refused): publishing pauses with the lag growing, and resumes by itself, each event once", async () => {
    const s = newStream();
    const proxy = new PgRelay(NATS_URL);
    await proxy.start(0);
    const feed = new MemoryLedgerEventFeed(systemClock);
    fill(feed, 1_000);
    const r = relay(feed, s, target(s, { url: `nats://127.0.0.1:${proxy.port}`, publishTimeoutMs: 500 }), 100);
    r.start();
    try {
      await waitFor(async () => (await reader.lastSeq(s.name)) >= 1_000, "the first events", 30_000);
      await proxy.stop();
      fill(feed, 1_000);
      await waitFor(() => r.status().state === "unavailable" && r.status().lagEvents > 0, "the relay noticing the outage", 30_000);
      expect(await reader.lastSeq(s.name)).toBeLessThan(2_000);
      await proxy.start(proxy.port);
      await waitFor(async () => (await reader.lastSeq(s.name)) >= 2_000, "the rest after the outage", 60_000);
      await waitFor(() => r.status().state === "caught_up", "caught up");
      await expectExactlyTheFeed(s, feed);
      expect(r.status().lagEvents).toBe(0);
    } finally {
      await r.stop();
      await proxy.stop();
    }
  });

  it("two relays on one stream: one publishes, the other stands by and takes over when the first stops", async () => {
    const s = newStream();
    const feed = new MemoryLedgerEventFeed(systemClock);
    fill(feed, 500);
    const a = relay(feed, s, target(s), 100);
    const b = relay(feed, s, target(s), 100);
    a.start();
    await waitFor(() => a.status().active, "the first relay active");
    b.start();
    try {
      await waitFor(async () => (await reader.lastSeq(s.name)) >= 500, "the first events", 30_000);
      await waitFor(() => b.status().state === "standby", "the second relay standing by");
      expect(b.status().active).toBe(false);
      await a.stop();
      fill(feed, 500);
      await waitFor(async () => (await reader.lastSeq(s.name)) >= 1_000, "the second relay publishing", 30_000);
      expect(b.status().active).toBe(true);
      await expectExactlyTheFeed(s, feed);
      expect(a.status().published + b.status().published).toBe(1_000);
    } finally {
      await b.stop();
    }
  });

  it("a durable consumer as docs/operations.md shows it reads one kind, in order, and acknowledges", async () => {
    const s = newStream();
    const feed = new MemoryLedgerEventFeed(systemClock);
    fill(feed, 400);
    const r = relay(feed, s, target(s), 100);
    r.start();
    const nc = await connect({ servers: NATS_URL });
    try {
      await waitFor(async () => (await reader.lastSeq(s.name)) >= 400, "every event in the stream", 30_000);
      await reader.jsm.consumers.add(s.name, { durable_name: "accounting", ack_policy: AckPolicy.Explicit, filter_subject: `${s.prefix}.transfer` });
      const consumer = await jetstream(nc).consumers.get(s.name, "accounting");
      const handled: string[] = [];
      const messages = await consumer.consume();
      for await (const m of messages) {
        const event = m.json<{ id: string; kind: string; accounts: string[]; data: Record<string, string> }>();
        if (!handled.includes(event.id)) handled.push(event.id);
        m.ack();
        if (handled.length === 100) break;
      }
      const transfers = (await feed.read({ a: 0n, b: 0n }, 1_000)).events.filter((e) => e.kind === "TRANSFER");
      expect(handled).toEqual(transfers.map((e) => e.id));
      await waitFor(async () => (await reader.jsm.consumers.info(s.name, "accounting")).num_ack_pending === 0, "every message acknowledged");
    } finally {
      await nc.close();
      await r.stop();
    }
  });

  it("a memory store restarted (a new feed, a new epoch): its events follow the earlier ones, none dropped as a duplicate", async () => {
    const s = newStream();
    const before = new MemoryLedgerEventFeed(systemClock);
    fill(before, 120);
    const a = relay(before, s, target(s), 50);
    a.start();
    await waitFor(async () => (await reader.lastSeq(s.name)) >= 120, "the first process's events", 30_000);
    await a.stop();
    // The restarted process numbers its events from 1 again; their ids carry the new epoch.
    const after = new MemoryLedgerEventFeed(systemClock);
    fill(after, 80);
    const b = relay(after, s, target(s), 50);
    b.start();
    try {
      await waitFor(async () => (await reader.lastSeq(s.name)) >= 200, "the restarted process's events", 30_000);
      await waitFor(() => b.status().state === "caught_up", "caught up");
      const stored = await reader.all(s.name);
      const ids = [...(await before.read({ a: 0n, b: 0n }, 1_000)).events, ...(await after.read({ a: 0n, b: 0n }, 1_000)).events].map((e) => e.id);
      expect(stored.map((m) => m.msgId)).toEqual(ids);
      expect(b.status().duplicates).toBe(0);
    } finally {
      await b.stop();
    }
  });
});
