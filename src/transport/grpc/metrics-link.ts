/**
 * The edge's metrics: counts every call started and answered (with its gRPC
 * code) and times it, into go-grpc-prometheus's series, and counts calls
 * shed. The edge runs it as plain code just inside the request id, outside
 * logging, error mapping, draining and the in-flight cap, so it sees every
 * answer the caller gets, whichever link gave it, and times the whole chain.
 */
import type { ServiceDefinition } from "@grpc/grpc-js";
import type { Failure } from "../../domain/errors.js";
import type { ShedReason } from "../../domain/ports.js";
import type { GrpcMethodMetrics, GrpcMethodSpec, ServiceMetrics } from "../../observability/metrics.js";
import type { Answer, EdgeCall } from "./chain.js";
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
 * One RPC's recorder. `service` is the full service name
 * (`usdc.mint.v1.MintService`); the edge makes one per RPC at start, so a
 * call resolves no series. Latency is measured with `performance.now()`, not
 * the injected clock: it is real elapsed time for operators, not time the
 * service's rules run on. A call costs two `performance.now()` reads and
 * three field increments.
 */
export class RpcMetrics {
  private readonly method: GrpcMethodMetrics;

  constructor(
    private readonly metrics: ServiceMetrics,
    service: string,
    rpc: string,
  ) {
    this.method = metrics.grpcMethod(`/${service}/${rpc}`);
  }

  /** A call arrived; returns its start time for `answered`. */
  started(): number {
    this.method.started();
    return performance.now();
  }

  /** The call started at `startMs` is answered `answer`. */
  answered(call: EdgeCall, answer: Answer, startMs: number): void {
    const seconds = (performance.now() - startMs) / 1000;
    if (answer.ok) {
      this.method.handled(0, seconds);
      return;
    }
    this.method.handled(call.statusOf(answer.error).code, seconds);
    const reason = SHED_REASONS[answer.error.code];
    if (reason !== undefined) this.metrics.callShed(reason);
  }
}
