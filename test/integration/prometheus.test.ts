/**
 * The alert rules pass promtool, and a real Prometheus (Debian's 2.42)
 * scrapes the service's metrics listener: the series are there and a p99
 * computed with histogram_quantile is a number.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServiceMetrics } from "../../src/observability/metrics.js";
import { ALERT_RULES_FILE, startPrometheus, type RunningPrometheus } from "../support/prometheus.js";
import { expectError, startTestServer, type TestServer } from "../support/test-server.js";
import { rpc } from "./helpers.js";

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
    const rules = readFileSync(ALERT_RULES_FILE, "utf8")
      .split("\n")
      .filter((l) => !l.trimStart().startsWith("#"))
      .join("\n");
    const named = new Set([...rules.matchAll(/\b((?:grpc_server|usdc_mint)_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=[{[ )])/g)].map((m) => m[1] as string));
    expect(named.size).toBeGreaterThanOrEqual(4);
    for (const name of named) expect(exported, name).toContain(name);
  });
});

describe("a real Prometheus scraping the service", () => {
  let s: TestServer;
  let prometheus: RunningPrometheus;

  beforeAll(async () => {
    s = await startTestServer({ MINT_METRICS_LISTEN: "127.0.0.1:0", MINT_RATE_LIMIT: "1000" });
    prometheus = await startPrometheus([s.app.metricsAddress as string]);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await s?.stop();
  });

  it("loads the alert rules", async () => {
    const data = (await prometheus.api("rules")) as { groups: { name: string; rules: { name: string; health: string }[] }[] };
    const rules = data.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.name)).toContain("UsdcMintPostgresDeadlocks");
    expect(rules.every((r) => r.health !== "err")).toBe(true);
  });

  it("finds the series and computes a p99 with histogram_quantile after real calls", async () => {
    // Scraped at least once before the calls: the series exist at 0 from the start.
    await prometheus.waitFor('grpc_server_handled_total{grpc_method="MintUsdc",grpc_code="OK"}', (x) => x.length === 1 && x[0]?.value === 0);
    const r = rpc(s.call);
    for (let i = 0; i < 200; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => r.mint(`prom-${(i + j) % 7}`, "1.5", `prom-${i + j}`)));
    }
    await expectError(r.mint("prom-0", "0", "prom-bad"));
    const handled = await prometheus.waitFor('grpc_server_handled_total{grpc_method="MintUsdc",grpc_code="OK"}', (x) => x[0]?.value === 200);
    expect(handled[0]?.metric).toMatchObject({ job: "usdc-mint", grpc_service: "usdc.mint.v1.MintService", grpc_type: "unary" });
    const p99 = await prometheus.waitFor(
      'histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket{grpc_service="usdc.mint.v1.MintService",grpc_method="MintUsdc"}[1m])))',
      (x) => x.length === 1 && Number.isFinite(x[0]?.value),
    );
    expect(p99[0]?.value).toBeGreaterThan(0);
    expect(p99[0]?.value).toBeLessThanOrEqual(10);
    expect((await prometheus.waitFor('grpc_server_handled_total{grpc_method="MintUsdc",grpc_code="InvalidArgument"}', (x) => x[0]?.value === 1)).length).toBe(1);
    expect((await prometheus.query("usdc_mint_minted_micro_usdc_total"))[0]?.value).toBe(300_000_000);
    expect((await prometheus.query('usdc_mint_operations_total{operation="mint"}'))[0]?.value).toBe(200);
    expect((await prometheus.query("process_cpu_user_seconds_total")).length).toBe(1);
    // The alert expressions evaluate on the real series (no rule is in error, none fires on a healthy run).
    const alerts = (await prometheus.api("alerts")) as { alerts: { labels: { alertname: string } }[] };
    expect(alerts.alerts.map((a) => a.labels.alertname)).toEqual([]);
  });
});
