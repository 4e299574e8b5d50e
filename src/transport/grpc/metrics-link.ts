/**
 * The metrics link of the edge's chain: counts every call started and
 * answered (with its gRPC code) and times it, into go-grpc-prometheus's
 * series, and counts calls shed. It sits just inside the request-id link,
 * outside logging, error mapping, draining and the in-flight cap, so it sees
 * every answer the caller gets, whichever link gave it, and times the whole
 * chain.
 */
import { status as Code, type ServiceDefinition } from "@grpc/grpc-js";
import type { Failure } from "../../domain/errors.js";
import type { ShedReason } from "../../domain/ports.js";
import type { GrpcMethodMetrics, GrpcMethodSpec, ServiceMetrics } from "../../observability/metrics.js";
import type { Answer, Link } from "./chain.js";
import type { EdgeFailure } from "./status.js";

/** The methods of a grpc-js service definition, for `ServiceMetrics`' `grpcMethods`. */
export function grpcMethodsOf(definition: ServiceDefinition): GrpcMethodSpec[] {
  return Object.values(definition).map((d) => ({
    path: d.path,
    type: d.requestStream ? (d.responseStream ? "bidi_stream" : "client_stream") : d.responseStream ? "server_stream" : "unary",
  }));
}

/** The failures that are shedding: the call was refused before doing anything, to keep the process healthy. */
const SHED_REASONS: Partial<Record<(Failure | EdgeFailure)["code"], ShedReason>> = {
  SHUTTING_DOWN: "shutting_down",
  OVERLOADED: "overloaded",
  ACCOUNT_BUSY: "account_busy",
};

/**
 * `service` is the full service name (`usdc.mint.v1.MintService`); the RPC
 * names the edge gives calls (`MintUsdc`) are resolved to their series once.
 * Latency is measured with `performance.now()`, not the injected clock: it is
 * real elapsed time for operators, not time the service's rules run on.
 */
export function metricsLink(metrics: ServiceMetrics, service: string): Link {
  const byRpc = new Map<string, GrpcMethodMetrics>();
  const methodOf = (rpc: string): GrpcMethodMetrics => {
    let m = byRpc.get(rpc);
    if (m === undefined) {
      m = metrics.grpcMethod(`/${service}/${rpc}`);
      byRpc.set(rpc, m);
    }
    return m;
  };
  return async (call, next) => {
    const m = methodOf(call.rpc);
    m.started();
    const startMs = performance.now();
    let answer: Answer;
    try {
      answer = await next(call);
    } catch (err: unknown) {
      // Only a bug in a link outside error mapping gets here; the edge answers it INTERNAL.
      m.handled(Code.INTERNAL, (performance.now() - startMs) / 1000);
      throw err;
    }
    if (answer.ok) {
      m.handled(Code.OK, (performance.now() - startMs) / 1000);
    } else {
      m.handled(call.statusOf(answer.error).code, (performance.now() - startMs) / 1000);
      const reason = SHED_REASONS[answer.error.code];
      if (reason !== undefined) metrics.callShed(reason);
    }
    return answer;
  };
}
