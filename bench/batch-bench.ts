/**
 * BatchMint and BatchTransfer throughput on the memory store: one service
 * process (audit journal and metrics on, as served), batches of 1,000 items
 * to distinct accounts (so the per-account limit never binds), a few batches
 * in flight from this process. Reports items/s and the service's CPU µs per
 * item (its utime + stime over the measured window, /proc), beside the same
 * figures for unary MintUsdc / Transfer calls measured in the same run.
 *
 * The requests are built before each window (distinct keys and accounts), so
 * the window measures sending and serving them. State stays bounded: keys
 * expire after MINT_IDEMPOTENCY_TTL (10 s here) and are swept; the run is a
 * few windows of a few seconds.
 *
 *   node --import tsx bench/batch-bench.ts [items] [inFlight] [--tsx] [--profile]
 *   node --import tsx bench/batch-bench.ts --pg [--tsx]    (BatchTransfer vs unary Transfer on PostgreSQL)
 *
 * `--profile` writes the service's CPU profile to bench/profiles/service-batch.cpuprofile
 * (summarize with bench/profile-summary.ts).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { Blockchain, MintServiceClient, type MintUsdcRequest, type TransferRequest } from "../gen/usdc/mint/v1/mint.js";
import path from "node:path";
import { BENCH_DIR, prepareLaunch, startServer, type Launch, type ServerProcess } from "./servers.js";

const CLK_TCK = 100;
const BATCH = 1000;

export interface BatchFigure {
  readonly itemsPerSecond: number;
  /** The service's CPU time per item (or per unary call), µs. */
  readonly serverCpuUsPerItem: number;
  readonly items: number;
  readonly seconds: number;
}

export interface BatchBenchFigures {
  readonly batchMint: BatchFigure;
  readonly batchTransfer: BatchFigure;
  readonly batchTransferAtomic: BatchFigure;
  readonly unaryMint: BatchFigure;
  readonly unaryTransfer: BatchFigure;
  readonly note: string;
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}

type Unary<Req> = (req: Req, cb: (err: grpc.ServiceError | null) => void) => void;

/** Sends every request, `inFlight` at a time; resolves with items/s and server CPU µs per item. */
async function measure<Req>(server: ServerProcess, reqs: readonly Req[], itemsPer: number, inFlight: number, send: Unary<Req>): Promise<BatchFigure> {
  let next = 0;
  let failed: grpc.ServiceError | null = null;
  const cpu0 = cpuSeconds(server.pid);
  const t0 = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < reqs.length && failed === null) {
      const req = reqs[next++] as Req;
      await new Promise<void>((resolve) => send(req, (err) => ((failed ??= err), resolve())));
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(server.pid) - cpu0;
  if (failed !== null) throw new Error(`a bench call failed: ${(failed as grpc.ServiceError).message}`);
  const items = reqs.length * itemsPer;
  return { itemsPerSecond: Math.round(items / seconds), serverCpuUsPerItem: Math.round((cpu / items) * 1e6 * 10) / 10, items, seconds: Math.round(seconds * 100) / 100 };
}

export async function runBatchBench(opts: { readonly launch: Launch; readonly windowItems: number; readonly inFlight: number; readonly log: (line: string) => void; readonly nodeFlags?: readonly string[] }): Promise<BatchBenchFigures> {
  const server = await startServer("service", { launch: opts.launch, ...(opts.nodeFlags === undefined ? {} : { nodeFlags: opts.nodeFlags }), env: { MINT_IDEMPOTENCY_TTL: "10s", MINT_MAX_CALLS_IN_FLIGHT: "10000", MINT_METRICS_LISTEN: "127.0.0.1:0" } });
  const client = new MintServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": 16 * 1024 * 1024 });
  let run = 0;
  const mintReqs = (n: number, prefix: string): MintUsdcRequest[] =>
    Array.from({ length: n }, (_, i) => ({ accountId: `${prefix}-${i}`, amount: "1", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: `${prefix}-k-${i}` }));
  const batches = <T>(items: T[]): T[][] => Array.from({ length: Math.ceil(items.length / BATCH) }, (_, b) => items.slice(b * BATCH, (b + 1) * BATCH));
  const batchMint: Unary<MintUsdcRequest[]> = (items, cb) => client.batchMint({ items }, (err, res) => cb(err ?? (res?.results.some((r) => r.error !== undefined) ? (new Error(`item failed: ${JSON.stringify(res.results.find((r) => r.error)?.error)}`) as grpc.ServiceError) : null)));
  const transferReqs = async (n: number): Promise<TransferRequest[]> => {
    // Funded sources, one per transfer, each to its own destination.
    const prefix = `fund${++run}`;
    const funding = mintReqs(n, prefix);
    await measure(server, batches(funding), BATCH, opts.inFlight, batchMint);
    return funding.map((m, i) => ({ fromAccountId: m.accountId, toAccountId: `${prefix}-to-${i}`, amount: "1", idempotencyKey: `${prefix}-t-${i}` }));
  };
  const batchTransfer =
    (atomic: boolean): Unary<TransferRequest[]> =>
    (items, cb) =>
      client.batchTransfer({ items, atomic }, (err, res) => cb(err ?? (res?.results.some((r) => r.error !== undefined) ? (new Error("item failed") as grpc.ServiceError) : null)));
  try {
    const n = opts.windowItems;
    // A warm-up of each path first (JIT), not measured.
    await measure(server, batches(mintReqs(5 * BATCH, "warm")), BATCH, opts.inFlight, batchMint);
    opts.log(`  BatchMint: ${n} mints in batches of ${BATCH}, ${opts.inFlight} in flight`);
    const bm = await measure(server, batches(mintReqs(n, `bm${++run}`)), BATCH, opts.inFlight, batchMint);
    opts.log(`    ${bm.itemsPerSecond} mints/s, ${bm.serverCpuUsPerItem} µs server CPU per mint`);
    const bt = await measure(server, batches(await transferReqs(n)), BATCH, opts.inFlight, batchTransfer(false));
    opts.log(`  BatchTransfer: ${bt.itemsPerSecond} transfers/s, ${bt.serverCpuUsPerItem} µs server CPU per transfer`);
    const ba = await measure(server, batches(await transferReqs(n)), BATCH, opts.inFlight, batchTransfer(true));
    opts.log(`  BatchTransfer atomic: ${ba.itemsPerSecond} transfers/s, ${ba.serverCpuUsPerItem} µs server CPU per transfer`);
    const unaryN = Math.max(2000, Math.floor(n / 5));
    const um = await measure(server, mintReqs(unaryN, `um${++run}`), 1, 64, (req, cb) => client.mintUsdc(req, (err) => cb(err)));
    opts.log(`  MintUsdc (unary, 64 in flight): ${um.itemsPerSecond} mints/s, ${um.serverCpuUsPerItem} µs server CPU per call`);
    const ut = await measure(server, (await transferReqs(unaryN)), 1, 64, (req, cb) => client.transfer(req, (err) => cb(err)));
    opts.log(`  Transfer (unary, 64 in flight): ${ut.itemsPerSecond} transfers/s, ${ut.serverCpuUsPerItem} µs server CPU per call`);
    return {
      batchMint: bm,
      batchTransfer: bt,
      batchTransferAtomic: ba,
      unaryMint: um,
      unaryTransfer: ut,
      note: "memory store, audit journal and metrics as configured by default, distinct accounts; client in the bench process on the same (shared) machine",
    };
  } finally {
    client.close();
    await server.stop();
  }
}

/** BatchTransfer against unary Transfer on PostgreSQL (group commit at its defaults), measured in one run. */
export interface PgBatchFigures {
  readonly batchTransfer: BatchFigure;
  readonly unaryTransfer: BatchFigure;
  /** Median over the pairs of batch items/s ÷ unary transfers/s. */
  readonly ratio: number;
  readonly note: string;
}

/**
 * BatchTransfer (batches of 1,000, `inFlight` at a time) and unary Transfer
 * (64 in flight) on one service over PostgreSQL (database reset first;
 * BENCH_PG_URL's server, database `usdc_bench_batch`), alternating windows,
 * each transfer from its own funded account (funded by BatchMint, not measured).
 */
export async function runPgBatchBench(opts: { readonly launch: Launch; readonly windowItems: number; readonly unaryItems: number; readonly pairs: number; readonly inFlight: number; readonly log: (line: string) => void }): Promise<PgBatchFigures> {
  const base = new URL(process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/usdc_bench");
  const url = new URL(base.toString());
  url.pathname = "/usdc_bench_batch";
  const admin = new URL(base.toString());
  admin.pathname = "/postgres";
  const reset = spawnSync("psql", [admin.toString(), "-v", "ON_ERROR_STOP=1", "-qc", "DROP DATABASE IF EXISTS usdc_bench_batch WITH (FORCE)", "-qc", "CREATE DATABASE usdc_bench_batch"], { encoding: "utf8" });
  if (reset.status !== 0) throw new Error(`cannot reset database usdc_bench_batch: ${(reset.stderr || reset.stdout).trim().split("\n")[0]}`);
  const server = await startServer("service", {
    launch: opts.launch,
    env: { MINT_STORE: url.toString(), MINT_PG_POOL_SIZE: "10", MINT_MAX_CALLS_IN_FLIGHT: "10000", MINT_METRICS_LISTEN: "127.0.0.1:0" },
    startTimeoutMs: 60_000,
  });
  const client = new MintServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": 16 * 1024 * 1024 });
  const check =
    (what: string) =>
    (err: grpc.ServiceError | null, res: { results: { error?: unknown }[] } | undefined, cb: (err: grpc.ServiceError | null) => void): void =>
      cb(err ?? (res?.results.some((r) => r.error !== undefined) === true ? (new Error(`${what} item failed: ${JSON.stringify(res?.results.find((r) => r.error)?.error)}`) as grpc.ServiceError) : null));
  const batchMint: Unary<MintUsdcRequest[]> = (items, cb) => client.batchMint({ items }, (err, res) => check("BatchMint")(err, res, cb));
  const batchTransfer: Unary<TransferRequest[]> = (items, cb) => client.batchTransfer({ items, atomic: false }, (err, res) => check("BatchTransfer")(err, res, cb));
  const batches = <T>(items: T[]): T[][] => Array.from({ length: Math.ceil(items.length / BATCH) }, (_, b) => items.slice(b * BATCH, (b + 1) * BATCH));
  let run = 0;
  const transfers = async (n: number): Promise<TransferRequest[]> => {
    const prefix = `pgb${++run}`;
    const funding = Array.from({ length: n }, (_, i) => ({ accountId: `${prefix}-${i}`, amount: "1", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: `${prefix}-k-${i}` }));
    await measure(server, batches(funding), BATCH, opts.inFlight, batchMint);
    return funding.map((m, i) => ({ fromAccountId: m.accountId, toAccountId: `${prefix}-to-${i}`, amount: "1", idempotencyKey: `${prefix}-t-${i}` }));
  };
  try {
    // Warm-up of both paths (JIT, plan caches), not measured.
    await measure(server, batches(await transfers(2 * BATCH)), BATCH, opts.inFlight, batchTransfer);
    await measure(server, await transfers(500), 1, 64, (req, cb) => client.transfer(req, (err) => cb(err)));
    const bt: BatchFigure[] = [];
    const ut: BatchFigure[] = [];
    for (let i = 0; i < opts.pairs; i++) {
      for (const side of i % 2 === 0 ? (["batch", "unary"] as const) : (["unary", "batch"] as const)) {
        if (side === "batch") bt.push(await measure(server, batches(await transfers(opts.windowItems)), BATCH, opts.inFlight, batchTransfer));
        else ut.push(await measure(server, await transfers(opts.unaryItems), 1, 64, (req, cb) => client.transfer(req, (err) => cb(err))));
      }
      opts.log(`  pg pair ${i + 1}/${opts.pairs}: BatchTransfer ${(bt[i] as BatchFigure).itemsPerSecond} transfers/s, unary Transfer (64 in flight) ${(ut[i] as BatchFigure).itemsPerSecond}/s`);
    }
    const mid = (xs: BatchFigure[]): BatchFigure => [...xs].sort((a, b) => a.itemsPerSecond - b.itemsPerSecond)[xs.length >> 1] as BatchFigure;
    const b = mid(bt);
    const u = mid(ut);
    // The ratio is the median of the pairs' own ratios: each pair's two windows ran under the same load.
    const ratios = bt.map((x, i) => x.itemsPerSecond / (ut[i] as BatchFigure).itemsPerSecond).sort((x, y) => x - y);
    const pairRatio = ratios.length % 2 === 1 ? (ratios[ratios.length >> 1] as number) : ((ratios[ratios.length / 2 - 1] as number) + (ratios[ratios.length / 2] as number)) / 2;
    return {
      batchTransfer: b,
      unaryTransfer: u,
      ratio: Math.round(pairRatio * 100) / 100,
      note: `PostgreSQL (pool 10, group commit at its defaults), BatchTransfer in batches of ${BATCH}, ${opts.inFlight} in flight, vs unary Transfer 64 in flight; distinct funded sources; ratio the median of ${opts.pairs} alternating pairs' ratios in one run on a machine shared with other work`,
    };
  } finally {
    client.close();
    await server.stop();
  }
}

/** The report's lines: items/s against the 50,000/s targets, and server CPU µs per item beside the unary call's. */
export function batchLines(f: BatchBenchFigures): string[] {
  const line = (label: string, b: BatchFigure, unary: BatchFigure): string =>
    `  ${label.padEnd(34)} ${String(b.itemsPerSecond).padStart(8)}/s target >= 50000 ${b.itemsPerSecond >= 50_000 ? "meets" : "MISSES"}; server CPU ${b.serverCpuUsPerItem} µs/item vs ${unary.serverCpuUsPerItem} µs/unary call (${(b.serverCpuUsPerItem / unary.serverCpuUsPerItem).toFixed(2)}×)`;
  return [
    line("BatchMint (1,000/batch) mints/s", f.batchMint, f.unaryMint),
    line("BatchTransfer (1,000/batch)", f.batchTransfer, f.unaryTransfer),
    line("BatchTransfer atomic (1,000/batch)", f.batchTransferAtomic, f.unaryTransfer),
  ];
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv.includes("--pg")) {
  const log = (line: string): void => void process.stderr.write(line + "\n");
  const launch = prepareLaunch(process.argv.includes("--tsx"), log);
  runPgBatchBench({ launch, windowItems: 10_000, unaryItems: 3_000, pairs: 2, inFlight: 2, log }).then(
    (f) => process.stdout.write(JSON.stringify(f, null, 2) + "\n"),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const [itemsArg, inFlightArg] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
  const items = Number(itemsArg ?? 100_000);
  const inFlight = Number(inFlightArg ?? 2);
  const log = (line: string): void => void process.stderr.write(line + "\n");
  const launch = prepareLaunch(process.argv.includes("--tsx"), log);
  const profile = process.argv.includes("--profile") ? ["--cpu-prof", `--cpu-prof-dir=${path.join(BENCH_DIR, "profiles")}`, "--cpu-prof-name=service-batch.cpuprofile"] : undefined;
  runBatchBench({ launch, windowItems: items, inFlight, log, ...(profile === undefined ? {} : { nodeFlags: profile }) }).then(
    (f) => process.stdout.write(JSON.stringify(f, null, 2) + "\n"),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
