/**
 * The MetricsSink port's contract, run against both sinks (the no-op default
 * and the Prometheus one): every method takes every value of its closed
 * argument lists, returns nothing and never throws, however often it is
 * called, so the core and the adapters may record without guarding.
 */
import { describe, expect, it } from "vitest";
import { noMetrics, type MetricsSink, type MoneyOperation, type PgConflictState, type ShedReason } from "../../src/domain/ports.js";
import type { IdempotencyScope } from "../../src/domain/model.js";
import { ServiceMetrics } from "../../src/observability/metrics.js";

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
