/**
 * The one error type of the SDK. Every failed call rejects with a
 * MintServiceError decoded from the gRPC status and its `google.rpc.Status`
 * details (`grpc-status-details-bin`): tell failures apart by `code` and
 * `reason`, not by `instanceof` or message text.
 */
import { status as GrpcCode, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { BadRequest, ErrorInfo, QuotaFailure, RetryInfo } from "../gen/google/rpc/error_details.js";
import { Status } from "../gen/google/rpc/status.js";

/** The gRPC status codes by name ("INVALID_ARGUMENT", "UNAVAILABLE", ...). */
export type GrpcCodeName = keyof typeof GrpcCode;

/** A refused request field (google.rpc.BadRequest). */
export interface FieldViolation {
  /** The field ("amount", "account_id"). */
  readonly field: string;
  /** What is wrong with it. */
  readonly description: string;
}

/** An exceeded quota (google.rpc.QuotaFailure). */
export interface QuotaViolation {
  /** Whose quota ("principal:alice"). */
  readonly subject: string;
  /** Which limit. */
  readonly description: string;
}

/** What a {@link MintServiceError} is built from (the SDK builds them from gRPC status details). */
export interface MintServiceErrorInit {
  /** The gRPC status code by name. */
  readonly code: GrpcCodeName;
  /** The human-readable message. */
  readonly message: string;
  /** ErrorInfo reason ("" when absent). */
  readonly reason?: string;
  /** ErrorInfo domain. */
  readonly domain?: string;
  /** ErrorInfo metadata. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** RetryInfo delay in milliseconds. */
  readonly retryAfterMs?: number;
  /** BadRequest field violations. */
  readonly fieldViolations?: readonly FieldViolation[];
  /** QuotaFailure violations. */
  readonly quotaViolations?: readonly QuotaViolation[];
  /** Whether the status carried an ErrorInfo (the service answered, rather than the transport failing). */
  readonly hasErrorInfo?: boolean;
  /** Whether the call reached the wire (false: failed locally, e.g. no serving address). */
  readonly sent?: boolean;
  /** The replica that answered or failed. */
  readonly address?: string;
}

/**
 * Every failure of a {@link MintClient} call: the gRPC code, the service's
 * ErrorInfo reason and metadata, and the RetryInfo, BadRequest and
 * QuotaFailure details. Tell errors apart by `code` and `reason`.
 */
export class MintServiceError extends Error {
  /** The gRPC status code by name, e.g. "RESOURCE_EXHAUSTED". */
  readonly code: GrpcCodeName;
  /** The gRPC status code as a number (what grpc-js reports). */
  readonly grpcCode: number;
  /** ErrorInfo reason ("RATE_LIMITED", "INSUFFICIENT_FUNDS", ...); "" when the status had none (a transport failure). */
  readonly reason: string;
  /** ErrorInfo domain ("mint.usdc.example"); "" when absent. */
  readonly domain: string;
  /** ErrorInfo metadata as sent (e.g. `account_id`, `field`, `differing_fields`). */
  readonly metadata: Readonly<Record<string, string>>;
  /** RetryInfo's delay in milliseconds, when the server said when to come back. */
  readonly retryAfterMs: number | undefined;
  /** BadRequest field violations (INVALID_ARGUMENT), in the server's order. */
  readonly fieldViolations: readonly FieldViolation[];
  /** QuotaFailure violations (RATE_LIMITED: subject `account:<id>`). */
  readonly quotaViolations: readonly QuotaViolation[];
  /** For IDEMPOTENCY_KEY_REUSED: the request fields that differ from the stored request. */
  readonly differingFields: readonly string[];
  /** The server's request id (ErrorInfo metadata `request_id`) when it sends one. */
  readonly requestId: string | undefined;
  /** True when the status carried our ErrorInfo, i.e. the service (not the transport) answered. */
  readonly hasErrorInfo: boolean;
  /** False when the SDK failed before sending anything (no serving address); such a failure is always safe to retry. */
  readonly sent: boolean;
  /** The address the failing attempt went to, when there was one. */
  readonly address: string | undefined;
  /** How many attempts the operation made before giving up with this error (set by the retry loop). */
  attempts = 1;

  constructor(init: MintServiceErrorInit) {
    super(init.message);
    this.name = "MintServiceError";
    this.code = init.code;
    this.grpcCode = GrpcCode[init.code];
    this.reason = init.reason ?? "";
    this.domain = init.domain ?? "";
    this.metadata = init.metadata ?? {};
    this.retryAfterMs = init.retryAfterMs;
    this.fieldViolations = init.fieldViolations ?? [];
    this.quotaViolations = init.quotaViolations ?? [];
    const differing = this.metadata.differing_fields;
    this.differingFields = differing === undefined || differing === "" ? [] : differing.split(",");
    this.requestId = this.metadata.request_id;
    this.hasErrorInfo = init.hasErrorInfo ?? false;
    this.sent = init.sent ?? true;
    this.address = init.address;
  }
}

/** The name of a numeric gRPC code; unknown numbers become "UNKNOWN". */
export function codeName(code: number): GrpcCodeName {
  const name = GrpcCode[code];
  return typeof name === "string" ? (name as GrpcCodeName) : "UNKNOWN";
}

function durationMs(d: { seconds: number; nanos: number } | undefined): number {
  return d === undefined ? 0 : d.seconds * 1000 + d.nanos / 1e6;
}

/**
 * Decodes a grpc-js ServiceError (or anything thrown) into a MintServiceError.
 * Details that fail to decode are ignored: the code and message still stand.
 */
export function toMintServiceError(err: unknown, address?: string): MintServiceError {
  if (err instanceof MintServiceError) return err;
  const e = err as Partial<ServiceError> | undefined;
  if (typeof e?.code !== "number") {
    return new MintServiceError({ code: "UNKNOWN", message: err instanceof Error ? err.message : String(err), address });
  }
  const init: { -readonly [K in keyof MintServiceErrorInit]: MintServiceErrorInit[K] } = {
    code: codeName(e.code),
    message: e.details ?? e.message ?? "",
    address,
  };
  const raw = (e.metadata as Metadata | undefined)?.get("grpc-status-details-bin")[0];
  if (raw instanceof Buffer) {
    try {
      addDetails(init, Status.decode(raw));
    } catch {
      // Malformed details: keep the code and message the transport gave.
    }
  }
  return new MintServiceError(init);
}

/** One batch item's error: the google.rpc.Status the service sent for it. */
export function itemError(status: Status, address?: string): MintServiceError {
  const init: { -readonly [K in keyof MintServiceErrorInit]: MintServiceErrorInit[K] } = { code: codeName(status.code), message: status.message, address };
  try {
    addDetails(init, status);
  } catch {
    // Malformed details: keep the code and message.
  }
  return new MintServiceError(init);
}

/** Reads ErrorInfo, BadRequest, RetryInfo and QuotaFailure out of `status` into `init`; throws on malformed details. */
function addDetails(init: { -readonly [K in keyof MintServiceErrorInit]: MintServiceErrorInit[K] }, status: Status): void {
  const fieldViolations: FieldViolation[] = [];
  const quotaViolations: QuotaViolation[] = [];
  for (const d of status.details) {
    switch (d.typeUrl) {
      case "type.googleapis.com/google.rpc.ErrorInfo": {
        const info = ErrorInfo.decode(d.value);
        init.reason = info.reason;
        init.domain = info.domain;
        init.metadata = info.metadata;
        init.hasErrorInfo = true;
        break;
      }
      case "type.googleapis.com/google.rpc.BadRequest":
        for (const v of BadRequest.decode(d.value).fieldViolations) fieldViolations.push({ field: v.field, description: v.description });
        break;
      case "type.googleapis.com/google.rpc.RetryInfo":
        init.retryAfterMs = durationMs(RetryInfo.decode(d.value).retryDelay);
        break;
      case "type.googleapis.com/google.rpc.QuotaFailure":
        for (const v of QuotaFailure.decode(d.value).violations) quotaViolations.push({ subject: v.subject, description: v.description });
        break;
      default:
        // A detail type this SDK does not know yet: the rest still decodes.
        break;
    }
  }
  init.fieldViolations = fieldViolations;
  init.quotaViolations = quotaViolations;
}
