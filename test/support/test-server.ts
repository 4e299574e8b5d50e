/**
 * Starts the real service in-process on 127.0.0.1:0 and connects the
 * generated client. Tests pass settings as env-style strings (through the real
 * config reader) and may inject a FakeClock.
 */
import * as grpc from "@grpc/grpc-js";
import { MintServiceClient } from "../../gen/usdc/mint/v1/mint.js";
import { Status } from "../../gen/google/rpc/status.js";
import { BadRequest, ErrorInfo, QuotaFailure, RetryInfo } from "../../gen/google/rpc/error_details.js";
import { startApp, type App } from "../../src/app.js";
import type { Clock } from "../../src/domain/clock.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";

export interface TestServer {
  readonly app: App;
  readonly address: string;
  readonly client: MintServiceClient;
  /** Calls an RPC of the generated client as a promise; `deadlineMs` is relative. */
  call<Req, Res>(method: keyof MintServiceClient & string, req: Req, opts?: { deadlineMs?: number }): Promise<Res>;
  stop(): Promise<void>;
}

export async function startTestServer(env: Record<string, string> = {}, clock?: Clock): Promise<TestServer> {
  const config = loadConfig([], { MINT_LISTEN: "127.0.0.1:0", MINT_LOG_LEVEL: "silent", ...env });
  // A fake clock moves the PostgreSQL store's expiry clock (now()) as well.
  const app = await startApp(config, createLogger(config.logLevel), clock, clock === undefined ? {} : { pgNowWallMs: () => clock.wallMs() });
  const client = new MintServiceClient(app.server.address, grpc.credentials.createInsecure());
  const call = <Req, Res>(method: string, req: Req, opts: { deadlineMs?: number } = {}): Promise<Res> =>
    new Promise((resolve, reject) => {
      const options: grpc.CallOptions = opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs };
      const fn = (client as unknown as Record<string, (r: Req, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method];
      if (fn === undefined) throw new Error(`no such method ${method}`);
      fn.call(client, req, new grpc.Metadata(), options, (err, res) => (err ? reject(err) : resolve(res)));
    });
  return {
    app,
    address: app.server.address,
    client,
    call,
    async stop() {
      client.close();
      await app.shutdown();
    },
  };
}

/** The decoded rich error of a failed call. */
export interface DecodedError {
  readonly code: grpc.status;
  readonly message: string;
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Record<string, string>;
  readonly badRequest?: BadRequest;
  readonly retryDelayMs?: number;
  readonly quotaFailure?: QuotaFailure;
  readonly detailTypes: string[];
  /**
   * ErrorInfo's `request_id`, taken out of `metadata` (which keeps the
   * error's own facts); decoding checks it equals the `x-request-id` trailer.
   */
  readonly requestId?: string;
}

/** Decodes `grpc-status-details-bin` of a ServiceError; throws when it is missing. */
export function decodeError(err: unknown): DecodedError {
  const e = err as grpc.ServiceError;
  if (typeof e?.code !== "number" || e.metadata === undefined) throw new Error(`not a gRPC error: ${String(err)}`);
  const raw = e.metadata.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Buffer)) throw new Error(`no grpc-status-details-bin on ${e.code} ${e.details}`);
  const status = Status.decode(raw);
  if (status.code !== e.code) throw new Error(`details code ${status.code} != status ${e.code}`);
  const out: { -readonly [K in keyof DecodedError]: DecodedError[K] } = {
    code: e.code,
    message: e.details,
    reason: "",
    domain: "",
    metadata: {},
    detailTypes: status.details.map((d) => d.typeUrl),
  };
  for (const d of status.details) {
    switch (d.typeUrl) {
      case "type.googleapis.com/google.rpc.ErrorInfo": {
        const info = ErrorInfo.decode(d.value);
        out.reason = info.reason;
        out.domain = info.domain;
        const { request_id: requestId, ...facts } = info.metadata;
        out.metadata = facts;
        if (requestId !== undefined) {
          const trailer = e.metadata.get("x-request-id");
          if (trailer.length !== 1 || trailer[0] !== requestId) throw new Error(`ErrorInfo request_id ${requestId} but x-request-id trailer ${JSON.stringify(trailer)}`);
          out.requestId = requestId;
        }
        break;
      }
      case "type.googleapis.com/google.rpc.BadRequest":
        out.badRequest = BadRequest.decode(d.value);
        break;
      case "type.googleapis.com/google.rpc.RetryInfo": {
        const r = RetryInfo.decode(d.value);
        out.retryDelayMs = (r.retryDelay?.seconds ?? 0) * 1000 + (r.retryDelay?.nanos ?? 0) / 1e6;
        break;
      }
      case "type.googleapis.com/google.rpc.QuotaFailure":
        out.quotaFailure = QuotaFailure.decode(d.value);
        break;
    }
  }
  return out;
}

/** Awaits a call expected to fail and returns its decoded error. */
export async function expectError(p: Promise<unknown>): Promise<DecodedError> {
  try {
    await p;
  } catch (err) {
    return decodeError(err);
  }
  throw new Error("expected the call to fail, it succeeded");
}
