/**
 * Request ids: every call gets one, so a caller's error report can be found
 * in the logs. The caller's `x-request-id` metadata is used when it is a
 * plausible id (1 to 128 characters of `A-Z a-z 0-9 . _ : / + = -`, the
 * characters of UUIDs, ULIDs, trace ids and base64); anything else (absent,
 * empty, too long, spaces, control characters, several values) is replaced by
 * a fresh UUID, so a log line never carries caller-chosen junk or a log
 * injection. The id goes into every log line of the call, into the response's
 * trailing metadata (`x-request-id`) and into the ErrorInfo metadata of an
 * error (`request_id`).
 */
import { randomUUID } from "node:crypto";
import type { Metadata } from "@grpc/grpc-js";
import { ErrorInfo } from "../../../gen/google/rpc/error_details.js";
import { Status } from "../../../gen/google/rpc/status.js";
import type { Link } from "./chain.js";
import { STATUS_DETAILS_KEY, type RichError } from "./status.js";

export const REQUEST_ID_KEY = "x-request-id";
/** Longest caller-supplied id kept, in characters. */
export const REQUEST_ID_MAX_LENGTH = 128;
/** The ErrorInfo metadata key carrying the id. */
export const ERROR_INFO_REQUEST_ID = "request_id";

const VALID_REQUEST_ID = new RegExp(`^[A-Za-z0-9._:/+=-]{1,${REQUEST_ID_MAX_LENGTH}}$`);
const ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo";

/** True when `value` may be used as a request id as sent. */
export function isValidRequestId(value: string): boolean {
  return VALID_REQUEST_ID.test(value);
}

/** The caller's valid `x-request-id`, or a new UUID. Exactly one value is accepted; several are replaced. */
export function requestIdOf(metadata: Metadata): string {
  const values = metadata.get(REQUEST_ID_KEY);
  if (values.length === 1) {
    const v = values[0];
    if (typeof v === "string" && isValidRequestId(v)) return v;
  }
  return randomUUID();
}

/**
 * Adds `request_id` to the ErrorInfo metadata of an error answer (decoded
 * from and re-encoded into `grpc-status-details-bin`, so the error table stays
 * the only place errors are built). Errors are the rare path; a success pays
 * nothing of this. Changes and returns `error`.
 */
export function addRequestIdToErrorInfo(error: RichError, requestId: string): RichError {
  const raw = error.metadata.get(STATUS_DETAILS_KEY)[0];
  if (!Buffer.isBuffer(raw)) return error;
  const status = Status.decode(raw);
  const details = status.details.map((any) => {
    if (any.typeUrl !== ERROR_INFO_TYPE_URL) return any;
    const info = ErrorInfo.decode(any.value);
    info.metadata[ERROR_INFO_REQUEST_ID] = requestId;
    return { typeUrl: any.typeUrl, value: Buffer.from(ErrorInfo.encode(info).finish()) };
  });
  error.metadata.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode({ ...status, details }).finish()));
  return error;
}

/**
 * The chain link (outermost): gives the call its id, for the links after it
 * (logging writes it on every line) and the answer (the `x-request-id`
 * trailer on successes and errors; the edge adds it to an error's ErrorInfo).
 */
export const requestIdLink: Link = (call, next) => {
  const id = requestIdOf(call.metadata);
  call.values.requestId = id;
  call.addTrailer(REQUEST_ID_KEY, id);
  return next(call);
};
