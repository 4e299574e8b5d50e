/**
 * The JetStream relay's throughput and lag against the real NATS server
 * (127.0.0.1:4222, or MINT_BENCH_NATS_URL), in-process over the memory feed:
 *
 * - backlog: the feed is filled in advance with `events` events, the relay
 *   is started and timed until JetStream acknowledged the last one
 *   (events/s; target >= 20,000);
 * - live: events are appended at a fixed rate (in bursts every 5 ms) while
 *   the relay keeps up; the lag of each event is from its append to
 *   JetStream's acknowledgement (p50, p99, max; wall-clock ms).
 *
 * Each pair uses a stream of its own, deleted afterwards. Runs under
 * `npm run bench -- --only nats`, or alone: `node --import tsx bench/nats-relay-bench.ts`.
 */
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { MemoryLedgerEventFeed } from "../src/adapters/memory/memory-ledger-events.js";
import { JetStreamTarget, type RelayTarget } from "../src/adapters/nats/jetstream-target.js";
import type { LedgerEvent } from "../src/domain/ledger-events.js";
import { systemClock } from "../src/domain/clock.js";
import { NatsRelay } from "../src/workers/nats-relay.js";
import { InProcessRelayLock } from "../src/workers/nats-relay-lock.js";

export interface NatsRelayFigures {
  readonly backlogEvents: number;
  readonly windowEvents: number;
  /** Median over runs of backlog events ÷ seconds until the last acknowledgement. */
  readonly eventsPerSecond: number;
  readonly runsEventsPerSecond: readonly number[];
  /** Median over runs of this process's CPU time (user + system) per event published, in µs (the machine is shared: the rate alone moves with its load). */
  readonly cpuUsPerEvent: number;
  readonly liveRatePerSecond: number;
  readonly liveLagMs: { readonly p50: number; readonly p99: number; readonly max: number };
}

const NATS_URL = process.env.MINT_BENCH_NATS_URL ?? "nats://127.0.0.1:4222";

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.min(s.length - 1, Math.floor(q * s.length))] as number);
}

function fill(feed: MemoryLedgerEventFeed, n: number): void {
  for (let i = 0; i < n; i++) {
    feed.append({ kind: "TRANSFER", timeMs: Date.now(), accounts: [`bench-${i % 1000}`, `bench-${(i + 1) % 1000}`], data: { transfer_id: `t-${i}`, from_account_id: `bench-${i % 1000}`, to_account_id: `bench-${(i + 1) % 1000}`, amount: "1000000" } });
  }
}

async function withRelay<T>(windowEvents: number, fn: (feed: MemoryLedgerEventFeed, relay: NatsRelay) => Promise<T>, prefill = 0, onAck?: (e: LedgerEvent) => void): Promise<T> {
  const tag = `${process.pid}_${randomBytes(4).toString("hex")}`;
  const stream = `BENCH_MINT_${tag}`;
  const feed = new MemoryLedgerEventFeed(systemClock);
  fill(feed, prefill);
  const target = new JetStreamTarget({ url: NATS_URL, credsFile: "", user: "", passwordFile: "", stream, subjectPrefix: `bench_mint_${tag}.events`, maxAgeMs: 600_000, duplicateWindowMs: 120_000, replicas: 1, publishTimeoutMs: 10_000 });
  const measured: RelayTarget =
    onAck === undefined
      ? target
      : {
          open: () => target.open(),
          get connected() {
            return target.connected;
          },
          tail: () => target.tail(),
          publish: async (e, c, ep, after) => {
            const ack = await target.publish(e, c, ep, after);
            onAck(e);
            return ack;
          },
          close: () => target.close(),
        };
  const relay = new NatsRelay({ feed, target: measured, lock: new InProcessRelayLock(stream), clock: systemClock, pollIntervalMs: 1_000, windowEvents });
  try {
    return await fn(feed, relay);
  } finally {
    await relay.stop();
    const nc = await connect({ servers: NATS_URL });
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
}

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 2));
  }
}

export async function runNatsRelayBench(opts: { events?: number; windowEvents?: number; runs?: number; liveRate?: number; liveMs?: number; log?: (s: string) => void } = {}): Promise<NatsRelayFigures> {
  const events = opts.events ?? 100_000;
  const windowEvents = opts.windowEvents ?? 1_000;
  const runs = opts.runs ?? 3;
  const log = opts.log ?? (() => undefined);
  const rates: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < runs; r++) {
    const rate = await withRelay(
      windowEvents,
      async (_feed, relay) => {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        relay.start();
        await until(() => relay.published >= events, 300_000);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / events);
        return events / ((performance.now() - t0) / 1000);
      },
      events,
    );
    rates.push(rate);
    log(`  backlog of ${events} events, window ${windowEvents}: ${Math.round(rate)} events/s, ${(cpu[cpu.length - 1] as number).toFixed(1)} µs CPU per event`);
  }
  const liveRate = opts.liveRate ?? 5_000;
  const liveMs = opts.liveMs ?? 5_000;
  const samples: number[] = [];
  await withRelay(windowEvents, async (feed, relay) => {
    relay.start();
    await until(() => relay.status().state === "caught_up", 30_000);
    const t0 = performance.now();
    let appended = 0;
    while (performance.now() - t0 < liveMs) {
      const due = Math.floor(((performance.now() - t0) / 1000) * liveRate);
      if (due > appended) {
        fill(feed, due - appended);
        appended = due;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => relay.published >= appended, 60_000);
  }, 0, (e) => samples.push(Date.now() - e.timeMs));
  const lags = samples;
  const figures: NatsRelayFigures = {
    backlogEvents: events,
    windowEvents,
    eventsPerSecond: Math.round(quantile(rates, 0.5)),
    runsEventsPerSecond: rates.map((x) => Math.round(x)),
    cpuUsPerEvent: Math.round(quantile(cpu, 0.5) * 10) / 10,
    liveRatePerSecond: liveRate,
    liveLagMs: { p50: Math.round(quantile(lags, 0.5)), p99: Math.round(quantile(lags, 0.99)), max: Math.round(Math.max(0, ...lags)) },
  };
  log(`  live ${liveRate} events/s: lag p50 ${figures.liveLagMs.p50} ms, p99 ${figures.liveLagMs.p99} ms, max ${figures.liveLagMs.max} ms`);
  return figures;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : Number(process.argv[i + 1]);
  };
  const figures = await runNatsRelayBench({
    ...(arg("--events") !== undefined ? { events: arg("--events") as number } : {}),
    ...(arg("--window") !== undefined ? { windowEvents: arg("--window") as number } : {}),
    ...(arg("--runs") !== undefined ? { runs: arg("--runs") as number } : {}),
    log: (s) => process.stdout.write(s + "\n"),
  });
  process.stdout.write(JSON.stringify(figures) + "\n");
}
