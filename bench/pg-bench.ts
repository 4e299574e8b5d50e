/**
 * PostgreSQL store: transfers/s of the service (MINT_STORE=postgres://…) vs
 * pgbench running the equivalent transfer transaction (bench/pg-transfer.sql:
 * claim the key, lock both accounts in order, move the money, write the
 * transfer, its two ledger entries and the key's result, commit) on the same
 * database with the same number of database clients (the service's pool
 * size = pgbench -c). The ratio says what the service adds on top of the
 * database. Measured only once the PostgreSQL adapter exists
 * (src/adapters/postgres/index.ts exporting openPostgresStores).
 *
 * The database is BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/usdc_bench);
 * it is dropped and created anew at the start, through the `postgres` database.
 */
import * as grpc from "@grpc/grpc-js";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { MintServiceClient } from "../gen/usdc/mint/v1/mint.js";
import type { LoadResult, LoadSpec } from "./load-gen.js";
import { BENCH_DIR, ROOT, startServer, type Launch, type ServerProcess } from "./servers.js";

export interface PgComparison {
  /** Median over pairs of service transfers/s ÷ pgbench tps; null when not measured. */
  readonly ratio: number | null;
  readonly ratioSpread: { median: number; min: number; max: number; q1: number; q3: number } | null;
  /** Database clients on both sides: the service's pool size and pgbench -c. */
  readonly clients: number;
  /** Calls in flight from the load generator to the service. */
  readonly serviceConcurrency: number;
  readonly accounts: number;
  readonly service: { rps: number; p50Ms: number; p99Ms: number; errors: number };
  readonly pgbench: { tps: number; latencyMs: number };
  readonly note: string;
  readonly pairs: readonly { service: number; pgbench: number; serviceP99Ms: number; pgbenchLatencyMs: number; serviceErrors: number }[];
  /** MintUsdc with a reserve set vs Transfer, both at the same concurrency on the same service, alternating windows. */
  readonly mintVsTransfer: { readonly mintRps: number; readonly transferRps: number; readonly ratio: number; readonly errors: number } | null;
  /** p99 of a lone caller (c=1 transfers): group commit on vs a second service on the same database with MINT_PG_GROUP_MAX=1. */
  readonly loneP99: { readonly groupedMs: number; readonly singleMs: number; readonly ratio: number; readonly cpuUsPerCall: { readonly grouped: number; readonly single: number } | null } | null;
}

export interface PgOptions {
  readonly quick: boolean;
  readonly pairs: number;
  readonly launch: Launch;
  readonly log: (line: string) => void;
  readonly deadlineMs: number;
  readonly load: (spec: LoadSpec) => Promise<LoadResult>;
}

const POOL = 10;
const CONCURRENCY = 64;
const ACCOUNTS = 1000;

function notMeasured(note: string): PgComparison {
  return {
    ratio: null,
    ratioSpread: null,
    clients: 0,
    serviceConcurrency: 0,
    accounts: 0,
    service: { rps: NaN, p50Ms: NaN, p99Ms: NaN, errors: 0 },
    pgbench: { tps: NaN, latencyMs: NaN },
    mintVsTransfer: null,
    loneP99: null,
    note,
    pairs: [],
  };
}

/** Sets a reserve far above anything the run mints, so every mint is checked against it and passes. */
function setReserve(server: ServerProcess): Promise<void> {
  const client = new MintServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  return new Promise<void>((resolve, reject) => {
    client.setReserve({ amount: "1" + "0".repeat(24), attestationRef: "bench" }, (err) => {
      client.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function which(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function pgbench(url: string, seconds: number): Promise<{ tps: number; latencyMs: number; failed: number; output: string }> {
  return new Promise((resolve, reject) => {
    const args = ["-n", "-M", "extended", "-c", String(POOL), "-j", "1", "-T", String(seconds), "-D", `naccounts=${ACCOUNTS}`, "-f", path.join(BENCH_DIR, "pg-transfer.sql"), url];
    const child = spawn("pgbench", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      const tps = /tps = ([0-9.]+) \(without initial connection time\)/.exec(out);
      const lat = /latency average = ([0-9.]+) ms/.exec(out);
      const failed = /number of failed transactions: (\d+)/.exec(out);
      if (code !== 0 || tps === null) return reject(new Error(`pgbench exited ${code}: ${out.split("\n").slice(-8).join("\n")}`));
      resolve({ tps: Number(tps[1]), latencyMs: lat === null ? NaN : Number(lat[1]), failed: failed === null ? 0 : Number(failed[1]), output: out });
    });
  });
}

export async function runPgComparison(opts: PgOptions): Promise<PgComparison> {
  const index = path.join(ROOT, "src/adapters/postgres/index.ts");
  if (!existsSync(index) || !/export\s+(async\s+)?function\s+openPostgresStores|export\s*\{[^}]*openPostgresStores/.test(readFileSync(index, "utf8"))) {
    opts.log("  not measured: src/adapters/postgres/index.ts does not export openPostgresStores yet");
    return notMeasured("not measured: the PostgreSQL store does not exist yet (src/adapters/postgres/index.ts exporting openPostgresStores)");
  }
  for (const tool of ["pgbench", "psql"]) {
    if (!which(tool)) return notMeasured(`not measured: ${tool} is not installed (Debian postgresql-client)`);
  }
  const url = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/usdc_bench";
  const u = new URL(url);
  const dbName = u.pathname.replace(/^\//, "");
  if (!/^[a-z_][a-z0-9_]*$/.test(dbName)) return notMeasured(`not measured: unexpected database name in BENCH_PG_URL (${dbName})`);
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const reset = spawnSync("psql", [admin.toString(), "-v", "ON_ERROR_STOP=1", "-qc", `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`, "-qc", `CREATE DATABASE ${dbName}`], { encoding: "utf8" });
  if (reset.status !== 0) return notMeasured(`not measured: cannot reset database ${dbName}: ${(reset.stderr || reset.stdout).trim().split("\n")[0]}`);

  const seconds = opts.quick ? 2 : 5;
  let service: ServerProcess | null = null;
  try {
    service = await startServer("service", {
      launch: opts.launch,
      env: { MINT_STORE: url, MINT_PG_POOL_SIZE: String(POOL) },
      startTimeoutMs: 60_000,
    });
    const spec = (workload: LoadSpec["workload"], extra: Partial<LoadSpec> = {}): LoadSpec => ({
      port: (service as ServerProcess).port,
      workload,
      concurrency: CONCURRENCY,
      connections: 4,
      accounts: ACCOUNTS,
      warmupMs: 500,
      durationMs: seconds * 1000,
      serverPid: (service as ServerProcess).pid,
      deadlineMs: opts.deadlineMs,
      ...extra,
    });
    const seeded = await opts.load(spec("seed", { totalCalls: ACCOUNTS }));
    if (seeded.ok !== ACCOUNTS) throw new Error(`seeding failed: ${seeded.ok}/${ACCOUNTS} ok, ${JSON.stringify(seeded.errorKinds)}\n${service.tail.join("\n")}`);
    // pgbench's first seconds (connections, plan caches) are not measured.
    await pgbench(url, 1);
    const pairs: { service: number; pgbench: number; serviceP99Ms: number; pgbenchLatencyMs: number; serviceErrors: number }[] = [];
    const svcRuns: LoadResult[] = [];
    for (let i = 0; i < opts.pairs; i++) {
      let s: LoadResult | undefined;
      let p: { tps: number; latencyMs: number; failed: number } | undefined;
      for (const side of i % 2 === 0 ? ["svc", "pgb"] : ["pgb", "svc"]) {
        if (side === "svc") s = await opts.load(spec("transfer"));
        else p = await pgbench(url, seconds);
      }
      const sr = s as LoadResult;
      const pr = p as { tps: number; latencyMs: number; failed: number };
      svcRuns.push(sr);
      pairs.push({ service: sr.rps, pgbench: pr.tps, serviceP99Ms: sr.p99Ms, pgbenchLatencyMs: pr.latencyMs, serviceErrors: sr.errors });
      opts.log(`  pg pair ${i + 1}/${opts.pairs}: service ${sr.rps.toFixed(0)} transfers/s (p99 ${sr.p99Ms.toFixed(1)} ms, ${sr.errors} errors), pgbench ${pr.tps.toFixed(0)} tps (avg ${pr.latencyMs.toFixed(2)} ms)`);
    }
    // MintUsdc with the reserve on against Transfer, alternating on the same service.
    await setReserve(service);
    const mints: LoadResult[] = [];
    const transfers: LoadResult[] = [];
    for (let i = 0; i < opts.pairs; i++) {
      for (const w of i % 2 === 0 ? (["mint", "transfer"] as const) : (["transfer", "mint"] as const)) (w === "mint" ? mints : transfers).push(await opts.load(spec(w)));
      opts.log(`  pg mint (reserve on) vs transfer ${i + 1}/${opts.pairs}: ${(mints[i] as LoadResult).rps.toFixed(0)} vs ${(transfers[i] as LoadResult).rps.toFixed(0)} /s`);
    }
    const mintRps = median(mints.map((r) => r.rps));
    const transferRps = median(transfers.map((r) => r.rps));
    const mintVsTransfer = { mintRps, transferRps, ratio: mintRps / transferRps, errors: [...mints, ...transfers].reduce((n, r) => n + r.errors, 0) };
    // A lone caller: group commit on against off (a second service on the same database), alternating.
    const single = await startServer("service", { launch: opts.launch, env: { MINT_STORE: url, MINT_PG_POOL_SIZE: String(POOL), MINT_PG_GROUP_MAX: "1" }, startTimeoutMs: 60_000 });
    let loneP99: PgComparison["loneP99"];
    try {
      const lone = { grouped: [] as number[], single: [] as number[] };
      const cpu = { grouped: [] as number[], single: [] as number[] };
      for (let i = 0; i < opts.pairs; i++) {
        for (const side of i % 2 === 0 ? (["grouped", "single"] as const) : (["single", "grouped"] as const)) {
          const server = side === "grouped" ? service : single;
          const r = await opts.load({ ...spec("transfer", { concurrency: 1, connections: 1 }), port: server.port, serverPid: server.pid });
          lone[side].push(r.p99Ms);
          if (r.serverCpuUsPerCall !== undefined && r.serverCpuUsPerCall !== null) cpu[side].push(r.serverCpuUsPerCall);
        }
        opts.log(`  pg c=1 transfer p99 ${i + 1}/${opts.pairs}: group commit ${(lone.grouped[i] as number).toFixed(2)} ms, one transaction per call ${(lone.single[i] as number).toFixed(2)} ms`);
      }
      const groupedMs = median(lone.grouped);
      const singleMs = median(lone.single);
      loneP99 = { groupedMs, singleMs, ratio: groupedMs / singleMs, cpuUsPerCall: cpu.grouped.length > 0 && cpu.single.length > 0 ? { grouped: median(cpu.grouped), single: median(cpu.single) } : null };
    } finally {
      await single.stop();
    }
    const ratios = pairs.map((x) => x.service / x.pgbench);
    const sorted = [...ratios].sort((a, b) => a - b);
    const q = (f: number): number => {
      const pos = (sorted.length - 1) * f;
      const lo = Math.floor(pos);
      const hi = Math.ceil(pos);
      return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
    };
    const errors = svcRuns.reduce((n, r) => n + r.errors, 0);
    return {
      ratio: median(ratios),
      ratioSpread: { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), q1: q(0.25), q3: q(0.75) },
      clients: POOL,
      serviceConcurrency: CONCURRENCY,
      accounts: ACCOUNTS,
      service: { rps: median(svcRuns.map((r) => r.rps)), p50Ms: median(svcRuns.map((r) => r.p50Ms)), p99Ms: median(svcRuns.map((r) => r.p99Ms)), errors },
      pgbench: { tps: median(pairs.map((x) => x.pgbench)), latencyMs: median(pairs.map((x) => x.pgbenchLatencyMs)) },
      note:
        `service (MINT_STORE=postgres, pool ${POOL}, ${CONCURRENCY} calls in flight from load-gen) vs pgbench -c ${POOL} -j 1 -M extended -f bench/pg-transfer.sql, ` +
        `${ACCOUNTS} accounts, ${opts.pairs} alternating pairs of ${seconds} s, database ${dbName} on ${u.host}` +
        (errors > 0 ? `; the service had ${errors} failed calls` : "") +
        `; group commit at its defaults; MintUsdc (reserve on) ${mintRps.toFixed(0)}/s vs Transfer ${transferRps.toFixed(0)}/s at c=${CONCURRENCY} = ${mintVsTransfer.ratio.toFixed(2)}x` +
        `; c=1 transfer p99 ${loneP99.groupedMs.toFixed(2)} ms with group commit vs ${loneP99.singleMs.toFixed(2)} ms with MINT_PG_GROUP_MAX=1 = ${loneP99.ratio.toFixed(2)}x` +
        (loneP99.cpuUsPerCall === null ? "" : ` (service CPU ${loneP99.cpuUsPerCall.grouped.toFixed(0)} vs ${loneP99.cpuUsPerCall.single.toFixed(0)} µs per call)`) +
        "; all figures from one run, alternating windows, on a machine shared with other work",
      pairs,
      mintVsTransfer,
      loneP99,
    };
  } catch (e) {
    opts.log(`  pg comparison failed: ${(e as Error).message}`);
    return notMeasured(`failed: ${(e as Error).message.split("\n")[0]}`);
  } finally {
    await service?.stop();
  }
}
