/**
 * The edge alone, in process: CPU µs per call of `Edge.unary` (request id,
 * metrics on, logging, error mapping, draining, auth as `local`, the
 * in-flight cap, the deadline) around a handler that answers at once, on a
 * stand-in for grpc-js's call (an EventEmitter with metadata, a deadline and
 * `cancelled`, which emits 'cancelled' after the answer as grpc-js does).
 * No sockets, no protobuf, no core: what the edge itself costs.
 *
 *   node --import tsx bench/edge-bench.ts [CHECKOUT]
 *
 * CHECKOUT (default: this one) is the root of a checkout whose edge to
 * measure, e.g. a `git worktree` of main: run once per checkout, each in its
 * own process (two edges in one process share V8's inline caches and slow
 * each other down), and compare the figures of runs made one after the other.
 */
import { EventEmitter } from "node:events";
import path from "node:path";
import { Metadata } from "@grpc/grpc-js";
import { pino } from "pino";
import { ROOT } from "./servers.js";

const root = path.resolve(process.argv[2] ?? ROOT);
const CALLS_PER_ROUND = 100_000;
const ROUNDS = 15;
const IN_FLIGHT = 64;

const request = { accountId: "acct-1", amount: "1", blockchain: 1, idempotencyKey: "k" };

/** What the edge reads of a grpc-js unary call. */
class FakeGrpcCall extends EventEmitter {
  readonly request = request;
  readonly metadata = new Metadata();
  cancelled = false;
  getDeadline(): number {
    return Date.now() + 30_000;
  }
  getAuthContext(): null {
    return null;
  }
  getPeer(): string {
    return "127.0.0.1:1";
  }
}

type GrpcHandler = (call: unknown, callback: () => void) => void;

async function edgeHandler(handlerAnswersValue: boolean): Promise<GrpcHandler> {
  const { Edge } = (await import(path.join(root, "src/transport/grpc/edge.ts"))) as { Edge: new (o: unknown) => { unary(rpc: string, h: unknown): GrpcHandler } };
  const { ServiceMetrics } = (await import(path.join(root, "src/observability/metrics.ts"))) as { ServiceMetrics: new (o: unknown) => unknown };
  const { openSecurity } = (await import(path.join(root, "src/auth/security.ts"))) as { openSecurity: () => unknown };
  const service = "usdc.mint.v1.MintService";
  const sink = new ServiceMetrics({ grpcMethods: [{ path: `/${service}/MintUsdc`, type: "unary" }], nodeDefaults: false });
  const edge = new Edge({
    clock: { nowMs: () => performance.now(), wallMs: () => Date.now() },
    logger: pino({ level: "warn" }),
    maxCallsInFlight: 1000,
    security: openSecurity(),
    metrics: { sink, service },
  });
  const answer = { ok: true, value: { replayed: false } };
  return edge.unary("MintUsdc", handlerAnswersValue ? () => answer : () => Promise.resolve(answer));
}

/** CPU µs per call over one round, IN_FLIGHT calls at a time. */
async function round(handler: GrpcHandler): Promise<number> {
  let pending = 0;
  let wake = (): void => {};
  const answered = (): void => {
    if (--pending === 0) wake();
  };
  const start = process.cpuUsage();
  for (let done = 0; done < CALLS_PER_ROUND; done += IN_FLIGHT) {
    const wave = new Promise<void>((resolve) => (wake = resolve));
    pending = IN_FLIGHT;
    const calls: FakeGrpcCall[] = [];
    for (let i = 0; i < IN_FLIGHT; i++) {
      const call = new FakeGrpcCall();
      calls.push(call);
      handler(call, answered);
    }
    await wave;
    // grpc-js marks every call cancelled when its stream closes after the answer.
    for (const call of calls) {
      call.cancelled = true;
      call.emit("cancelled", "cancelled");
    }
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / CALLS_PER_ROUND;
}

/** An edge whose chain awaits every handler's promise cannot take a value: measured only where the chain accepts one. */
const acceptsValues = "andThen" in ((await import(path.join(root, "src/transport/grpc/chain.ts"))) as object);
for (const [label, answersValue] of [
  ["handler answers a promise", false],
  ...(acceptsValues ? ([["handler answers a value", true]] as const) : []),
] as const) {
  const handler = await edgeHandler(answersValue);
  const us: number[] = [];
  for (let r = 0; r < ROUNDS; r++) us.push(await round(handler));
  us.sort((a, b) => a - b);
  process.stdout.write(`${path.basename(root)}: ${label}: CPU µs per call best ${(us[0] as number).toFixed(3)}, median ${(us[ROUNDS >> 1] as number).toFixed(3)}\n`);
}
