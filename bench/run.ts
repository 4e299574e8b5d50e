/**
 * `npm run bench` — throughput, latency and memory of the service, each
 * figure a ratio against a baseline measured in the same run (the machine's
 * absolute speed drifts by ±20% between runs; ratios drift far less).
 *
 *   npm run bench                 full run (7 pairs per comparison, ~10 min)
 *   npm run bench -- --quick      short run (3 pairs, shorter windows, ~1.5 min)
 *
 * Flags: --pairs N, --warmup MS, --duration MS, --only mint,transfer,getbalance,auth,secured,metrics,hot,allowances,core,memory,pg,audit,reserve,pg-reserve,watch,nats,batch,pg-batch,
 * --conc 1,16,64, --tsx (run both servers with tsx instead of compiled JS),
 * --no-deadline (send no grpc-timeout), --profile (write a CPU profile of the
 * service and of the empty server per comparison to bench/profiles/),
 * --base DIR (another checkout, e.g. a `git worktree` of main: builds it and
 * adds `<method>_vs_base` rows at c=64, its service against this one in ABBA
 * pairs, both with metrics on, so two commits are compared within one run
 * and under the same load).
 *
 * Method: for each comparison, fresh processes of the empty server and the
 * service are started; runs alternate (ABBA order) between them; each run is
 * a warm-up then a fixed measured window of a closed-loop load from a separate
 * generator process (bench/load-gen.ts). A pair gives one ratio
 * service/baseline; the report gives the median ratio, its min–max, and the
 * medians of the absolute figures for context.
 */
import { execFileSync, fork, spawn, type ChildProcess, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { LoadResult, LoadSpec } from "./load-gen.js";
import { BENCH_DIR, ROOT, prepareLaunch, startServer, type Launch, type ServerProcess } from "./servers.js";
import { runPgComparison, type PgComparison } from "./pg-bench.js";
import { runReserveComparison } from "./reserve-bench.js";
import { runNatsRelayBench, type NatsRelayFigures } from "./nats-relay-bench.js";
import { batchLines, runBatchBench, runPgBatchBench, type BatchBenchFigures, type PgBatchFigures } from "./batch-bench.js";

// ---------------------------------------------------------------- options

interface Options {
  readonly quick: boolean;
  readonly pairs: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly concurrencies: readonly number[];
  readonly only: ReadonlySet<string> | null;
  readonly tsx: boolean;
  readonly deadlineMs: number;
  readonly profile: boolean;
  /** Another checkout (--base DIR) whose service the `*_vs_base` rows compare this one with. */
  readonly baseRoot: string | null;
}

function parseOptions(argv: readonly string[]): Options {
  const quick = argv.includes("--quick");
  const value = (name: string): string | undefined => {
    const i = argv.findIndex((a) => a === name || a.startsWith(name + "="));
    if (i < 0) return undefined;
    const a = argv[i] as string;
    return a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[i + 1];
  };
  const num = (name: string, def: number): number => {
    const v = value(name);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number, got ${v}`);
    return n;
  };
  const only = value("--only");
  const conc = value("--conc");
  return {
    quick,
    pairs: num("--pairs", quick ? 3 : 7),
    warmupMs: num("--warmup", quick ? 250 : 500),
    durationMs: num("--duration", quick ? 600 : 2000),
    concurrencies: conc !== undefined ? conc.split(",").map(Number) : [1, 16, 64],
    only: only !== undefined ? new Set(only.split(",")) : null,
    tsx: argv.includes("--tsx"),
    deadlineMs: argv.includes("--no-deadline") ? 0 : 30_000,
    profile: argv.includes("--profile"),
    baseRoot: value("--base") === undefined ? null : path.resolve(value("--base") as string),
  };
}

// ---------------------------------------------------------------- statistics

function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly q1: number;
  readonly q3: number;
}

function spread(xs: readonly number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), q1: quantile(xs, 0.25), q3: quantile(xs, 0.75) };
}

const round = (x: number, digits = 3): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

// ---------------------------------------------------------------- load generator

/** One persistent generator process, driven over IPC. */
class Generator {
  private readonly child: ChildProcess;
  private pending: { resolve: (r: LoadResult) => void; reject: (e: Error) => void } | null = null;

  constructor() {
    this.child = fork(path.join(BENCH_DIR, "load-gen.ts"), [], { execArgv: ["--import", "tsx"], cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.child.on("message", (m: { result?: LoadResult; error?: string }) => {
      const p = this.pending;
      this.pending = null;
      if (p === null) return;
      if (m.result !== undefined) p.resolve(m.result);
      else p.reject(new Error("load generator: " + (m.error ?? "unknown error")));
    });
    this.child.on("exit", (code) => {
      this.pending?.reject(new Error(`load generator exited (${code})`));
      this.pending = null;
    });
  }

  run(spec: LoadSpec): Promise<LoadResult> {
    if (this.pending !== null) throw new Error("generator busy");
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.child.send(spec);
    });
  }

  close(): void {
    this.child.disconnect();
  }
}

// ---------------------------------------------------------------- comparisons

type Method = "mint" | "transfer" | "getbalance";
const ACCOUNTS = 10_000;
const CONNECTIONS = (c: number): number => Math.min(c, 4);

interface SideSummary {
  /** Median successful calls per second over the runs. */
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly serverCpuPct: number | null;
  /** Median server CPU µs per call. */
  readonly serverCpuUsPerCall: number | null;
  readonly generatorCpuPct: number;
  /** CPU of everything else on the machine during the runs (median), percent of one core. */
  readonly otherCpuPct: number | null;
  readonly errors: number;
  readonly runs: readonly LoadResult[];
}

interface Comparison {
  readonly name: string;
  /** What the ratio divides: `numerator / denominator`. */
  readonly numerator: string;
  readonly denominator: string;
  readonly method: Method;
  readonly concurrency: number;
  readonly connections: number;
  readonly pairs: number;
  /** numerator rps / denominator rps, per pair. */
  readonly throughputRatio: Spread;
  /** numerator p99 / denominator p99, per pair. */
  readonly p99Ratio: Spread;
  readonly p50Ratio: Spread;
  /**
   * Server CPU µs per call, denominator ÷ numerator, per pair: the throughput
   * ratio two CPU-bound servers would show, robust to CPU taken by other
   * processes. Null when /proc is not readable.
   */
  readonly cpuCostRatio: Spread | null;
  readonly base: SideSummary;
  readonly subject: SideSummary;
  readonly errors: number;
  readonly flagged: string[];
}

function summarize(runs: readonly LoadResult[]): SideSummary {
  const cpu = runs.map((r) => r.serverCpuPct).filter((x): x is number => x !== null);
  return {
    rps: median(runs.map((r) => r.rps)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    serverCpuPct: cpu.length > 0 ? median(cpu) : null,
    serverCpuUsPerCall: runs.some((r) => r.serverCpuUsPerCall === null) ? null : median(runs.map((r) => r.serverCpuUsPerCall as number)),
    generatorCpuPct: median(runs.map((r) => r.generatorCpuPct)),
    otherCpuPct: runs.some((r) => r.otherCpuPct === null) ? null : median(runs.map((r) => r.otherCpuPct as number)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    runs,
  };
}

function buildComparison(
  name: string,
  numerator: string,
  denominator: string,
  method: Method,
  concurrency: number,
  baseRuns: LoadResult[],
  subjectRuns: LoadResult[],
): Comparison {
  const pairs = Math.min(baseRuns.length, subjectRuns.length);
  const tr: number[] = [];
  const p99: number[] = [];
  const p50: number[] = [];
  const cost: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const b = baseRuns[i] as LoadResult;
    const s = subjectRuns[i] as LoadResult;
    tr.push(s.rps / b.rps);
    p99.push(s.p99Ms / b.p99Ms);
    p50.push(s.p50Ms / b.p50Ms);
    if (b.serverCpuUsPerCall !== null && s.serverCpuUsPerCall !== null) cost.push(b.serverCpuUsPerCall / s.serverCpuUsPerCall);
  }
  const base = summarize(baseRuns);
  const subject = summarize(subjectRuns);
  const flagged: string[] = [];
  if (base.errors + subject.errors > 0) {
    const kinds: Record<string, number> = {};
    for (const r of [...baseRuns, ...subjectRuns]) for (const [k, n] of Object.entries(r.errorKinds)) kinds[k] = (kinds[k] ?? 0) + n;
    flagged.push(`errors: ${JSON.stringify(kinds)}`);
  }
  if (denominator.startsWith("empty") && base.serverCpuPct !== null && base.serverCpuPct < 85 && concurrency >= 16) {
    const why =
      base.generatorCpuPct >= 90
        ? "the generator was the bottleneck"
        : (base.otherCpuPct ?? 0) >= 20
          ? `other processes used ${(base.otherCpuPct ?? 0).toFixed(0)}% CPU meanwhile`
          : "not saturated";
    flagged.push(`baseline server at ${base.serverCpuPct.toFixed(0)}% CPU (${why}): the ratio flatters the service`);
  }
  return {
    name,
    numerator,
    denominator,
    method,
    concurrency,
    connections: CONNECTIONS(concurrency),
    pairs,
    throughputRatio: spread(tr),
    p99Ratio: spread(p99),
    p50Ratio: spread(p50),
    cpuCostRatio: cost.length === pairs && pairs > 0 ? spread(cost) : null,
    base,
    subject,
    errors: base.errors + subject.errors,
    flagged,
  };
}

interface Ctx {
  readonly opts: Options;
  readonly launch: Launch;
  readonly gen: Generator;
  readonly log: (line: string) => void;
}

function spec(ctx: Ctx, server: ServerProcess, workload: LoadSpec["workload"], concurrency: number, accounts: number): LoadSpec {
  return {
    port: server.port,
    workload,
    concurrency,
    connections: CONNECTIONS(concurrency),
    accounts,
    warmupMs: ctx.opts.warmupMs,
    durationMs: ctx.opts.durationMs,
    serverPid: server.pid,
    deadlineMs: ctx.opts.deadlineMs,
  };
}

async function seed(ctx: Ctx, server: ServerProcess, accounts: number): Promise<void> {
  const r = await ctx.gen.run({ ...spec(ctx, server, "seed", 64, accounts), totalCalls: accounts });
  if (r.errors > 0 || r.ok !== accounts) {
    throw new Error(`seeding ${accounts} accounts failed: ${r.ok} ok, errors ${JSON.stringify(r.errorKinds)}\n${server.tail.join("\n")}`);
  }
}

function profileFlags(ctx: Ctx, label: string): string[] {
  if (!ctx.opts.profile) return [];
  const dir = path.join(BENCH_DIR, "profiles");
  mkdirSync(dir, { recursive: true });
  return ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${label}.cpuprofile`];
}

/**
 * Alternating pairs of the same load on two servers (ABBA: which side goes
 * first alternates, so a drift within a pair cancels out).
 */
async function alternate(
  ctx: Ctx,
  label: string,
  names: readonly [string, string],
  base: ServerProcess,
  subject: ServerProcess,
  method: Method,
  concurrency: number,
): Promise<{ baseRuns: LoadResult[]; svcRuns: LoadResult[] }> {
  const baseRuns: LoadResult[] = [];
  const svcRuns: LoadResult[] = [];
  for (let i = 0; i < ctx.opts.pairs; i++) {
    const order: ["base" | "svc", "base" | "svc"] = i % 2 === 0 ? ["base", "svc"] : ["svc", "base"];
    for (const side of order) {
      const target = side === "base" ? base : subject;
      const r = await ctx.gen.run(spec(ctx, target, method, concurrency, ACCOUNTS));
      (side === "base" ? baseRuns : svcRuns).push(r);
    }
    const b = baseRuns[i] as LoadResult;
    const s = svcRuns[i] as LoadResult;
    ctx.log(
      `  ${label} pair ${i + 1}/${ctx.opts.pairs}: ${names[0]} ${b.rps.toFixed(0)}/s p99 ${b.p99Ms.toFixed(2)}ms, ` +
        `${names[1]} ${s.rps.toFixed(0)}/s p99 ${s.p99Ms.toFixed(2)}ms${s.errors + b.errors > 0 ? ` ERRORS ${JSON.stringify({ ...b.errorKinds, ...s.errorKinds })}` : ""}`,
    );
  }
  return { baseRuns, svcRuns };
}

/**
 * The env that turns metrics on (the metrics listener set, so the edge and
 * every recorder record): the headline rows run so, as operators run the
 * service; `metrics_on_vs_off` keeps the figure without.
 */
const METRICS_ON: Record<string, string> = { MINT_METRICS_LISTEN: "127.0.0.1:0" };

/** Service (metrics on) vs empty server for one method at one concurrency. */
async function compareWithEmpty(ctx: Ctx, method: Method, concurrency: number): Promise<Comparison> {
  const label = `${method}-c${concurrency}`;
  const empty = await startServer("empty", { launch: ctx.launch, nodeFlags: profileFlags(ctx, `empty-${label}`) });
  const service = await startServer("service", { launch: ctx.launch, env: METRICS_ON, nodeFlags: profileFlags(ctx, `service-${label}`) });
  try {
    if (method !== "mint") await seed(ctx, service, ACCOUNTS);
    const { baseRuns, svcRuns } = await alternate(ctx, label, ["empty", "service"], empty, service, method, concurrency);
    return buildComparison(`${method}_vs_empty_c${concurrency}`, "service", "empty server", method, concurrency, baseRuns, svcRuns);
  } finally {
    await Promise.all([empty.stop(), service.stop()]);
  }
}

/**
 * This checkout's service against another's (--base DIR), same method, load
 * and settings (metrics on), ABBA pairs: the CPU-cost ratio (base ÷ this
 * server-CPU per call) above 1 means this commit is cheaper per call.
 */
async function compareWithBase(ctx: Ctx, baseRoot: string, method: Method, concurrency: number): Promise<Comparison> {
  const label = `${method}-vs-base-c${concurrency}`;
  const base = await startServer("service", { launch: ctx.launch, root: baseRoot, env: METRICS_ON, nodeFlags: profileFlags(ctx, `base-${label}`) });
  const service = await startServer("service", { launch: ctx.launch, env: METRICS_ON, nodeFlags: profileFlags(ctx, `service-${label}`) });
  try {
    if (method !== "mint") {
      await seed(ctx, base, ACCOUNTS);
      await seed(ctx, service, ACCOUNTS);
    }
    const { baseRuns, svcRuns } = await alternate(ctx, label, ["base", "this"], base, service, method, concurrency);
    return buildComparison(`${method}_vs_base_c${concurrency}`, "this checkout", `service of ${baseRoot}`, method, concurrency, baseRuns, svcRuns);
  } finally {
    await Promise.all([base.stop(), service.stop()]);
  }
}

/**
 * MintUsdc on the service with metrics on (MINT_METRICS_LISTEN set: the
 * metrics link and every recorder live) against off (nothing records), at one
 * concurrency. The CPU-cost ratio (off ÷ on server-CPU per call) is the cost
 * of recording; scrapes are not part of it (Prometheus scrapes every 15 s or so).
 */
async function compareMetrics(ctx: Ctx, concurrency: number): Promise<Comparison> {
  const label = `metrics-c${concurrency}`;
  const off = await startServer("service", { launch: ctx.launch, nodeFlags: profileFlags(ctx, `metrics-off-${label}`) });
  const on = await startServer("service", {
    launch: ctx.launch,
    env: METRICS_ON,
    nodeFlags: profileFlags(ctx, `metrics-on-${label}`),
  });
  try {
    const { baseRuns, svcRuns } = await alternate(ctx, label, ["off", "on"], off, on, "mint", concurrency);
    return buildComparison(`metrics_on_vs_off_c${concurrency}`, "metrics on", "metrics off", "mint", concurrency, baseRuns, svcRuns);
  } finally {
    await Promise.all([off.stop(), on.stop()]);
  }
}

/**
 * PEM files for the auth comparison, made with openssl in a temp directory:
 * a server certificate, a client CA and one client certificate whose identity
 * is the principal `bench` (minter on every account) of an auth file.
 */
function makeBenchSecrets(): { dir: string; env: Record<string, string>; tls: { ca: string; cert: string; key: string }; authorization: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mint-bench-auth-"));
  const sh = (args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  sh(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=bench-ca", "-days", "2"]);
  const leaf = (name: string, san: string): void => {
    writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    sh(["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
    sh(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.crt`]);
  };
  leaf("server", "IP:127.0.0.1,DNS:localhost");
  leaf("client", "URI:spiffe://bench/minter");
  // The same principal's bearer token, for the row that sends both (a token beside the certificate, as callers behind a mesh do).
  const token = randomBytes(32).toString("base64url");
  const tokenSha256 = createHash("sha256").update(token).digest("hex");
  writeFileSync(
    path.join(dir, "auth.json"),
    JSON.stringify({
      principals: [{ name: "bench", roles: ["minter"], scopes: ["*"], certificate_identities: ["URI:spiffe://bench/minter"], token_sha256: [tokenSha256] }],
    }),
  );
  const f = (n: string): string => path.join(dir, n);
  return {
    dir,
    env: { MINT_TLS_CERT: f("server.crt"), MINT_TLS_KEY: f("server.key"), MINT_TLS_CLIENT_CA: f("ca.crt"), MINT_AUTH_FILE: f("auth.json") },
    tls: { ca: f("ca.crt"), cert: f("client.crt"), key: f("client.key") },
    authorization: `Bearer ${token}`,
  };
}

/**
 * MintUsdc with mutual TLS + auth on (a client certificate naming a principal
 * with the minter role) against the same service with both off (plaintext,
 * every caller `local`). Connections are long-lived, as real callers keep
 * them: the figure is the per-call cost (record encryption, the auth link),
 * not the handshake.
 */
async function compareAuth(ctx: Ctx, concurrency: number): Promise<Comparison> {
  const secrets = makeBenchSecrets();
  const label = `auth-c${concurrency}`;
  const open = await startServer("service", { launch: ctx.launch, nodeFlags: profileFlags(ctx, `service-open-${label}`) });
  const secured = await startServer("service", { launch: ctx.launch, env: secrets.env, nodeFlags: profileFlags(ctx, `service-auth-${label}`) });
  try {
    const offRuns: LoadResult[] = [];
    const onRuns: LoadResult[] = [];
    for (let i = 0; i < ctx.opts.pairs; i++) {
      const order: ["off" | "on", "off" | "on"] = i % 2 === 0 ? ["off", "on"] : ["on", "off"];
      for (const side of order) {
        const s = side === "off" ? spec(ctx, open, "mint", concurrency, ACCOUNTS) : { ...spec(ctx, secured, "mint", concurrency, ACCOUNTS), tls: secrets.tls };
        const r = await ctx.gen.run(s);
        (side === "off" ? offRuns : onRuns).push(r);
      }
      const b = offRuns[i] as LoadResult;
      const a = onRuns[i] as LoadResult;
      ctx.log(
        `  ${label} pair ${i + 1}/${ctx.opts.pairs}: off ${b.rps.toFixed(0)}/s ${fmtUs(b.serverCpuUsPerCall)} µs/call, ` +
          `mTLS+auth ${a.rps.toFixed(0)}/s ${fmtUs(a.serverCpuUsPerCall)} µs/call${a.errors + b.errors > 0 ? ` ERRORS ${JSON.stringify({ ...b.errorKinds, ...a.errorKinds })}` : ""}`,
      );
    }
    return buildComparison(`mint_auth_vs_open_c${concurrency}`, "mTLS + auth", "plaintext, no auth", "mint", concurrency, offRuns, onRuns);
  } finally {
    await Promise.all([open.stop(), secured.stop()]);
    rmSync(secrets.dir, { recursive: true, force: true });
  }
}

/**
 * MintUsdc on the service as a locked-down deployment runs it — mutual TLS,
 * a bearer token on every call (the same principal as the certificate),
 * metrics on — against the empty server's plaintext handler: what the
 * service costs per call over the cheapest gRPC answer, transport security
 * included.
 */
async function compareSecuredWithEmpty(ctx: Ctx, concurrency: number): Promise<Comparison> {
  const secrets = makeBenchSecrets();
  const label = `secured-c${concurrency}`;
  const empty = await startServer("empty", { launch: ctx.launch, nodeFlags: profileFlags(ctx, `empty-${label}`) });
  const secured = await startServer("service", { launch: ctx.launch, env: { ...secrets.env, ...METRICS_ON }, nodeFlags: profileFlags(ctx, `service-${label}`) });
  try {
    const baseRuns: LoadResult[] = [];
    const svcRuns: LoadResult[] = [];
    for (let i = 0; i < ctx.opts.pairs; i++) {
      const order: ["base" | "svc", "base" | "svc"] = i % 2 === 0 ? ["base", "svc"] : ["svc", "base"];
      for (const side of order) {
        const s =
          side === "base"
            ? spec(ctx, empty, "mint", concurrency, ACCOUNTS)
            : { ...spec(ctx, secured, "mint", concurrency, ACCOUNTS), tls: secrets.tls, authorization: secrets.authorization };
        (side === "base" ? baseRuns : svcRuns).push(await ctx.gen.run(s));
      }
      const b = baseRuns[i] as LoadResult;
      const a = svcRuns[i] as LoadResult;
      ctx.log(
        `  ${label} pair ${i + 1}/${ctx.opts.pairs}: empty ${b.rps.toFixed(0)}/s ${fmtUs(b.serverCpuUsPerCall)} µs/call, ` +
          `mTLS+token ${a.rps.toFixed(0)}/s ${fmtUs(a.serverCpuUsPerCall)} µs/call${a.errors + b.errors > 0 ? ` ERRORS ${JSON.stringify({ ...b.errorKinds, ...a.errorKinds })}` : ""}`,
      );
    }
    return buildComparison(`mint_secured_vs_empty_c${concurrency}`, "service, mTLS + token", "empty server", "mint", concurrency, baseRuns, svcRuns);
  } finally {
    await Promise.all([empty.stop(), secured.stop()]);
    rmSync(secrets.dir, { recursive: true, force: true });
  }
}

/**
 * The audit journal's cost. Two services that differ only in
 * MINT_AUDIT_JOURNAL (on vs off), same method and concurrency, ABBA pairs.
 * `store` "memory": MintUsdc at c=64 (the CPU-cost ratio is the figure);
 * a postgres URL prefix: transfers at c=32 with pool 10, each service on its
 * own fresh database (`<prefix>_on`, `<prefix>_off`).
 */
async function compareAudit(ctx: Ctx, store: "memory" | "postgres"): Promise<Comparison> {
  const method: Method = store === "memory" ? "mint" : "transfer";
  const concurrency = store === "memory" ? 64 : 32;
  const envOf = (on: boolean): Record<string, string> => {
    if (store === "memory") return { MINT_AUDIT_JOURNAL: on ? "on" : "off" };
    const base = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/usdc_bench";
    const u = new URL(base);
    const name = `${u.pathname.replace(/^\//, "")}_audit_${on ? "on" : "off"}`;
    const admin = new URL(base);
    admin.pathname = "/postgres";
    const reset = spawnSync("psql", [admin.toString(), "-v", "ON_ERROR_STOP=1", "-qc", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, "-qc", `CREATE DATABASE ${name}`], { encoding: "utf8" });
    if (reset.status !== 0) throw new Error(`cannot reset database ${name}: ${(reset.stderr || reset.stdout).trim().split("\n")[0]}`);
    u.pathname = `/${name}`;
    return { MINT_AUDIT_JOURNAL: on ? "on" : "off", MINT_STORE: u.toString(), MINT_PG_POOL_SIZE: "10" };
  };
  const label = `audit-${store}`;
  const off = await startServer("service", { launch: ctx.launch, env: envOf(false), startTimeoutMs: 60_000, nodeFlags: profileFlags(ctx, `${label}-off`) });
  const on = await startServer("service", { launch: ctx.launch, env: envOf(true), startTimeoutMs: 60_000, nodeFlags: profileFlags(ctx, `${label}-on`) });
  try {
    if (method !== "mint") {
      // One load at a time: the generator runs one spec at once.
      await seed(ctx, off, ACCOUNTS);
      await seed(ctx, on, ACCOUNTS);
    }
    const offRuns: LoadResult[] = [];
    const onRuns: LoadResult[] = [];
    for (let i = 0; i < ctx.opts.pairs; i++) {
      for (const side of i % 2 === 0 ? ["off", "on"] : ["on", "off"]) {
        const r = await ctx.gen.run(spec(ctx, side === "off" ? off : on, method, concurrency, ACCOUNTS));
        (side === "off" ? offRuns : onRuns).push(r);
      }
      const b = offRuns[i] as LoadResult;
      const x = onRuns[i] as LoadResult;
      ctx.log(
        `  ${label} pair ${i + 1}/${ctx.opts.pairs}: journal off ${b.rps.toFixed(0)}/s (${fmtUs(b.serverCpuUsPerCall)} µs CPU/call), ` +
          `on ${x.rps.toFixed(0)}/s (${fmtUs(x.serverCpuUsPerCall)} µs CPU/call)${b.errors + x.errors > 0 ? ` ERRORS ${JSON.stringify({ ...b.errorKinds, ...x.errorKinds })}` : ""}`,
      );
    }
    return buildComparison(`audit_${method}_${store}_c${concurrency}`, "journal on", "journal off", method, concurrency, offRuns, onRuns);
  } finally {
    await Promise.all([off.stop(), on.stop()]);
  }
}

/** Hot account (two accounts) vs uniform (many accounts), transfers on the service at c=64. */
async function compareHot(ctx: Ctx, concurrency: number): Promise<Comparison> {
  const service = await startServer("service", { launch: ctx.launch, nodeFlags: profileFlags(ctx, `service-hot-c${concurrency}`) });
  try {
    await seed(ctx, service, ACCOUNTS);
    const uniform: LoadResult[] = [];
    const hot: LoadResult[] = [];
    for (let i = 0; i < ctx.opts.pairs; i++) {
      const order: ["u" | "h", "u" | "h"] = i % 2 === 0 ? ["u", "h"] : ["h", "u"];
      for (const side of order) {
        const r = await ctx.gen.run(spec(ctx, service, "transfer", concurrency, side === "u" ? ACCOUNTS : 2));
        (side === "u" ? uniform : hot).push(r);
      }
      const u = uniform[i] as LoadResult;
      const h = hot[i] as LoadResult;
      ctx.log(`  hot-c${concurrency} pair ${i + 1}/${ctx.opts.pairs}: uniform ${u.rps.toFixed(0)}/s p99 ${u.p99Ms.toFixed(2)}ms, hot ${h.rps.toFixed(0)}/s p99 ${h.p99Ms.toFixed(2)}ms`);
    }
    return buildComparison(`hot_vs_uniform_c${concurrency}`, "hot (2 accounts)", `uniform (${ACCOUNTS} accounts)`, "transfer", concurrency, uniform, hot);
  } finally {
    await service.stop();
  }
}

/**
 * Minter allowances' cost: MintUsdc on a service with MINT_ALLOWANCES=true
 * (every mint takes from the caller's allowance, set high enough never to
 * refuse) against one with allowances off, ABBA, at one concurrency. The
 * CPU-cost ratio is off-CPU-per-call ÷ on-CPU-per-call (1.0 = no extra cost).
 */
async function compareAllowances(ctx: Ctx, concurrency: number): Promise<Comparison> {
  const off = await startServer("service", { launch: ctx.launch });
  const on = await startServer("service", { launch: ctx.launch, env: { MINT_ALLOWANCES: "true" } });
  try {
    const grpc = await import("@grpc/grpc-js");
    const { MintServiceClient } = await import("../gen/usdc/mint/v1/mint.js");
    const client = new MintServiceClient(`127.0.0.1:${on.port}`, grpc.credentials.createInsecure());
    try {
      // The load generator names no principal: every mint is `local`'s.
      await new Promise<void>((resolve, reject) =>
        client.setMinterAllowance({ principal: "local", amount: "99999999999999999999999999999999" }, (err) => (err ? reject(err) : resolve())),
      );
    } finally {
      client.close();
    }
    const offRuns: LoadResult[] = [];
    const onRuns: LoadResult[] = [];
    for (let i = 0; i < ctx.opts.pairs; i++) {
      const order: ["off" | "on", "off" | "on"] = i % 2 === 0 ? ["off", "on"] : ["on", "off"];
      for (const side of order) {
        const r = await ctx.gen.run(spec(ctx, side === "off" ? off : on, "mint", concurrency, ACCOUNTS));
        (side === "off" ? offRuns : onRuns).push(r);
      }
      const a = offRuns[i] as LoadResult;
      const b = onRuns[i] as LoadResult;
      ctx.log(`  allowances-c${concurrency} pair ${i + 1}/${ctx.opts.pairs}: off ${a.rps.toFixed(0)}/s ${a.serverCpuUsPerCall?.toFixed(1)}µs, on ${b.rps.toFixed(0)}/s ${b.serverCpuUsPerCall?.toFixed(1)}µs`);
    }
    return buildComparison(`mint_allowances_on_vs_off_c${concurrency}`, "allowances on", "allowances off", "mint", concurrency, offRuns, onRuns);
  } finally {
    await off.stop();
    await on.stop();
  }
}

// ---------------------------------------------------------------- child probes (core, memory)

function runChild(args: string[], timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const last = out.trim().split("\n").pop() ?? "";
      if (code !== 0) return reject(new Error(`${path.basename(args[args.length - 3] ?? "")} exited ${code}: ${err.trim().split("\n").slice(0, 8).join("\n")}`));
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`no JSON from ${args.join(" ")}: ${out}${err}`));
      }
    });
  });
}

async function coreFigures(ctx: Ctx): Promise<Record<string, unknown> | { error: string }> {
  const needed = ["src/domain/mint-core.ts", "src/adapters/memory/memory-ledger-store.ts", "src/adapters/memory/memory-idempotency-store.ts", "src/adapters/memory/memory-rate-limiter.ts"];
  const missing = needed.filter((f) => !existsSync(path.join(ROOT, f)));
  if (missing.length > 0) return { error: `not measured: missing ${missing.join(", ")}` };
  const ms = ctx.opts.quick ? 250 : 1000;
  const repeats = ctx.opts.quick ? 2 : 5;
  try {
    return (await runChild(["--import", "tsx", path.join(BENCH_DIR, "core-bench.ts"), String(ms), String(repeats)], 300_000)) as Record<string, unknown>;
  } catch (e) {
    return { error: (e as Error).message };
  }
}

interface MemoryFigureLite {
  readonly entries: number;
  readonly bytesPerEntry: number;
  readonly returnsWithin10Pct: boolean;
  readonly afterExpiryVsBaseline: number;
  readonly residualOfGrowth: number;
  readonly [k: string]: unknown;
}

async function memoryFigures(ctx: Ctx): Promise<Record<string, MemoryFigureLite | { error: string }>> {
  const counts = ctx.opts.quick ? [100_000] : [100_000, 1_000_000];
  const out: Record<string, MemoryFigureLite | { error: string }> = {};
  const probe = async (name: string, args: string[]): Promise<void> => {
    try {
      out[name] = (await runChild(["--expose-gc", "--max-old-space-size=8192", "--import", "tsx", path.join(BENCH_DIR, "memory-probe.ts"), ...args], 300_000)) as MemoryFigureLite;
      const f = out[name] as MemoryFigureLite;
      ctx.log(`  ${name}: ${f.bytesPerEntry.toFixed(0)} B/entry, after expiry ${(f.afterExpiryVsBaseline * 100).toFixed(1)}% vs baseline`);
    } catch (e) {
      out[name] = { error: (e as Error).message };
      ctx.log(`  ${name}: ${(e as Error).message}`);
    }
  };
  for (const n of counts) {
    // One mint per account, and ten (a full ring at the default limit of 10): the worst case.
    await probe(`limiter_${n}_1mint`, ["limiter", String(n), "1"]);
    await probe(`limiter_${n}_10mints`, ["limiter", String(n), "10"]);
    await probe(`idempotency_${n}`, ["idempotency", String(n)]);
  }
  return out;
}

// ---------------------------------------------------------------- report

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((x) => round(x, 2)),
  };
}

function fmtRatio(s: Spread): string {
  return `${s.median.toFixed(2)} [${s.min.toFixed(2)}–${s.max.toFixed(2)}]`;
}

function fmtN(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "—";
}

function fmtUs(x: number | null): string {
  return x === null || !Number.isFinite(x) ? "?" : x.toFixed(0);
}

function fmtMs(x: number): string {
  return Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : "—";
}

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r, ri) => {
    const line = r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
    return ri === 0 ? line + "\n" + widths.map((w) => "-".repeat(w)).join("  ") : line;
  }).join("\n");
}

function comparisonTable(cs: readonly Comparison[]): string {
  const rows = [["comparison", "c", "pairs", "req/s ratio [min–max]", "p99 ratio [min–max]", "CPU-cost ratio", "base req/s", "svc req/s", "base p50/p99 ms", "svc p50/p99 ms", "CPU% base/svc/gen/other", "errors"]];
  for (const c of cs) {
    rows.push([
      c.name.replace(/_c\d+$/, ""),
      String(c.concurrency),
      String(c.pairs),
      fmtRatio(c.throughputRatio),
      fmtRatio(c.p99Ratio),
      c.cpuCostRatio === null ? "—" : `${c.cpuCostRatio.median.toFixed(2)} (${fmtUs(c.base.serverCpuUsPerCall)}/${fmtUs(c.subject.serverCpuUsPerCall)} µs)`,
      fmtN(c.base.rps),
      fmtN(c.subject.rps),
      `${fmtMs(c.base.p50Ms)}/${fmtMs(c.base.p99Ms)}`,
      `${fmtMs(c.subject.p50Ms)}/${fmtMs(c.subject.p99Ms)}`,
      [c.base.serverCpuPct, c.subject.serverCpuPct, median([c.base.generatorCpuPct, c.subject.generatorCpuPct]), median([c.base.otherCpuPct ?? NaN, c.subject.otherCpuPct ?? NaN])]
        .map((x) => (x === null || !Number.isFinite(x) ? "?" : x.toFixed(0)))
        .join("/"),
      c.errors > 0 ? `${c.errors} !` : "0",
    ]);
  }
  return table(rows);
}

function targetLine(label: string, value: number | null | undefined, target: string, pass: boolean | null): string {
  const v = value === null || value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(2);
  const verdict = pass === null ? "not measured" : pass ? "meets" : "MISSES";
  return `  ${label.padEnd(34)} ${v.padStart(8)}   target ${target.padEnd(8)} ${verdict}`;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const t0 = performance.now();
  const log = (line: string): void => void process.stderr.write(line + "\n");
  const want = (part: string): boolean => opts.only === null || opts.only.has(part);
  const m = machine();
  log(`bench: ${opts.quick ? "quick" : "full"} run, ${opts.pairs} pairs, warm-up ${opts.warmupMs} ms + ${opts.durationMs} ms per run, concurrency ${opts.concurrencies.join("/")}`);
  log(`machine: ${m.cores} × ${m.cpuModel}, ${m.memoryGiB} GiB, node ${m.node}, load ${(m.loadAverageAtStart as number[]).join(" ")}`);

  const launch = prepareLaunch(opts.tsx, log, opts.baseRoot ?? undefined);
  log(`servers run as: ${launch.mode} (${launch.note})`);
  const gen = new Generator();
  const ctx: Ctx = { opts, launch, gen, log };

  const comparisons: Comparison[] = [];
  const failures: string[] = [];
  try {
    for (const method of ["mint", "transfer", "getbalance"] as const) {
      if (!want(method)) continue;
      for (const c of opts.concurrencies) {
        log(`${method} c=${c}: empty server vs service`);
        try {
          comparisons.push(await compareWithEmpty(ctx, method, c));
        } catch (e) {
          failures.push(`${method} c=${c}: ${(e as Error).message}`);
          log(`  FAILED: ${(e as Error).message}`);
        }
      }
    }
    if (opts.baseRoot !== null) {
      for (const method of ["mint", "transfer", "getbalance"] as const) {
        if (!want(method)) continue;
        log(`${method} c=64: the service of ${opts.baseRoot} vs this one`);
        try {
          comparisons.push(await compareWithBase(ctx, opts.baseRoot, method, 64));
        } catch (e) {
          failures.push(`${method} vs base: ${(e as Error).message}`);
          log(`  FAILED: ${(e as Error).message}`);
        }
      }
    }
    if (want("metrics")) {
      for (const c of [64]) {
        log(`mint c=${c}: metrics off vs on`);
        try {
          comparisons.push(await compareMetrics(ctx, c));
        } catch (e) {
          failures.push(`metrics c=${c}: ${(e as Error).message}`);
          log(`  FAILED: ${(e as Error).message}`);
        }
      }
    }
    if (want("auth")) {
      for (const c of opts.concurrencies) {
        log(`mint c=${c}: mTLS + auth vs plaintext without auth`);
        try {
          comparisons.push(await compareAuth(ctx, c));
        } catch (e) {
          failures.push(`auth c=${c}: ${(e as Error).message}`);
          log(`  FAILED: ${(e as Error).message}`);
        }
      }
    }
    if (want("secured")) {
      log("mint c=64: service with mTLS + token + metrics vs empty server");
      try {
        comparisons.push(await compareSecuredWithEmpty(ctx, 64));
      } catch (e) {
        failures.push(`secured: ${(e as Error).message}`);
        log(`  FAILED: ${(e as Error).message}`);
      }
    }
    if (want("allowances")) {
      log("mint c=64: MINT_ALLOWANCES on vs off");
      try {
        comparisons.push(await compareAllowances(ctx, 64));
      } catch (e) {
        failures.push(`allowances: ${(e as Error).message}`);
        log(`  FAILED: ${(e as Error).message}`);
      }
    }
    if (want("hot")) {
      log("transfers c=64: hot account vs uniform");
      try {
        comparisons.push(await compareHot(ctx, 64));
      } catch (e) {
        failures.push(`hot: ${(e as Error).message}`);
        log(`  FAILED: ${(e as Error).message}`);
      }
    }
    if (want("audit")) {
      for (const store of ["memory", "postgres"] as const) {
        log(`audit journal on vs off (${store})`);
        try {
          comparisons.push(await compareAudit(ctx, store));
        } catch (e) {
          failures.push(`audit ${store}: ${(e as Error).message}`);
          log(`  FAILED: ${(e as Error).message}`);
        }
      }
    }
    // The reserve check on a mint, on against off (memory, then PostgreSQL).
    for (const store of ["memory", "postgres"] as const) {
      const row = store === "memory" ? "reserve" : "pg-reserve";
      if (!want(row)) continue;
      const c = 64;
      log(`mint c=${c} on ${store}: reserve check on vs off`);
      try {
        const runs = await runReserveComparison({
          store,
          launch,
          pairs: opts.pairs,
          spec: (server) => spec(ctx, server, "mint", c, ACCOUNTS),
          load: (s) => gen.run(s),
          log,
        });
        comparisons.push(buildComparison(`mint_reserve_on_vs_off_${store}_c${c}`, "reserve on", "reserve off", "mint", c, runs.off, runs.on));
      } catch (e) {
        failures.push(`${row}: ${(e as Error).message}`);
        log(`  FAILED: ${(e as Error).message}`);
      }
    }
  } finally {
    gen.close();
  }

  let core: Record<string, unknown> | { error: string } | null = null;
  if (want("core")) {
    log("in-process core (MintCore + memory adapters, no gRPC)");
    core = await coreFigures(ctx);
  }
  let memory: Record<string, MemoryFigureLite | { error: string }> | null = null;
  if (want("memory")) {
    log("memory per entry (limiter, idempotency store)");
    memory = await memoryFigures(ctx);
  }
  let watch: Record<string, unknown> | { error: string } | null = null;
  if (want("watch")) {
    log("WatchLedger: 1,000 idle watchers; one consumer at the full MintUsdc rate (bench/watch-bench.ts)");
    try {
      watch = (await runChild(["--import", "tsx", path.join(BENCH_DIR, "watch-bench.ts"), "1000", opts.quick ? "3" : "10", "64"], 600_000)) as Record<string, unknown>;
    } catch (e) {
      watch = { error: (e as Error).message };
    }
  }
  let pg: PgComparison | null = null;
  if (want("pg")) {
    log("PostgreSQL store: service transfers vs pgbench");
    const pgGen = new Generator();
    try {
      pg = await runPgComparison({
        quick: opts.quick,
        pairs: opts.quick ? 2 : Math.min(opts.pairs, 5),
        launch,
        log,
        deadlineMs: opts.deadlineMs,
        load: (s) => pgGen.run(s),
      });
    } finally {
      pgGen.close();
    }
  }

  let nats: NatsRelayFigures | { error: string } | null = null;
  if (want("nats")) {
    log("JetStream relay: backlog published to NATS JetStream, and live lag");
    try {
      nats = await runNatsRelayBench({ events: opts.quick ? 50_000 : 200_000, runs: opts.quick ? 2 : 3, log });
    } catch (e) {
      nats = { error: (e as Error).message };
      failures.push(`nats: ${(e as Error).message}`);
      log(`  FAILED: ${(e as Error).message}`);
    }
  }
  const natsOk = nats !== null && !("error" in nats) ? nats : null;
  let batch: BatchBenchFigures | { error: string } | null = null;
  if (want("batch")) {
    log("BatchMint / BatchTransfer, batches of 1,000, memory store (bench/batch-bench.ts)");
    try {
      batch = await runBatchBench({ launch, windowItems: opts.quick ? 50_000 : 200_000, inFlight: 2, log });
    } catch (e) {
      batch = { error: (e as Error).message };
      failures.push(`batch: ${(e as Error).message}`);
    }
  }
  let pgBatch: PgBatchFigures | { error: string } | null = null;
  if (want("pg-batch")) {
    log("BatchTransfer vs unary Transfer on PostgreSQL, group commit (bench/batch-bench.ts)");
    try {
      pgBatch = await runPgBatchBench({ launch, windowItems: opts.quick ? 10_000 : 30_000, unaryItems: opts.quick ? 3_000 : 10_000, pairs: opts.quick ? 3 : 5, inFlight: 2, log });
    } catch (e) {
      pgBatch = { error: (e as Error).message };
      failures.push(`pg-batch: ${(e as Error).message}`);
    }
  }

  // ----- headline keys
  const find = (name: string): Comparison | undefined => comparisons.find((c) => c.name === name);
  const at64 = (method: string): Comparison | undefined => find(`${method}_vs_empty_c64`);
  const ratio = (c: Comparison | undefined): number | null => (c === undefined ? null : round(c.throughputRatio.median));
  const p99r = (c: Comparison | undefined): number | null => (c === undefined ? null : round(c.p99Ratio.median));
  const cost = (c: Comparison | undefined): number | null => (c === undefined || c.cpuCostRatio === null ? null : round(c.cpuCostRatio.median));
  const mem = (name: string): MemoryFigureLite | null => {
    const f = memory?.[name];
    return f !== undefined && !("error" in f && typeof f.error === "string") ? (f as MemoryFigureLite) : null;
  };
  const biggest = opts.quick ? 100_000 : 1_000_000;
  const limiterWorst = mem(`limiter_${biggest}_10mints`);
  const idem = mem(`idempotency_${biggest}`);
  const hot = find("hot_vs_uniform_c64");
  const metricsCost = find("metrics_on_vs_off_c64");

  const report = {
    mint_vs_empty: ratio(at64("mint")),
    transfer_vs_empty: ratio(at64("transfer")),
    getbalance_vs_empty: ratio(at64("getbalance")),
    hot_vs_uniform: ratio(hot),
    mint_reserve_on_vs_off_memory: ratio(find("mint_reserve_on_vs_off_memory_c64")),
    mint_reserve_on_vs_off_memory_cpu_cost: cost(find("mint_reserve_on_vs_off_memory_c64")),
    mint_reserve_on_vs_off_postgres: ratio(find("mint_reserve_on_vs_off_postgres_c64")),
    mint_reserve_on_vs_off_postgres_cpu_cost: cost(find("mint_reserve_on_vs_off_postgres_c64")),
    mint_p99_vs_empty: p99r(at64("mint")),
    transfer_p99_vs_empty: p99r(at64("transfer")),
    getbalance_p99_vs_empty: p99r(at64("getbalance")),
    mint_cpu_cost_vs_empty: cost(at64("mint")),
    transfer_cpu_cost_vs_empty: cost(at64("transfer")),
    getbalance_cpu_cost_vs_empty: cost(at64("getbalance")),
    mint_secured_cpu_cost_vs_empty: cost(find("mint_secured_vs_empty_c64")),
    limiter_bytes_per_account: limiterWorst === null ? null : round(limiterWorst.bytesPerEntry, 1),
    idempotency_bytes_per_key: idem === null ? null : round(idem.bytesPerEntry, 1),
    limiter_heap_returns: limiterWorst === null ? null : limiterWorst.returnsWithin10Pct,
    idempotency_heap_returns: idem === null ? null : idem.returnsWithin10Pct,
    pg_transfer_vs_pgbench: pg === null || pg.ratio === null ? null : round(pg.ratio),
    audit_pg_transfer_on_vs_off: ratio(find("audit_transfer_postgres_c32")),
    audit_mint_memory_cpu_cost_on_vs_off: cost(find("audit_mint_memory_c64")),
    mint_cpu_cost_metrics_on_vs_off: cost(metricsCost),
    mint_allowances_on_vs_off: ratio(find("mint_allowances_on_vs_off_c64")),
    mint_allowances_cpu_cost_on_vs_off: cost(find("mint_allowances_on_vs_off_c64")),
    nats_relay_events_per_s: natsOk?.eventsPerSecond ?? null,
    nats_relay_cpu_us_per_event: natsOk?.cpuUsPerEvent ?? null,
    nats_relay: nats,
    batch,
    pg_batch_transfer_vs_unary: pgBatch === null || "error" in pgBatch ? null : pgBatch.ratio,
    pg_batch: pgBatch,
    notes: {
      headline:
        "*_vs_empty: median over pairs of service req/s ÷ empty-server req/s at concurrency 64 (the target's point); *_p99_vs_empty: median of per-pair p99 ratios at c=64; " +
        "the service runs with metrics on in every *_vs_empty row (MINT_METRICS_LISTEN set, as operators run it); mint_cpu_cost_metrics_on_vs_off is the figure without; " +
        "mint_secured_cpu_cost_vs_empty: the service with mutual TLS, a bearer token per call and metrics against the plaintext empty server; " +
        "*_cpu_cost_vs_empty: median of per-pair (empty-server CPU µs per call ÷ service CPU µs per call) at c=64, read from /proc: the throughput ratio if both were CPU-bound, and far less moved by other processes on the machine; " +
        "hot_vs_uniform: transfers between 2 accounts ÷ between 10,000 accounts, on the service, c=64; " +
        "mint_cpu_cost_metrics_on_vs_off: MintUsdc server-CPU µs per call with MINT_METRICS_LISTEN empty ÷ set, c=64 (the cost of recording metrics); " +
        `limiter_bytes_per_account: default limit 10 with a full ring (10 mints per account), ${biggest.toLocaleString("en-US")} accounts; ` +
        `idempotency_bytes_per_key: ${biggest.toLocaleString("en-US")} completed mint keys, the MintRecord itself excluded (the ledger holds it)`,
      generator:
        `all end-to-end figures: bench/load-gen.ts — one node process sending pre-encoded gRPC frames over a minimal HTTP/2 client on a TCP socket (bench/h2-raw.ts), closed loop, ` +
        "min(c,4) HTTP/2 connections, unique idempotency key per call, grpc-status read from trailers (non-zero = error)" +
        (opts.deadlineMs > 0 ? `, grpc-timeout ${opts.deadlineMs} ms on every call` : ", no grpc-timeout") +
        "; h2load not used (it ignores grpc-status)",
      pg: pg?.note ?? "not run",
    },
    targets: {
      mint_vs_empty: ">= 0.95 at c=64",
      transfer_vs_empty: ">= 0.90 at c=64",
      p99_vs_empty: "<= 1.5",
      cpu_cost_vs_empty: "MintUsdc >= 0.70, Transfer >= 0.70, GetBalance >= 0.90, MintUsdc with mTLS + token >= 0.65 at c=64",
      hot_vs_uniform: ">= 0.8",
      mint_cpu_cost_metrics_on_vs_off: ">= 0.97",
      limiter_bytes_per_account: "<= 300",
      idempotency_bytes_per_key: "<= 1024",
      heap_after_ttl: "within 10% of baseline",
      nats_relay_events_per_s: ">= 20000 (backlog, pipelined windows)",
    },
    run: {
      mode: opts.quick ? "quick" : "full",
      pairs: opts.pairs,
      warmupMs: opts.warmupMs,
      durationMs: opts.durationMs,
      concurrencies: opts.concurrencies,
      accounts: ACCOUNTS,
      servers: launch,
      deadlineMs: opts.deadlineMs,
      startedAt: new Date(Date.now() - (performance.now() - t0)).toISOString(),
      seconds: 0,
      machine: { ...m, loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)) },
      failures,
    },
    comparisons: comparisons.map((c) => ({
      name: c.name,
      ratio_of: `${c.numerator} / ${c.denominator}`,
      method: c.method,
      concurrency: c.concurrency,
      connections: c.connections,
      pairs: c.pairs,
      throughput_ratio: mapSpread(c.throughputRatio),
      p99_ratio: mapSpread(c.p99Ratio),
      p50_ratio: mapSpread(c.p50Ratio),
      cpu_cost_ratio: c.cpuCostRatio === null ? null : mapSpread(c.cpuCostRatio),
      [sideKey(c.denominator)]: side(c.base),
      [sideKey(c.numerator)]: side(c.subject),
      errors: c.errors,
      flagged: c.flagged,
      generator: "load-gen (h2-raw, pre-encoded frames)",
    })),
    core,
    memory,
    watch,
    pg,
  };
  report.run.seconds = round((performance.now() - t0) / 1000, 1);
  writeFileSync(path.join(BENCH_DIR, "report.json"), JSON.stringify(report, null, 2) + "\n");

  // ----- stdout: the readable table
  const out: string[] = [];
  out.push(`usdc-mint bench (${opts.quick ? "quick" : "full"}): ${m.cores} × ${m.cpuModel}, ${m.memoryGiB} GiB, node ${m.node}, servers as ${launch.mode}, ${report.run.seconds} s`);
  out.push(`each row: ${opts.pairs} alternating pairs of ${opts.warmupMs} ms warm-up + ${opts.durationMs} ms measured; ratio = service ÷ baseline per pair, median [min–max]; absolute figures are medians`);
  out.push("CPU-cost ratio = baseline ÷ service server-CPU µs per call (the req/s ratio if both were CPU-bound; robust to other load on the machine)");
  out.push("");
  out.push(comparisonTable(comparisons));
  const flaggedAll = comparisons.filter((c) => c.flagged.length > 0);
  for (const c of flaggedAll) out.push(`  ! ${c.name}: ${c.flagged.join("; ")}`);
  out.push("");
  if (core !== null) {
    if ("error" in core && typeof core.error === "string") out.push(`in-process core: ${core.error}`);
    else {
      const f = (k: string): string => {
        const x = (core as Record<string, { opsPerSec?: number; usPerOp?: number }>)[k];
        return x?.opsPerSec === undefined ? "—" : `${fmtN(x.opsPerSec)}/s (${(x.usPerOp as number).toFixed(1)} µs)`;
      };
      const c = core as Record<string, number>;
      out.push("in-process core (MintCore + memory adapters, no gRPC), median ops/s (µs per op):");
      out.push(`  mint c=1 ${f("mint_c1")}   mint c=64 ${f("mint_c64")}   getBalance c=64 ${f("getbalance_c64")}`);
      out.push(`  transfer c=1 ${f("transfer_c1")}   transfer c=64 ${f("transfer_c64")}   transfer hot c=64 ${f("transfer_hot_c64")}`);
      out.push(`  lock path: 1 account ${f("lock_one_account")}, 2 accounts ${f("lock_two_accounts")}, 1 account + deadline timer ${f("lock_one_account_with_deadline")}, 64 waiters on 1 account ${f("lock_hot_c64")}`);
      out.push(`  lock share of an uncontended call: mint ${((c.lock_share_of_mint ?? NaN) * 100).toFixed(0)}%, transfer ${((c.lock_share_of_transfer ?? NaN) * 100).toFixed(0)}%`);
    }
    out.push("");
  }
  if (memory !== null) {
    const rows = [["memory", "entries", "bytes/entry", "heap after expiry vs baseline", "growth still held", "back within 10%"]];
    for (const [name, f] of Object.entries(memory)) {
      if ("error" in f && typeof f.error === "string") rows.push([name, "—", "error", f.error.slice(0, 60), "", ""]);
      else {
        const g = f as MemoryFigureLite;
        rows.push([name, fmtN(g.entries), g.bytesPerEntry.toFixed(0), `${(g.afterExpiryVsBaseline * 100).toFixed(1)}%`, `${(g.residualOfGrowth * 100).toFixed(1)}%`, g.returnsWithin10Pct ? "yes" : "NO"]);
      }
    }
    out.push(table(rows));
    out.push("");
  }
  if (pg !== null) {
    out.push(`PostgreSQL: ${pg.note}`);
    if (pg.ratio !== null) {
      out.push(
        `  service ${fmtN(pg.service.rps)} transfers/s (p50 ${fmtMs(pg.service.p50Ms)} ms, p99 ${fmtMs(pg.service.p99Ms)} ms) vs pgbench ${fmtN(pg.pgbench.tps)} tps (avg ${fmtMs(pg.pgbench.latencyMs)} ms), ` +
          `${pg.clients} database clients each: ratio ${fmtRatio(pg.ratioSpread as Spread)}`,
      );
    }
    out.push("");
  }
  out.push("targets (c=64):");
  const t = report;
  out.push(targetLine("MintUsdc req/s vs empty", t.mint_vs_empty, ">= 0.95", t.mint_vs_empty === null ? null : t.mint_vs_empty >= 0.95));
  out.push(targetLine("Transfer req/s vs empty", t.transfer_vs_empty, ">= 0.90", t.transfer_vs_empty === null ? null : t.transfer_vs_empty >= 0.9));
  out.push(targetLine("MintUsdc p99 vs empty", t.mint_p99_vs_empty, "<= 1.5", t.mint_p99_vs_empty === null ? null : t.mint_p99_vs_empty <= 1.5));
  out.push(targetLine("Transfer p99 vs empty", t.transfer_p99_vs_empty, "<= 1.5", t.transfer_p99_vs_empty === null ? null : t.transfer_p99_vs_empty <= 1.5));
  out.push(targetLine("GetBalance p99 vs empty", t.getbalance_p99_vs_empty, "<= 1.5", t.getbalance_p99_vs_empty === null ? null : t.getbalance_p99_vs_empty <= 1.5));
  const costTarget = (label: string, value: number | null, min: number): string => targetLine(label, value, `>= ${min.toFixed(2)}`, value === null ? null : value >= min);
  out.push(costTarget("MintUsdc CPU-cost ratio vs empty", t.mint_cpu_cost_vs_empty, 0.7));
  out.push(costTarget("Transfer CPU-cost ratio vs empty", t.transfer_cpu_cost_vs_empty, 0.7));
  out.push(costTarget("GetBalance CPU-cost ratio vs empty", t.getbalance_cpu_cost_vs_empty, 0.9));
  out.push(costTarget("MintUsdc mTLS+token CPU-cost vs empty", t.mint_secured_cpu_cost_vs_empty, 0.65));
  out.push(targetLine("hot vs uniform", t.hot_vs_uniform, ">= 0.8", t.hot_vs_uniform === null ? null : t.hot_vs_uniform >= 0.8));
  const mc = t.mint_cpu_cost_metrics_on_vs_off;
  out.push(targetLine("MintUsdc CPU cost metrics on/off", mc, ">= 0.97", mc === null ? null : mc >= 0.97));
  out.push(targetLine("limiter bytes/account", t.limiter_bytes_per_account, "<= 300", t.limiter_bytes_per_account === null ? null : t.limiter_bytes_per_account <= 300));
  out.push(targetLine("idempotency bytes/key", t.idempotency_bytes_per_key, "<= 1024", t.idempotency_bytes_per_key === null ? null : t.idempotency_bytes_per_key <= 1024));
  out.push(
    targetLine("audit journal: PG transfers on/off", t.audit_pg_transfer_on_vs_off, ">= 0.85", t.audit_pg_transfer_on_vs_off === null ? null : t.audit_pg_transfer_on_vs_off >= 0.85),
  );
  out.push(`  audit journal: MintUsdc CPU-cost ratio in memory, on/off: ${t.audit_mint_memory_cpu_cost_on_vs_off ?? "n/a"}`);
  out.push(targetLine("JetStream relay events/s", t.nats_relay_events_per_s, ">= 20000", t.nats_relay_events_per_s === null ? null : t.nats_relay_events_per_s >= 20_000));
  out.push(`  heap back after window/TTL: limiter ${t.limiter_heap_returns ?? "n/a"}, idempotency ${t.idempotency_heap_returns ?? "n/a"}`);
  if (batch !== null && !("error" in batch)) out.push(...batchLines(batch));
  if (pgBatch !== null && !("error" in pgBatch)) {
    const r = pgBatch.ratio;
    out.push(targetLine("PG BatchTransfer vs unary Transfer", r, ">= 5", r >= 5) + ` (${pgBatch.batchTransfer.itemsPerSecond} vs ${pgBatch.unaryTransfer.itemsPerSecond} transfers/s)`);
  }
  if (failures.length > 0) out.push("", "FAILED PARTS:", ...failures.map((f) => "  " + f.split("\n")[0]));
  out.push("", `report: ${path.relative(ROOT, path.join(BENCH_DIR, "report.json"))}`);
  process.stdout.write(out.join("\n") + "\n");
  if (failures.length > 0) process.exitCode = 1;
}

function mapSpread(s: Spread): Record<string, number> {
  return { median: round(s.median), min: round(s.min), max: round(s.max), q1: round(s.q1), q3: round(s.q3) };
}

function sideKey(label: string): string {
  if (label.startsWith("empty")) return "empty";
  if (label === "service") return "service";
  if (label.startsWith("hot")) return "hot";
  if (label.startsWith("mTLS")) return "auth_on";
  if (label.startsWith("plaintext")) return "auth_off";
  return "uniform";
}

function side(s: SideSummary): Record<string, unknown> {
  return {
    rps_median: round(s.rps, 0),
    p50_ms_median: round(s.p50Ms),
    p99_ms_median: round(s.p99Ms),
    server_cpu_pct_median: s.serverCpuPct === null ? null : round(s.serverCpuPct, 0),
    server_cpu_us_per_call_median: s.serverCpuUsPerCall === null ? null : round(s.serverCpuUsPerCall, 1),
    generator_cpu_pct_median: round(s.generatorCpuPct, 0),
    other_cpu_pct_median: s.otherCpuPct === null ? null : round(s.otherCpuPct, 0),
    errors: s.errors,
    runs: s.runs.map((r) => ({
      rps: round(r.rps, 0),
      p50_ms: round(r.p50Ms),
      p90_ms: round(r.p90Ms),
      p99_ms: round(r.p99Ms),
      max_ms: round(r.maxMs),
      calls: r.calls,
      errors: r.errors,
      server_cpu_pct: r.serverCpuPct === null ? null : round(r.serverCpuPct, 0),
      server_cpu_us_per_call: r.serverCpuUsPerCall === null ? null : round(r.serverCpuUsPerCall, 1),
      generator_cpu_pct: round(r.generatorCpuPct, 0),
      other_cpu_pct: r.otherCpuPct === null ? null : round(r.otherCpuPct, 0),
    })),
  };
}


main().catch((e: unknown) => {
  process.stderr.write(String(e instanceof Error ? e.stack : e) + "\n");
  process.exit(1);
});
