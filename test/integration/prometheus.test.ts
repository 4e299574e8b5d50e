/**
 * The alert rules pass promtool, and a real Prometheus (Debian's 2.42)
 * scrapes the service's metrics listener: the series are there and a p99
 * computed with histogram_quantile is a number.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMetricsServer, type RunningMetricsServer } from "../../src/observability/metrics-server.js";
import { ServiceMetrics } from "../../src/observability/metrics.js";
import { ALERT_RULES_FILE, startPrometheus, type RunningPrometheus } from "../support/prometheus.js";

const run = promisify(execFile);
const RULE_TESTS_FILE = fileURLToPath(new URL("../../ops/alerts.test.yml", import.meta.url));

describe("alert rules", () => {
  it("pass promtool check rules", async () => {
    const { stdout } = await run("promtool", ["check", "rules", ALERT_RULES_FILE]);
    expect(stdout).toMatch(/SUCCESS: [1-9][0-9]* rules found/);
  });

  it("fire when they should and stay quiet otherwise (promtool test rules)", async () => {
    const { stdout } = await run("promtool", ["test", "rules", RULE_TESTS_FILE]);
    expect(stdout).toContain("SUCCESS");
  });

  it("name only series the service exports", async () => {
    const metrics = new ServiceMetrics({ grpcMethods: [{ path: "/usdc.mint.v1.MintService/MintUsdc", type: "unary" }], nodeDefaults: false });
    metrics.watch({ lockWaiters: () => 0 });
    const exported = new Set((await metrics.text()).split("\n").flatMap((l) => (l.startsWith("# TYPE ") ? [l.split(" ")[2] as string] : [])));
    const { readFileSync } = await import("node:fs");
    const rules = readFileSync(ALERT_RULES_FILE, "utf8")
      .split("\n")
      .filter((l) => !l.trimStart().startsWith("#"))
      .join("\n");
    const named = new Set([...rules.matchAll(/\b((?:grpc_server|usdc_mint)_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=[{[ )])/g)].map((m) => m[1] as string));
    expect(named.size).toBeGreaterThanOrEqual(4);
    for (const name of named) expect(exported, name).toContain(name);
  });
});

describe("a real Prometheus scraping the metrics listener", () => {
  let metrics: ServiceMetrics;
  let listener: RunningMetricsServer;
  let prometheus: RunningPrometheus;

  beforeAll(async () => {
    metrics = new ServiceMetrics({ grpcMethods: [{ path: "/usdc.mint.v1.MintService/MintUsdc", type: "unary" }] });
    listener = await startMetricsServer("127.0.0.1:0", metrics);
    prometheus = await startPrometheus([listener.address]);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await listener?.close();
  });

  it("loads the alert rules", async () => {
    const data = (await prometheus.api("rules")) as { groups: { name: string; rules: { name: string; health: string }[] }[] };
    const rules = data.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.name)).toContain("UsdcMintPostgresDeadlocks");
    expect(rules.every((r) => r.health !== "err")).toBe(true);
  });

  it("finds the series and computes a p99 after calls", async () => {
    // Before: the handled series exist at 0 (scraped at least once).
    await prometheus.waitFor('grpc_server_handled_total{grpc_method="MintUsdc",grpc_code="OK"}', (s) => s.length === 1);
    const mint = metrics.grpcMethod("/usdc.mint.v1.MintService/MintUsdc");
    for (let i = 0; i < 200; i++) {
      mint.started();
      mint.handled(0, 0.0003 + (i % 10) / 10_000);
      metrics.moneyMoved("mint", 1_000_000n);
    }
    const handled = await prometheus.waitFor('grpc_server_handled_total{grpc_method="MintUsdc",grpc_code="OK"}', (s) => s[0]?.value === 200);
    expect(handled[0]?.metric).toMatchObject({ job: "usdc-mint", grpc_service: "usdc.mint.v1.MintService", grpc_type: "unary" });
    const p99 = await prometheus.waitFor(
      'histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket{grpc_method="MintUsdc"}[1m])))',
      (s) => s.length === 1 && Number.isFinite(s[0]?.value),
    );
    // 40 of the 200 took 1.1 or 1.2 ms, so the 99th percentile lies in the (1 ms, 2.5 ms] bucket.
    expect(p99[0]?.value).toBeGreaterThan(0.001);
    expect(p99[0]?.value).toBeLessThanOrEqual(0.0025);
    expect((await prometheus.query("usdc_mint_minted_micro_usdc_total"))[0]?.value).toBe(200_000_000);
    expect((await prometheus.query("process_cpu_user_seconds_total")).length).toBe(1);
  });
});
