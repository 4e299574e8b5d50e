// The standard gRPC health protocol (grpc.health.v1.Health), so that load
// balancers, Kubernetes probes and grpcurl can ask whether we take traffic.
// Status lives here and is pushed in by the wiring (ready -> SERVING, drain ->
// NOT_SERVING); nothing in the domain knows about it.
import * as grpc from "@grpc/grpc-js";

import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus as WireStatus,
  type HealthServer,
  HealthService as HealthServiceDefinition,
} from "../../../gen/grpc/health/v1/health.js";

/** The statuses the wiring may set; UNKNOWN and SERVICE_UNKNOWN are wire-only. */
export type ServingStatus = "SERVING" | "NOT_SERVING";

/** The name that stands for the server as a whole in the health protocol. */
export const OVERALL_SERVICE = "";

/** Default cap on concurrently open Watch streams, see HealthOptions.maxWatchers. */
export const DEFAULT_MAX_WATCHERS = 1024;

export interface HealthOptions {
  /**
   * Status of every known service until the wiring says otherwise. Defaults to
   * NOT_SERVING so that a probe never sees SERVING before the adapters are up.
   */
  readonly initialStatus?: ServingStatus;
  /**
   * Most Watch streams open at once; one more gets RESOURCE_EXHAUSTED. Each
   * watcher holds a listener and an HTTP/2 stream, so an unbounded number is a
   * cheap way to exhaust the server.
   */
  readonly maxWatchers?: number;
}

type Listener = (status: ServingStatus) => void;

interface Watcher {
  readonly call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;
  readonly listener: Listener;
  readonly service: string;
}

function toWire(status: ServingStatus): WireStatus {
  switch (status) {
    case "SERVING":
      return WireStatus.SERVING;
    case "NOT_SERVING":
      return WireStatus.NOT_SERVING;
    default: {
      const unreachable: never = status;
      throw new Error(`unknown serving status ${String(unreachable)}`);
    }
  }
}

/**
 * Health state for a fixed set of service names, served as grpc.health.v1.Health.
 *
 * - Check: the current status; a name not given to the constructor is NOT_FOUND.
 * - Watch: the current status at once, then each change; a name not known gets
 *   SERVICE_UNKNOWN once and the stream stays open (the protocol says so: the
 *   service may appear later, though with a fixed list it never does here).
 * - shutdown(): everything NOT_SERVING, open Watch streams end with OK, and
 *   later setStatus calls are ignored so a late "ready" cannot undo a drain.
 */
export class HealthService {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #watchers = new Set<Watcher>();
  readonly #maxWatchers: number;
  #shutDown = false;

  /**
   * @param services the names that are known, e.g. `["", "usdc.mint.v1.MintService"]`;
   *   `""` (the whole server) is always added because probes ask for it by default.
   */
  constructor(services: readonly string[], options: HealthOptions = {}) {
    const initial = options.initialStatus ?? "NOT_SERVING";
    this.#maxWatchers = options.maxWatchers ?? DEFAULT_MAX_WATCHERS;
    if (!Number.isInteger(this.#maxWatchers) || this.#maxWatchers < 0) {
      throw new RangeError(`maxWatchers must be a non-negative integer, got ${this.#maxWatchers}`);
    }
    this.#statuses.set(OVERALL_SERVICE, initial);
    for (const service of services) this.#statuses.set(service, initial);
  }

  /**
   * Sets one service's status and tells its watchers. A name not given to the
   * constructor throws: that is a wiring bug, not a runtime condition.
   * Ignored after shutdown().
   */
  setStatus(service: string, status: ServingStatus): void {
    if (!this.#statuses.has(service)) {
      throw new Error(`health: unknown service ${JSON.stringify(service)}`);
    }
    if (this.#shutDown) return;
    this.#apply(service, status);
  }

  /** Sets every known service, `""` included. Ignored after shutdown(). */
  setAll(status: ServingStatus): void {
    if (this.#shutDown) return;
    for (const service of this.#statuses.keys()) this.#apply(service, status);
  }

  /** The current status, or undefined for a name not known. */
  getStatus(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** How many Watch streams are open; lets tests prove that cancel cleans up. */
  get watcherCount(): number {
    return this.#watchers.size;
  }

  /**
   * Marks everything NOT_SERVING (watchers see it), then ends every open Watch
   * stream with OK. Without this, grpc.Server.tryShutdown would wait on those
   * endless streams until its deadline and fall back to forceShutdown.
   */
  shutdown(): void {
    if (this.#shutDown) return;
    this.setAll("NOT_SERVING");
    this.#shutDown = true;
    for (const watcher of [...this.#watchers]) {
      this.#watchers.delete(watcher);
      watcher.call.end();
    }
  }

  /** Registers grpc.health.v1.Health on the server; call before bindAsync. */
  addTo(server: grpc.Server): void {
    server.addService(HealthServiceDefinition, this.#implementation());
  }

  #apply(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    for (const watcher of this.#watchers) {
      if (watcher.service === service) watcher.listener(status);
    }
  }

  #implementation(): HealthServer {
    return {
      check: (call, callback) => {
        const status = this.#statuses.get(call.request.service);
        if (status === undefined) {
          callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(call.request.service)}` });
          return;
        }
        callback(null, { status: toWire(status) });
      },
      watch: (call) => this.#watch(call),
    };
  }

  #watch(call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>): void {
    const service = call.request.service;
    if (!this.#shutDown && this.#watchers.size >= this.#maxWatchers) {
      call.emit("error", {
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `too many health watchers (max ${this.#maxWatchers})`,
      });
      return;
    }
    const current = this.#statuses.get(service);
    // An unknown name gets SERVICE_UNKNOWN rather than an error, as the protocol
    // asks, so that a watcher need not reconnect; with a fixed list of names it
    // will never change, but the stream stays open like any other.
    call.write({ status: current === undefined ? WireStatus.SERVICE_UNKNOWN : toWire(current) });
    if (this.#shutDown) {
      // Draining: report the state once and let the server finish.
      call.end();
      return;
    }
    const watcher: Watcher = {
      call,
      service,
      listener: (status) => {
        call.write({ status: toWire(status) });
      },
    };
    this.#watchers.add(watcher);
    // A client that goes away must not leave a listener behind, or every
    // probe that disconnects would leak one.
    const forget = (): void => {
      this.#watchers.delete(watcher);
    };
    call.once("cancelled", forget);
    call.once("close", forget);
  }
}
