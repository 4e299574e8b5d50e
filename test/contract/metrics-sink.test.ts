/**
 * The MetricsSink port's contract, run against both sinks (the no-op default
 * and the Prometheus one): every method takes every value of its closed
 * argument lists, returns nothing and never throws, however often it is
 * called, so the core and the adapters may record without guarding. The
 * settlement metrics port is held to the same contract.
 */
import { describe, expect, it } from "vitest";
import { noMetrics, type MetricsSink, type MoneyOperation, type PgConflictState, type ShedReason } from "../../src/domain/ports.js";
import type { Blockchain, IdempotencyScope } from "../../src/domain/model.js";
import { ServiceMetrics } from "../../src/observability/metrics.js";
import { SettlementMetrics } from "../../src/observability/settlement-metrics.js";
import { noSettlementMetrics, type SettlementMetricsSink, type SettlementOutcome } from "../../src/domain/settlement/ports.js";
import { Registry } from "prom-client";

const OPERATIONS: MoneyOperation[] = ["mint", "transfer", "reversal"];
const SCOPES: IdempotencyScope[] = ["mint", "transfer"];
const SHED: ShedReason[] = ["shutting_down", "overloaded", "account_busy"];
const PG: PgConflictState[] = ["40P01", "40001"];

function metricsSinkContract(name: string, make: () => MetricsSink): void {
  describe(`MetricsSink contract: ${name}`, () => {
    it("accepts every event with every allowed value, returning nothing", () => {
      const sink = make();
      const results: unknown[] = [];
      for (let round = 0; round < 1_000; round++) {
        for (const op of OPERATIONS) results.push(sink.moneyMoved(op, BigInt(round) * 1_000_000_000_000_000n));
        for (const scope of SCOPES) {
          results.push(sink.idempotentReplay(scope));
          results.push(sink.duplicateWaited(scope));
        }
        results.push(sink.rateLimited());
        results.push(sink.lockWaited(round, round % 2 === 0));
        results.push(sink.lockWaited(0, true));
        for (const reason of SHED) results.push(sink.callShed(reason));
        for (const state of PG) {
          results.push(sink.pgConflict(state, false));
          results.push(sink.pgConflict(state, true));
        }
        results.push(sink.redisCommandError());
        results.push(sink.sweeperRun(round % 3 !== 0));
      }
      expect(results.every((r) => r === undefined)).toBe(true);
    });
  });
}

metricsSinkContract("noMetrics", () => noMetrics);
metricsSinkContract("ServiceMetrics", () => new ServiceMetrics({ grpcMethods: [], nodeDefaults: false }));

const OUTCOMES: SettlementOutcome[] = ["confirmed", "reverted", "dropped"];

/** The settlement metrics port, on the same terms, for every chain the sink was made for. */
function settlementMetricsContract(name: string, make: (chains: Blockchain[]) => SettlementMetricsSink): void {
  describe(`SettlementMetricsSink contract: ${name}`, () => {
    it("accepts every event with every allowed value on every declared chain, returning nothing", () => {
      const chains: Blockchain[] = ["ETHEREUM", "BASE"];
      const sink = make(chains);
      const results: unknown[] = [];
      for (let round = 0; round < 1_000; round++) {
        for (const blockchain of chains) {
          const c = sink.chain(blockchain);
          for (const outcome of OUTCOMES) results.push(c.finished(outcome, round / 10, round % 70));
          results.push(c.finished("confirmed", -1, 0)); // a wall clock stepped back: never a throw
          results.push(c.feeBumped(), c.reorged(), c.rebroadcast(), c.passFailed());
        }
        results.push(sink.signed(round / 1e4, round % 5 !== 0));
      }
      expect(results.every((r) => r === undefined)).toBe(true);
    });
  });
}

settlementMetricsContract("noSettlementMetrics", () => noSettlementMetrics);
settlementMetricsContract("SettlementMetrics", (chains) => new SettlementMetrics(new Registry(), { chains, signer: "pkcs11" }));

describe("SettlementMetrics", () => {
  it("refuses, at wiring, a chain it was not made for (labels are a closed list)", () => {
    const sink = new SettlementMetrics(new Registry(), { chains: ["BASE"], signer: "dev-key" });
    expect(() => sink.chain("ETHEREUM")).toThrow(/no settlement metrics declared for ETHEREUM/);
  });
});
