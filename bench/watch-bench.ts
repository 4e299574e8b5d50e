/**
 * WatchLedger figures (`npm run bench:watch`, or `npm run bench -- --only watch`):
 *
 * 1. Idle watchers: the service (its own process, PostgreSQL store) with N
 *    WatchLedger streams open over several connections (at most 100 streams
 *    per connection, MINT_MAX_CONCURRENT_STREAMS), nothing happening: the
 *    process's RSS and heap before and after, and its CPU over an idle window.
 * 2. One consumer at the full MintUsdc rate: a load of MintUsdc calls (many in
 *    flight) while one stream takes every event: mints/s, events/s delivered,
 *    and the lag of each MINT_COMPLETED: behind the moment its caller had the
 *    answer (negative: the event came first), behind the mint's own time (which
 *    includes the call's latency), and in events (events of the calls answered
 *    so far minus events received, sampled every 100 ms).
 *
 * Usage: node --import tsx bench/watch-bench.ts [watchers=1000] [seconds=10] [concurrency=64]
 * Prints one JSON object on stdout.
 */
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { Blockchain, MintServiceClient, WatchLedgerRequest } from "../gen/usdc/mint/v1/mint.js";
import { prepareLaunch, startServer, type ServerProcess } from "./servers.js";

const PG_SERVER = process.env.BENCH_PG_SERVER ?? "postgres://postgres@127.0.0.1:5432";
const STREAMS_PER_CONNECTION = 100;

async function freshDatabase(name: string): Promise<string> {
  const c = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return `${PG_SERVER}/${name}`;
}

/** RSS (kB) and CPU ticks (user + system) of a process, from /proc. */
function procStats(pid: number): { rssKiB: number; cpuMs: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? "0");
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rssKiB, cpuMs: (ticks * 1000) / 100 };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function idleWatchers(server: ServerProcess, watchers: number, idleMs: number): Promise<Record<string, unknown>> {
  const address = `127.0.0.1:${server.port}`;
  await sleep(1000);
  const before = procStats(server.pid);
  const connections = Math.ceil(watchers / STREAMS_PER_CONNECTION);
  const clients = Array.from({ length: connections }, () => new MintServiceClient(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }));
  const streams: grpc.ClientReadableStream<unknown>[] = [];
  const opened: Promise<void>[] = [];
  for (let i = 0; i < watchers; i++) {
    const s = (clients[Math.floor(i / STREAMS_PER_CONNECTION)] as MintServiceClient).watchLedger(WatchLedgerRequest.fromPartial({ accountIds: [`idle-${i}`] }));
    s.on("error", () => undefined);
    opened.push(new Promise((resolve, reject) => {
      s.once("metadata", () => resolve());
      s.once("error", reject);
    }));
    streams.push(s);
  }
  const t0 = performance.now();
  await Promise.all(opened);
  const openMs = performance.now() - t0;
  await sleep(1000);
  const open = procStats(server.pid);
  await sleep(idleMs);
  const after = procStats(server.pid);
  for (const s of streams) s.cancel();
  for (const c of clients) c.close();
  return {
    watchers,
    connections,
    openAllMs: Math.round(openMs),
    rssBeforeMiB: +(before.rssKiB / 1024).toFixed(1),
    rssWithWatchersMiB: +(open.rssKiB / 1024).toFixed(1),
    rssPerWatcherKiB: +((open.rssKiB - before.rssKiB) / watchers).toFixed(2),
    idleWindowMs: idleMs,
    idleCpuPercentOfOneCore: +(((after.cpuMs - open.cpuMs) / idleMs) * 100).toFixed(2),
  };
}

async function fullRate(server: ServerProcess, seconds: number, concurrency: number): Promise<Record<string, unknown>> {
  const address = `127.0.0.1:${server.port}`;
  const watcher = new MintServiceClient(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  const loader = new MintServiceClient(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  const stream = watcher.watchLedger(WatchLedgerRequest.fromPartial({}));
  stream.on("error", () => undefined);
  await new Promise<void>((resolve) => stream.once("metadata", () => resolve()));
  let received = 0;
  let completedMints = 0;
  /** Since the mint's own time (its call's start on the server): includes the call's latency. */
  const sinceMintMs: number[] = [];
  /** Since the caller had its answer (the commit it knows of): the stream's own delay. */
  const sinceAnswerMs: number[] = [];
  const answeredAt = new Map<string, number>();
  const seenAt = new Map<string, number>();
  stream.on("data", (r: { event?: { kind: number; time?: Date; mint?: { mintId: string } } }) => {
    received++;
    const e = r.event;
    if (e?.kind !== 5 || e.time === undefined || e.mint === undefined) return;
    const now = Date.now();
    sinceMintMs.push(now - e.time.getTime());
    const answered = answeredAt.get(e.mint.mintId);
    if (answered === undefined) seenAt.set(e.mint.mintId, now);
    else {
      answeredAt.delete(e.mint.mintId);
      sinceAnswerMs.push(now - answered);
    }
  });
  const endAt = Date.now() + seconds * 1000;
  let seq = 0;
  let failed = 0;
  const lagEvents: number[] = [];
  const sampler = setInterval(() => lagEvents.push(completedMints * 2 - received), 100);
  const worker = async (): Promise<void> => {
    while (Date.now() < endAt) {
      const key = `bench-${process.pid}-${++seq}`;
      await new Promise<void>((resolve) => {
        loader.mintUsdc({ accountId: `acct-${seq % 1000}`, amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key }, (err, res) => {
          if (err === null) {
            completedMints++;
            const id = res?.mint?.mintId ?? "";
            const seen = seenAt.get(id);
            if (seen === undefined) answeredAt.set(id, Date.now());
            else {
              seenAt.delete(id);
              // The event came before the answer: no delay behind the caller.
              sinceAnswerMs.push(seen - Date.now());
            }
          } else failed++;
          resolve();
        });
      });
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const loadMs = performance.now() - t0;
  clearInterval(sampler);
  // Drain: the consumer catches up with every committed event.
  const drainStart = performance.now();
  while (received < completedMints * 2 && performance.now() - drainStart < 30_000) await sleep(10);
  const drainMs = performance.now() - drainStart;
  stream.cancel();
  watcher.close();
  loader.close();
  sinceMintMs.sort((a, b) => a - b);
  sinceAnswerMs.sort((a, b) => a - b);
  const lagE = [...lagEvents].sort((a, b) => a - b);
  return {
    seconds,
    concurrency,
    mints: completedMints,
    failedCalls: failed,
    mintsPerSecond: Math.round(completedMints / (loadMs / 1000)),
    eventsDelivered: received,
    eventsPerSecond: Math.round(received / ((loadMs + drainMs) / 1000)),
    allEventsDelivered: received === completedMints * 2,
    drainAfterLoadMs: Math.round(drainMs),
    lagBehindAnswerMs: { p50: percentile(sinceAnswerMs, 50), p99: percentile(sinceAnswerMs, 99), max: sinceAnswerMs[sinceAnswerMs.length - 1] ?? NaN },
    lagBehindMintTimeMs: { p50: percentile(sinceMintMs, 50), p99: percentile(sinceMintMs, 99), max: sinceMintMs[sinceMintMs.length - 1] ?? NaN },
    lagEvents: { p50: percentile(lagE, 50), p99: percentile(lagE, 99), max: lagE[lagE.length - 1] ?? NaN },
  };
}

async function main(): Promise<void> {
  const watchers = Number(process.argv[2] ?? "1000");
  const seconds = Number(process.argv[3] ?? "10");
  const concurrency = Number(process.argv[4] ?? "64");
  const log = (line: string): void => void process.stderr.write(line + "\n");
  const launch = prepareLaunch(false, log);
  const out: Record<string, unknown> = { launch: launch.mode };
  for (const store of ["postgres", "memory"] as const) {
    const env: Record<string, string> =
      store === "memory" ? { MINT_WATCH_MAX_WATCHERS: String(watchers + 10) } : { MINT_STORE: await freshDatabase("usdc_bench_watch"), MINT_PG_POOL_SIZE: "10", MINT_WATCH_MAX_WATCHERS: String(watchers + 10) };
    const server = await startServer("service", { launch, env });
    try {
      log(`${store}: ${watchers} idle watchers`);
      const idle = await idleWatchers(server, watchers, 10_000);
      log(`${store}: one consumer at the full MintUsdc rate (${seconds} s, c=${concurrency})`);
      const rate = await fullRate(server, seconds, concurrency);
      out[store] = { idle, fullRate: rate };
    } finally {
      await server.stop();
    }
  }
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
}

await main();
