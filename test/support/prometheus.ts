/**
 * A real Prometheus server (Debian's `prometheus`, installed by
 * scripts/install-system-deps.sh) for tests: a temporary config scraping the
 * given targets every 250 ms with ops/alerts.yml loaded, a temporary TSDB, a
 * free port on 127.0.0.1, and a client for its HTTP query API.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ALERT_RULES_FILE = fileURLToPath(new URL("../../ops/alerts.yml", import.meta.url));
export const SCRAPE_INTERVAL = "250ms";

export interface VectorSample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

export interface RunningPrometheus {
  readonly url: string;
  /** An instant query; the samples of a vector result. */
  query(promql: string): Promise<VectorSample[]>;
  /** Polls `promql` until `accept` holds for its samples or `timeoutMs` passes (then throws, with the last result). */
  waitFor(promql: string, accept: (samples: VectorSample[]) => boolean, timeoutMs?: number): Promise<VectorSample[]>;
  /** GET of an API path, parsed JSON `data`. */
  api(pathAndQuery: string): Promise<unknown>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Starts Prometheus scraping `targets` (host:port, path /metrics); resolves when it answers ready. */
export async function startPrometheus(targets: readonly string[], startTimeoutMs = 30_000): Promise<RunningPrometheus> {
  const dir = mkdtempSync(path.join(tmpdir(), "usdc-mint-prom-"));
  const config = [
    "global:",
    `  scrape_interval: ${SCRAPE_INTERVAL}`,
    `  evaluation_interval: 1s`,
    "rule_files:",
    `  - ${JSON.stringify(ALERT_RULES_FILE)}`,
    "scrape_configs:",
    "  - job_name: usdc-mint",
    `    scrape_timeout: ${SCRAPE_INTERVAL}`,
    "    static_configs:",
    `      - targets: ${JSON.stringify(targets)}`,
  ].join("\n");
  writeFileSync(path.join(dir, "prometheus.yml"), config + "\n");

  let child: ChildProcess | undefined;
  let url = "";
  let output = "";
  // A port picked free may be taken before Prometheus binds it: try a few.
  for (let attempt = 0; attempt < 5 && child === undefined; attempt++) {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const p = spawn(
      "prometheus",
      [
        `--config.file=${path.join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${path.join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let exited = false;
    p.on("exit", () => (exited = true));
    // Not installed (ENOENT): fail this test with the reason, not the run with an uncaught error.
    p.on("error", (err) => {
      exited = true;
      output += `${err.message} (install Debian's prometheus: scripts/install-system-deps.sh)\n`;
    });
    p.stdout.on("data", (c: Buffer) => (output += c.toString()));
    p.stderr.on("data", (c: Buffer) => (output += c.toString()));
    const until = Date.now() + startTimeoutMs;
    while (!exited && Date.now() < until) {
      const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) {
        child = p;
        break;
      }
      await delay(50);
    }
    if (child === undefined) {
      p.kill("SIGKILL");
      if (!exited && Date.now() >= until) break;
    }
  }
  if (child === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`prometheus did not become ready: ${output.slice(-2000)}`);
  }
  const proc = child;

  const api = async (pathAndQuery: string): Promise<unknown> => {
    const res = await fetch(`${url}/api/v1/${pathAndQuery}`);
    const body = (await res.json()) as { status: string; data?: unknown; error?: string };
    if (body.status !== "success") throw new Error(`prometheus ${pathAndQuery}: ${body.error ?? res.status}`);
    return body.data;
  };
  const query = async (promql: string): Promise<VectorSample[]> => {
    const data = (await api(`query?query=${encodeURIComponent(promql)}`)) as { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
    if (data.resultType !== "vector") throw new Error(`expected a vector from ${promql}, got ${data.resultType}`);
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  return {
    url,
    api,
    query,
    async waitFor(promql, accept, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      let last: VectorSample[] = [];
      for (;;) {
        last = await query(promql);
        if (accept(last)) return last;
        if (Date.now() > until) throw new Error(`timed out waiting for ${promql}; last result ${JSON.stringify(last)}`);
        await delay(100);
      }
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
