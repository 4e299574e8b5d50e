/**
 * Starting and stopping the processes under test: the service and the empty
 * baseline server, each in its own process, started the same way (compiled
 * JavaScript when the build succeeds, tsx otherwise), each printing a JSON
 * line with "msg":"listening" and "address":"127.0.0.1:PORT".
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BENCH_DIR = path.join(ROOT, "bench");

export type LaunchMode = "dist" | "tsx";

export interface Launch {
  readonly mode: LaunchMode;
  /** Why tsx was chosen when it was (a failed build, --tsx). */
  readonly note: string;
}

/** Env of the service under test: limiter raised so it never refuses, quiet logs, memory store. */
export function serviceEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    MINT_LISTEN: "127.0.0.1:0",
    MINT_RATE_LIMIT: "1000000",
    MINT_LOG_LEVEL: "warn",
    MINT_MAX_AMOUNT: "1000000000000",
    MINT_SHUTDOWN_GRACE: "1s",
    // Every call has a unique key: keep the store from filling during a run.
    MINT_IDEMPOTENCY_MAX_KEYS: "100000000",
    MINT_STORE: "memory",
    MINT_REDIS_URL: "",
    ...extra,
  };
}

function run(cmd: string, args: string[]): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return { ok: r.status === 0, output: (r.stdout ?? "") + (r.stderr ?? "") };
}

/**
 * Builds the service (`npm run build` → dist/) and the baseline
 * (bench/tsconfig.build.json → bench/.build/), so that both run as plain
 * compiled JavaScript. Falls back to tsx for both when either fails.
 */
export function prepareLaunch(forceTsx: boolean, log: (line: string) => void, baseRoot?: string): Launch {
  if (forceTsx) return { mode: "tsx", note: "--tsx given" };
  if (baseRoot !== undefined) {
    const other = spawnSync("npm", ["run", "build", "--silent"], { cwd: baseRoot, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if (other.status !== 0 || !existsSync(path.join(baseRoot, "dist/src/main.js"))) {
      log(`build of ${baseRoot} failed; running every server with tsx`);
      return { mode: "tsx", note: `npm run build failed in ${baseRoot}` };
    }
  }
  const svc = run("npm", ["run", "build", "--silent"]);
  if (!svc.ok || !existsSync(path.join(ROOT, "dist/src/main.js"))) {
    log("service build failed; running both servers with tsx:\n" + svc.output.split("\n").slice(0, 15).join("\n"));
    return { mode: "tsx", note: "npm run build failed" };
  }
  mkdirSync(path.join(BENCH_DIR, ".build"), { recursive: true });
  const tsc = path.join(ROOT, "node_modules/.bin/tsc");
  const base = run(tsc, ["-p", path.join(BENCH_DIR, "tsconfig.build.json")]);
  if (!base.ok || !existsSync(path.join(BENCH_DIR, ".build/bench/empty-server.js"))) {
    log("baseline build failed; running both servers with tsx:\n" + base.output.split("\n").slice(0, 15).join("\n"));
    return { mode: "tsx", note: "bench/tsconfig.build.json failed" };
  }
  return { mode: "dist", note: "compiled (npm run build; bench/tsconfig.build.json)" };
}

export interface ServerProcess {
  readonly kind: "service" | "empty";
  readonly pid: number;
  readonly port: number;
  readonly child: ChildProcess;
  /** Last lines of stderr and non-JSON stdout, for error reports. */
  readonly tail: string[];
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly launch: Launch;
  readonly env?: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeFlags?: readonly string[];
  readonly startTimeoutMs?: number;
  /** Another checkout whose service to start (its own dist/ or src/), for comparing two commits; this one by default. */
  readonly root?: string;
}

function entry(kind: "service" | "empty", mode: LaunchMode, root: string): string[] {
  if (kind === "service") {
    return mode === "dist" ? [path.join(root, "dist/src/main.js")] : ["--import", "tsx", path.join(root, "src/main.ts")];
  }
  return mode === "dist"
    ? [path.join(BENCH_DIR, ".build/bench/empty-server.js")]
    : ["--import", "tsx", path.join(BENCH_DIR, "empty-server.ts")];
}

/** Starts one server and resolves once it printed its listening address. */
export function startServer(kind: "service" | "empty", opts: StartOptions): Promise<ServerProcess> {
  const root = opts.root ?? ROOT;
  const args = [...(opts.nodeFlags ?? []), ...entry(kind, opts.launch.mode, root)];
  const env = { ...process.env, ...serviceEnv(), ...(opts.env ?? {}) };
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  };
  createInterface({ input: child.stderr! }).on("line", keep);
  let exited = false;
  const exitedP = new Promise<void>((r) => child.once("exit", () => ((exited = true), r())));

  return new Promise<ServerProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${kind} did not print its listening line within ${opts.startTimeoutMs ?? 20000} ms:\n${tail.join("\n")}`));
    }, opts.startTimeoutMs ?? 20_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${kind} exited (${code ?? signal}) before listening:\n${tail.join("\n")}`));
    });
    let found = false;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (found) {
        keep(line);
        return;
      }
      let rec: { msg?: unknown; address?: unknown } | null = null;
      try {
        rec = JSON.parse(line) as { msg?: unknown; address?: unknown };
      } catch {
        keep(line);
        return;
      }
      const m = rec?.msg === "listening" && typeof rec.address === "string" ? /:(\d+)$/.exec(rec.address) : null;
      if (m === null) {
        keep(line);
        return;
      }
      found = true;
      clearTimeout(timer);
      resolve({
        kind,
        pid: child.pid as number,
        port: Number(m[1]),
        child,
        tail,
        async stop() {
          if (exited) return;
          child.kill("SIGTERM");
          const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
          await exitedP;
          clearTimeout(killer);
        },
      });
    });
  });
}
