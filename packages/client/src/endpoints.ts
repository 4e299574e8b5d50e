/**
 * The replicas a client sends to. grpc-js has no client-side health
 * checking, so each address gets its own channel (one subchannel) and a
 * `grpc.health.v1.Health/Watch` stream on it; calls go round-robin over the
 * addresses whose last word was SERVING (or that have not answered yet), and
 * never to one that said NOT_SERVING or whose stream broke (the process is
 * gone) until it says SERVING again.
 */
import * as grpc from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus as Wire, HealthClient } from "../gen/grpc/health/v1/health.js";
import { MintServiceClient } from "../gen/usdc/mint/v1/mint.js";

export const MINT_SERVICE_NAME = "usdc.mint.v1.MintService";

/** UNKNOWN: no answer yet; GONE: the Watch stream failed (connection refused or cut). */
export type EndpointStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "GONE";

/** One replica as the client sees it. */
export interface EndpointState {
  /** Its gRPC target ("127.0.0.1:50051", "dns:name:port"). */
  readonly address: string;
  /** Its last health word. */
  readonly status: EndpointStatus;
}

/** Re-watch delays after a broken stream: start small so a restarted replica comes back fast. */
const REWATCH_MIN_MS = 100;
const REWATCH_MAX_MS = 2_000;

/**
 * Splits the caller's addresses into one gRPC target per replica:
 * `ipv4:a:1,b:2` and `ipv6:[::1]:1,[::1]:2` become one target per address;
 * `dns:name:port` and `host:port` stay one target (a `dns:` name's channel
 * round-robins over what it resolves to, but is watched as one).
 */
export function expandTargets(addresses: string | readonly string[]): string[] {
  const list = typeof addresses === "string" ? [addresses] : [...addresses];
  const out: string[] = [];
  for (const a of list) {
    const trimmed = a.trim();
    const scheme = /^(ipv4|ipv6):/.exec(trimmed)?.[1];
    if (scheme !== undefined) {
      for (const part of trimmed.slice(scheme.length + 1).split(",")) if (part.trim() !== "") out.push(`${scheme}:${part.trim()}`);
    } else if (trimmed.includes(",") && !trimmed.startsWith("dns:")) {
      for (const part of trimmed.split(",")) if (part.trim() !== "") out.push(part.trim());
    } else if (trimmed !== "") {
      out.push(trimmed);
    }
  }
  if (out.length === 0) throw new TypeError("createMintClient: no address given (e.g. \"127.0.0.1:50051\" or \"ipv4:10.0.0.1:50051,10.0.0.2:50051\")");
  return out;
}

/** True when a target names this host only (127.0.0.0/8, ::1, localhost): traffic to it never crosses a network. */
export function isLoopbackTarget(target: string): boolean {
  const rest = target.replace(/^(ipv4|ipv6|dns):(\/\/[^/]*\/)?\/*/, "");
  const host = rest.startsWith("[") ? rest.slice(1, rest.indexOf("]")) : rest.slice(0, rest.lastIndexOf(":") < 0 ? undefined : rest.lastIndexOf(":"));
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export class Endpoint {
  readonly address: string;
  readonly mint: MintServiceClient;
  readonly #health: HealthClient;
  readonly #channel: grpc.Channel;
  readonly #metadata: () => grpc.Metadata;
  #status: EndpointStatus = "UNKNOWN";
  #stream: grpc.ClientReadableStream<unknown> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #rewatchMs = REWATCH_MIN_MS;
  #closed = false;
  readonly #onChange: () => void;

  constructor(address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions, metadata: () => grpc.Metadata, onChange: () => void) {
    this.address = address;
    this.#metadata = metadata;
    this.#onChange = onChange;
    this.#channel = new grpc.Channel(address, credentials, {
      // round_robin over whatever the target resolves to (one address for ipv4:/ipv6: targets).
      "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      ...options,
    });
    this.mint = new MintServiceClient(address, credentials, { channelOverride: this.#channel });
    this.#health = new HealthClient(address, credentials, { channelOverride: this.#channel });
    this.#watch();
  }

  get status(): EndpointStatus {
    return this.#status;
  }

  #set(status: EndpointStatus): void {
    if (this.#status === status) return;
    this.#status = status;
    this.#onChange();
  }

  #watch(): void {
    if (this.#closed) return;
    const stream = this.#health.watch({ service: MINT_SERVICE_NAME }, this.#metadata());
    this.#stream = stream;
    stream.on("data", (r: { status: Wire }) => {
      this.#rewatchMs = REWATCH_MIN_MS;
      this.#set(r.status === Wire.SERVING ? "SERVING" : "NOT_SERVING");
    });
    stream.on("error", () => {
      // Handled in "status"; without a listener an error would be thrown.
    });
    stream.on("status", (s: grpc.StatusObject) => {
      if (this.#closed || this.#stream !== stream) return;
      this.#stream = undefined;
      if (s.code === grpc.status.UNIMPLEMENTED) {
        // A server without the health service: nothing to watch, assume it serves.
        this.#set("SERVING");
        return;
      }
      // OK means the server ended the stream (it is shutting down); anything
      // else means it could not be reached.
      this.#set(s.code === grpc.status.OK ? "NOT_SERVING" : "GONE");
      this.#timer = setTimeout(() => this.#watch(), this.#rewatchMs);
      this.#timer.unref();
      this.#rewatchMs = Math.min(REWATCH_MAX_MS, this.#rewatchMs * 2);
    });
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#stream?.cancel();
    this.#health.close();
    this.mint.close();
    this.#channel.close();
  }
}

/** Round-robin over the endpoints that may take calls. */
export class EndpointPool {
  readonly endpoints: readonly Endpoint[];
  #next = 0;
  readonly #waiters = new Set<() => void>();

  constructor(targets: readonly string[], credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions, metadata: () => grpc.Metadata) {
    this.endpoints = targets.map((t) => new Endpoint(t, credentials, options, metadata, () => this.#changed()));
  }

  #changed(): void {
    for (const w of this.#waiters) w();
  }

  /**
   * The next endpoint to send to: SERVING ones first; those not heard from
   * yet if none serves; `undefined` when every one is NOT_SERVING or GONE.
   * `avoid` (the address that just failed) is skipped when another is eligible.
   */
  pick(avoid?: string): Endpoint | undefined {
    for (const wanted of ["SERVING", "UNKNOWN"] as const) {
      const eligible = this.endpoints.filter((e) => e.status === wanted);
      if (eligible.length === 0) continue;
      const preferred = eligible.length > 1 ? eligible.filter((e) => e.address !== avoid) : eligible;
      const chosen = preferred[this.#next++ % preferred.length];
      if (chosen !== undefined) return chosen;
    }
    return undefined;
  }

  states(): EndpointState[] {
    return this.endpoints.map((e) => ({ address: e.address, status: e.status }));
  }

  /** Resolves once no endpoint is UNKNOWN any more, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.endpoints.every((e) => e.status !== "UNKNOWN")) done();
      };
      const timer = setTimeout(() => done(), timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
      check();
    });
  }

  close(): void {
    for (const e of this.endpoints) e.close();
    for (const w of this.#waiters) w();
  }
}
