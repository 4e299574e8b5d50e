/**
 * The alert rules pass promtool, and a real Prometheus (Debian's 2.42)
 * scrapes the service's metrics listener: the series are there and a p99
 * computed with histogram_quantile is a number.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { generatePrivateKey, privateKeyToAddress } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, SettlementState } from "../../gen/usdc/mint/v1/mint.js";
import { freePort } from "../support/evm/evm-node.js";
import { ServiceMetrics } from "../../src/observability/metrics.js";
import { SettlementMetrics } from "../../src/observability/settlement-metrics.js";
import { registerNatsRelayMetrics } from "../../src/observability/nats-relay-metrics.js";
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
    // The settlement series, on the same registry as in the service.
    new SettlementMetrics(metrics.registry, { chains: ["ETHEREUM"], signer: "pkcs11" }).watch({ backlog: async () => new Map(), wallMs: () => 0, senders: () => [] });
    // The JetStream relay's series, on the same registry as in the service.
    registerNatsRelayMetrics(metrics.registry, () => ({ state: "caught_up", active: true, published: 0, failed: 0, duplicates: 0, missed: 0, lagEvents: 0, lagSeconds: 0, lastError: null }));
    const exported = new Set((await metrics.text()).split("\n").flatMap((l) => (l.startsWith("# TYPE ") ? [l.split(" ")[2] as string] : [])));
    const rules = readFileSync(ALERT_RULES_FILE, "utf8")
      .split("\n")
      .filter((l) => !l.trimStart().startsWith("#"))
      .join("\n");
    const named = new Set([...rules.matchAll(/\b((?:grpc_server|usdc_mint)_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=[{[ )])/g)].map((m) => m[1] as string));
    expect(named.size).toBeGreaterThanOrEqual(7);
    expect(named).toContain("usdc_mint_settlement_oldest_unsettled_age_seconds");
    expect(named).toContain("usdc_mint_nats_relay_lag_seconds");
    for (const name of named) expect(exported, name).toContain(name);
  });
});

describe("a real Prometheus scraping the service", () => {
  let s: TestServer;
  let prometheus: RunningPrometheus;

  let dir: string;

  beforeAll(async () => {
    // BASE settles, on a node nobody answers at (cheap: no EVM node, a dev key), so
    // its settlement series are exported and a BASE mint stays PENDING; the calls below mint on ETHEREUM.
    dir = mkdtempSync(path.join(tmpdir(), "usdc-mint-prom-settlement-"));
    const keyFile = path.join(dir, "dev-key");
    writeFileSync(keyFile, generatePrivateKey() + "\n", { mode: 0o600 });
    const settlementFile = path.join(dir, "chains.yaml");
    const address = (): string => privateKeyToAddress(generatePrivateKey());
    writeFileSync(
      settlementFile,
      `blockchains:\n  BASE:\n    rpcUrl: http://127.0.0.1:${await freePort()}\n    chainId: 8453\n    tokenContract: "${address()}"\n    treasury: "${address()}"\n    confirmations: 1\n    feeBumpTimeout: 1m\n    pollInterval: 1s\n    requestTimeout: 1s\n`,
    );
    s = await startTestServer({
      MINT_METRICS_LISTEN: "127.0.0.1:0",
      MINT_RATE_LIMIT: "1000",
      MINT_SETTLEMENT_FILE: settlementFile,
      MINT_SIGNER: "dev-key",
      MINT_DEV_KEY_FILE: keyFile,
    });
    prometheus = await startPrometheus([s.app.metricsAddress as string]);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await s?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
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

  it("finds the settlement series: a mint waiting on an unreachable chain shows as open and ageing; the lag alert's expression sees it", async () => {
    const base = { blockchain: "BASE" };
    await prometheus.waitFor('usdc_mint_settlements_open{blockchain="BASE",state="PENDING"}', (x) => x.length === 1 && x[0]?.value === 0);
    const m = await rpc(s.call).mint("prom-settle", "2", "prom-settle-1", Blockchain.BLOCKCHAIN_BASE);
    expect(m.mint?.settlement?.state).toBe(SettlementState.SETTLEMENT_STATE_PENDING);
    const open = await prometheus.waitFor('usdc_mint_settlements_open{blockchain="BASE",state="PENDING"}', (x) => x[0]?.value === 1);
    expect(open[0]?.metric).toMatchObject({ job: "usdc-mint", ...base });
    const age = await prometheus.waitFor('max by (blockchain) (usdc_mint_settlement_oldest_unsettled_age_seconds) > 0', (x) => x.length === 1);
    expect(age[0]?.metric).toEqual(base);
    expect(age[0]?.value).toBeLessThan(600);
    // The worker holds BASE's sender lock and its passes fail on the unreachable node.
    expect((await prometheus.waitFor('usdc_mint_settlement_sender{blockchain="BASE"}', (x) => x[0]?.value === 1)).length).toBe(1);
    expect((await prometheus.waitFor('usdc_mint_settlement_pass_failures_total{blockchain="BASE"}', (x) => (x[0]?.value ?? 0) >= 1)).length).toBe(1);
    expect((await prometheus.query('usdc_mint_settlement_seconds_count{blockchain="BASE"}'))[0]?.value).toBe(0);
    const rules = ((await prometheus.api("rules")) as { groups: { rules: { name: string; health: string }[] }[] }).groups.flatMap((g) => g.rules);
    expect(rules.filter((r) => r.name.startsWith("UsdcMintSettlement")).map((r) => [r.name, r.health])).toEqual([
      ["UsdcMintSettlementLag", "ok"],
      ["UsdcMintSettlementNoSender", "ok"],
      ["UsdcMintSettlementFailures", "ok"],
      ["UsdcMintSettlementSignerBalanceLow", "ok"],
      ["UsdcMintSettlementFeeCeiling", "ok"],
    ]);
  });
});
